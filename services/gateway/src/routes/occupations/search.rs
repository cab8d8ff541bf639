//! Occupation search and typeahead, any authenticated role:
//!
//! - `GET /v1/occupations/search?q=&major_group=&stem=&route=&min_median_pay=&outlook=&cursor=&limit=`
//! - `GET /v1/occupations/suggest?q=&limit=`
//! - `GET /v1/occupations/{soc}/related`

use axum::{
    Json,
    extract::{Path, Query, rejection::QueryRejection},
    response::{IntoResponse, Response},
};
use careers_proto::careers::occupations::v1::{
    ListRelatedOccupationsRequest, SearchOccupationsRequest, SuggestOccupationsRequest,
};
use serde::Deserialize;
use serde_json::json;

use super::occupation::OccupationsQuery;
use crate::routes::call::Caller;
use crate::{problem::Problem, routes::call::query};

pub(crate) async fn search(
    caller: Caller,
    parameters: Result<Query<OccupationsQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let request = caller.request(SearchOccupationsRequest {
        query: parameters.q,
        cursor: parameters.cursor,
        limit: parameters.limit,
        major_group: parameters.major_group,
        stem: parameters.stem,
        route: parameters.route,
        min_median_pay: parameters.min_median_pay,
        outlook: parameters.outlook,
    })?;
    let answer = caller
        .occupations()
        .search_occupations(request)
        .await?
        .into_inner();
    let facets = answer.facets.unwrap_or_default();
    let items: Vec<_> = answer
        .items
        .into_iter()
        .map(|hit| {
            let matched = hit.matched.unwrap_or_default();
            json!({
                "soc_code": hit.soc_code, "title": hit.title,
                "matched": {"field": matched.field, "text": matched.text},
                "score": hit.score,
            })
        })
        .collect();
    let next_cursor = (!answer.next_cursor.is_empty()).then_some(answer.next_cursor);
    let corrected = (!answer.corrected_query.is_empty()).then_some(answer.corrected_query);
    Ok(Json(json!({
        "items": items,
        "facets": {
            "major_group": facets.major_group,
            "stem": facets.stem,
            "route": facets.route,
        },
        "total": answer.total,
        "corrected_query": corrected,
        "next_cursor": next_cursor,
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SuggestQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    limit: u32,
}

pub(crate) async fn suggest(
    caller: Caller,
    parameters: Result<Query<SuggestQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let request = caller.request(SuggestOccupationsRequest {
        query: parameters.q,
        limit: parameters.limit,
    })?;
    let answer = caller
        .occupations()
        .suggest_occupations(request)
        .await?
        .into_inner();
    let items: Vec<_> = answer
        .items
        .into_iter()
        .map(|item| json!({"soc_code": item.soc_code, "title": item.title, "label": item.label}))
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}

pub(crate) async fn related(
    caller: Caller,
    Path(soc_code): Path<String>,
) -> Result<Response, Problem> {
    let request = caller.request(ListRelatedOccupationsRequest { soc_code })?;
    let answer = caller
        .occupations()
        .list_related_occupations(request)
        .await?
        .into_inner();
    let items: Vec<_> = answer
        .items
        .into_iter()
        .map(|item| {
            let relations: Vec<_> = item
                .relations
                .into_iter()
                .map(|relation| json!({"type": relation.r#type, "reason": relation.reason}))
                .collect();
            json!({"soc_code": item.soc_code, "title": item.title, "relations": relations})
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}
