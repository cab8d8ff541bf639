//! One occupation, and the catalogue's listing.
//!
//! - `GET /v1/occupations/{soc}`: any authenticated role.
//! - `GET /v1/occupations?major_group=&stem=&route=&min_median_pay=&outlook=&cursor=&limit=`:
//!   any authenticated role.

use axum::{
    Json,
    extract::{Path, Query, rejection::QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use careers_proto::careers::occupations::v1::{
    GetOccupationRequest, ListOccupationsRequest, Occupation,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::routes::call::Caller;
use crate::{
    problem::Problem,
    routes::call::{page, query},
};

pub(crate) async fn occupation(
    caller: Caller,
    Path(soc): Path<String>,
) -> Result<Response, Problem> {
    let request = caller.request(GetOccupationRequest { soc_code: soc })?;
    let occupation = caller
        .occupations()
        .get_occupation(request)
        .await?
        .into_inner()
        .occupation
        .ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        })?;
    Ok(occupation_response(occupation))
}

/// An occupation as CONTRACT.md shapes it, with its version as the ETag.
pub(crate) fn occupation_response(occupation: Occupation) -> Response {
    let etag = format!("\"{}\"", occupation.version);
    let mut response = Json(occupation_json(occupation)).into_response();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// An occupation's JSON, as CONTRACT.md shapes it.
pub(crate) fn occupation_json(occupation: Occupation) -> Value {
    let figures: Vec<Value> = occupation
        .lmi
        .map(|lmi| lmi.figures)
        .unwrap_or_default()
        .into_iter()
        .map(|figure| {
            let received_at = figure
                .received_at
                .as_ref()
                .and_then(careers_proto::time::instant);
            json!({
                "measure": figure.measure, "region": figure.region, "breakdown": figure.breakdown,
                "period": figure.period, "unit": figure.unit,
                "value": (!figure.suppressed).then_some(figure.value),
                "source": figure.source,
                "received_at": received_at.map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                "suppressed": figure.suppressed,
            })
        })
        .collect();
    json!({
        "soc_code": occupation.soc_code,
        "title": occupation.title,
        "major_group": occupation.major_group,
        "sub_major_group": occupation.sub_major_group,
        "minor_group": occupation.minor_group,
        "description": occupation.description,
        "tasks": occupation.tasks,
        "entry_routes": occupation.entry_routes.into_iter().map(|route| json!({
            "type": route.r#type, "level": route.level, "text": route.text,
        })).collect::<Vec<_>>(),
        "entry_routes_text": occupation.entry_routes_text,
        "open_to_career_changers": occupation.open_to_career_changers,
        "stem": occupation.stem.map(|stem| json!({
            "is_stem": stem.is_stem,
            "discipline": (!stem.discipline.is_empty()).then_some(stem.discipline),
            "rule": stem.rule,
        })),
        "alternative_titles": occupation.alternative_titles.into_iter().map(|title| json!({
            "title": title.title, "qualifier": (!title.qualifier.is_empty()).then_some(title.qualifier),
            "sub_unit_group": title.sub_unit_group,
        })).collect::<Vec<_>>(),
        "sub_unit_groups": occupation.sub_unit_groups.into_iter().map(|group| json!({
            "code": group.code, "title": group.title,
        })).collect::<Vec<_>>(),
        "crosswalks": occupation.crosswalks.map(|crosswalks| {
            let codes = |codes: Vec<careers_proto::careers::occupations::v1::CrosswalkCode>| {
                codes.into_iter().map(|code| json!({
                    "code": code.code, "title": code.title,
                    "index_entries": code.index_entries, "share": code.share,
                })).collect::<Vec<_>>()
            };
            json!({
                "soc2010": codes(crosswalks.soc2010), "isco08": codes(crosswalks.isco08),
                "derivation": crosswalks.derivation,
            })
        }),
        "skills": [],
        "outlook": occupation.outlook.map(|outlook| json!({
            "projected_employment_change": outlook.projected_employment_change,
            "replacement_demand": outlook.replacement_demand,
            "horizon": outlook.horizon, "source": outlook.source,
        })),
        "employment": occupation.employment.map(|employment| json!({
            "value": employment.value, "lower_bound": employment.lower_bound,
            "suppressed_sections": employment.suppressed_sections,
            "period": employment.period, "source": employment.source,
        })),
        "sectors": occupation.sectors.into_iter().map(|sector| json!({
            "section": sector.section, "title": sector.title, "employment": sector.employment,
            "share": sector.share, "period": sector.period, "source": sector.source,
        })).collect::<Vec<_>>(),
        "lmi": {"figures": figures},
        "version": occupation.version,
        "attribution": occupation.attribution,
    })
}

/// The catalogue's query parameters, shared by the listing and search (`q`, search only).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OccupationsQuery {
    #[serde(default)]
    pub(crate) q: String,
    #[serde(default)]
    pub(crate) major_group: String,
    pub(crate) stem: Option<bool>,
    #[serde(default)]
    pub(crate) route: String,
    pub(crate) min_median_pay: Option<f64>,
    #[serde(default)]
    pub(crate) outlook: String,
    #[serde(default)]
    pub(crate) cursor: String,
    #[serde(default)]
    pub(crate) limit: u32,
}

pub(crate) async fn list(
    caller: Caller,
    parameters: Result<Query<OccupationsQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    if !parameters.q.is_empty() {
        return Err(Problem::invalid_fields(vec![(
            "q".to_owned(),
            "the listing takes no query: search at /v1/occupations/search".to_owned(),
        )]));
    }
    let request = caller.request(ListOccupationsRequest {
        major_group: parameters.major_group,
        stem: parameters.stem,
        route: parameters.route,
        min_median_pay: parameters.min_median_pay,
        outlook: parameters.outlook,
        cursor: parameters.cursor,
        limit: parameters.limit,
    })?;
    let answer = caller
        .occupations()
        .list_occupations(request)
        .await?
        .into_inner();
    let items = answer
        .items
        .into_iter()
        .map(|occupation| {
            json!({
                "soc_code": occupation.soc_code, "title": occupation.title,
                "major_group": occupation.major_group, "sub_major_group": occupation.sub_major_group,
                "minor_group": occupation.minor_group, "version": occupation.version,
                "stem": occupation.stem.map(|stem| stem.is_stem),
                "entry_routes": occupation.entry_routes.iter().map(|route| route.r#type.as_str()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(page(items, answer.next_cursor))
}
