//! The occupations catalogue over HTTP: one occupation, the listing, search, the profile
//! (with lmi's figures), editing and history.

use axum::{Router, routing::get};

use super::ApiState;

mod catalogue;
mod occupation;
mod profile;
mod search;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/occupations", get(occupation::list))
        .route("/v1/occupations/search", get(search::search))
        .route("/v1/occupations/suggest", get(search::suggest))
        .route(
            "/v1/occupations/{soc}",
            get(occupation::occupation).patch(catalogue::update),
        )
        .route("/v1/occupations/{soc}/related", get(search::related))
        .route("/v1/occupations/{soc}/profile", get(profile::profile))
        .route("/v1/occupations/{soc}/history", get(catalogue::history))
}
