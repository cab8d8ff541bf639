//! The SSC registry over HTTP (`operator`):
//! `GET|POST /v1/lmi/sscs`, `GET|PUT /v1/lmi/sscs/{id}`.

use axum::{
    Json,
    body::Bytes,
    extract::{Path, Query, rejection::QueryRejection},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use careers_proto::careers::lmi::v1::{
    CreateSscRequest, GetSscRequest, ListSscsRequest, Ssc, UpdateSscRequest,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::routes::call::Caller;
use crate::{
    problem::Problem,
    routes::call::{PageQuery, page, query},
};

fn ssc_json(ssc: Ssc) -> Value {
    json!({
        "id": ssc.id, "name": ssc.name, "footprint": ssc.footprint,
        "synthetic": ssc.synthetic, "change_rule": ssc.change_rule,
    })
}

/// A registry entry as sent; `id` may be left out of a PUT (the path names it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SscBody {
    #[serde(default)]
    id: Option<String>,
    name: String,
    footprint: String,
    #[serde(default)]
    synthetic: bool,
    #[serde(default = "change_rule_on")]
    change_rule: bool,
}

fn change_rule_on() -> bool {
    true
}

fn parse(body: &Bytes) -> Result<SscBody, Problem> {
    serde_json::from_slice(body).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not an SSC {{\"id\",\"name\",\"footprint\",\"synthetic\",\"change_rule\"}}: {error}"),
        )
    })
}

fn message(id: String, body: SscBody) -> Ssc {
    Ssc {
        id,
        name: body.name,
        footprint: body.footprint,
        synthetic: body.synthetic,
        change_rule: body.change_rule,
    }
}

pub(crate) async fn list(
    caller: Caller,
    parameters: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let request = caller.request(ListSscsRequest {
        limit: parameters.limit,
        cursor: parameters.cursor,
    })?;
    let answer = caller.lmi().list_sscs(request).await?.into_inner();
    Ok(page(
        answer.items.into_iter().map(ssc_json).collect(),
        answer.next_cursor,
    ))
}

pub(crate) async fn get_one(caller: Caller, Path(id): Path<String>) -> Result<Response, Problem> {
    let request = caller.request(GetSscRequest { id })?;
    let ssc = caller
        .lmi()
        .get_ssc(request)
        .await?
        .into_inner()
        .ssc
        .unwrap_or_default();
    Ok(Json(ssc_json(ssc)).into_response())
}

pub(crate) async fn create(caller: Caller, body: Bytes) -> Result<Response, Problem> {
    let body = parse(&body)?;
    let id = body.id.clone().unwrap_or_default();
    let request = caller.request(CreateSscRequest {
        ssc: Some(message(id, body)),
    })?;
    let ssc = caller
        .lmi()
        .create_ssc(request)
        .await?
        .into_inner()
        .ssc
        .unwrap_or_default();
    Ok((StatusCode::CREATED, Json(ssc_json(ssc))).into_response())
}

pub(crate) async fn replace(
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let body = parse(&body)?;
    if body.id.as_ref().is_some_and(|named| *named != id) {
        return Err(Problem::invalid_fields(vec![(
            "id".to_owned(),
            format!("the body names another SSC than the path ({id})"),
        )]));
    }
    let request = caller.request(UpdateSscRequest {
        ssc: Some(message(id, body)),
    })?;
    let ssc = caller
        .lmi()
        .update_ssc(request)
        .await?
        .into_inner()
        .ssc
        .unwrap_or_default();
    Ok(Json(ssc_json(ssc)).into_response())
}
