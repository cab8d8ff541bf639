//! LMI over HTTP: submissions (JSON or streamed CSV), published figures, the QA review
//! queue and the SSC registry.

use axum::{
    Router,
    extract::DefaultBodyLimit,
    routing::{get, post},
};

use super::ApiState;

mod figures;
mod registry;
mod submissions;

pub(crate) use figures::figure_json;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/lmi/figures", get(figures::figures))
        .route("/v1/lmi/review", get(figures::review))
        .route("/v1/lmi/review/{row_id}/{decision}", post(figures::decide))
        .route("/v1/lmi/sscs", get(registry::list).post(registry::create))
        .route(
            "/v1/lmi/sscs/{id}",
            get(registry::get_one).put(registry::replace),
        )
        .route(
            "/v1/lmi/submissions/{id}",
            get(submissions::submission_by_id),
        )
        .route(
            "/v1/lmi/submissions/{id}/delta",
            get(submissions::submission_delta),
        )
        // The body is read by the handler: JSON capped, CSV streamed without a cap.
        .route(
            "/v1/lmi/submissions",
            post(submissions::submission).layer(DefaultBodyLimit::disable()),
        )
}
