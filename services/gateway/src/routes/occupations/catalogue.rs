//! Catalogue edits over HTTP: `PATCH /v1/occupations/{soc}` (`catalogue_editor`, a JSON
//! merge patch with `If-Match`) and `GET /v1/occupations/{soc}/history` (any role).

use axum::{
    Json,
    body::Bytes,
    extract::Path,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use careers_proto::careers::occupations::v1::{
    ListOccupationHistoryRequest, Occupation, UpdateOccupationRequest,
};
use serde_json::{Map, Value, json};

use super::occupation::occupation_response;
use crate::problem::Problem;
use crate::routes::call::Caller;

/// The fields a patch may carry, text or lists of text.
const TEXT_FIELDS: [&str; 3] = ["title", "description", "entry_routes_text"];
const LIST_FIELDS: [&str; 2] = ["tasks", "related_job_titles"];

/// The version `If-Match` names: `"7"` (a weak `W/"7"` also matches).
fn expected_version(headers: &HeaderMap) -> Result<u64, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "if_match_required",
            "send If-Match with the ETag of the occupation you read",
        ));
    };
    value
        .to_str()
        .ok()
        .map(|text| text.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|version| *version > 0)
        .ok_or_else(|| {
            Problem::invalid_fields(vec![(
                "If-Match".to_owned(),
                "is not an ETag this API sent (a quoted version such as \"3\")".to_owned(),
            )])
        })
}

/// The merge patch as the fields it sets on an occupation, every bad member named.
fn patch(body: &[u8]) -> Result<(Occupation, Vec<String>), Problem> {
    let members: Map<String, Value> = serde_json::from_slice(body).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            format!("the body is not a JSON object: {error}"),
        )
    })?;
    let mut occupation = Occupation::default();
    let (mut paths, mut errors) = (Vec::new(), Vec::new());
    for (field, value) in members {
        let text = |value: &Value| value.as_str().map(str::to_owned);
        if TEXT_FIELDS.contains(&field.as_str()) {
            let Some(text) = text(&value) else {
                errors.push((field, "must be a string (it cannot be removed)".to_owned()));
                continue;
            };
            match field.as_str() {
                "title" => occupation.title = text,
                "description" => occupation.description = text,
                _ => occupation.entry_routes_text = text,
            }
        } else if LIST_FIELDS.contains(&field.as_str()) {
            // In a merge patch, null removes: the list becomes empty.
            let items: Option<Vec<String>> = match &value {
                Value::Null => Some(Vec::new()),
                Value::Array(items) => items.iter().map(text).collect(),
                _ => None,
            };
            let Some(items) = items else {
                errors.push((field, "must be an array of strings or null".to_owned()));
                continue;
            };
            if field == "tasks" {
                occupation.tasks = items;
            } else {
                occupation.related_job_titles = items;
            }
        } else {
            errors.push((
                field,
                format!(
                    "cannot be edited; editable: {}, {}",
                    TEXT_FIELDS.join(", "),
                    LIST_FIELDS.join(", ")
                ),
            ));
            continue;
        }
        paths.push(field);
    }
    if !errors.is_empty() {
        return Err(Problem::invalid_fields(errors));
    }
    Ok((occupation, paths))
}

pub(crate) async fn update(
    caller: Caller,
    headers: HeaderMap,
    Path(soc): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(str::trim)
        .unwrap_or_default();
    if content_type != "application/merge-patch+json" {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send application/merge-patch+json, not {content_type:?}"),
        ));
    }
    let expected_version = expected_version(&headers)?;
    let (mut occupation, paths) = patch(&body)?;
    occupation.soc_code = soc;
    let request = caller.request(UpdateOccupationRequest {
        occupation: Some(occupation),
        update_mask: Some(prost_types::FieldMask { paths }),
        expected_version,
    })?;
    let updated = caller
        .occupations()
        .update_occupation(request)
        .await?
        .into_inner()
        .occupation
        .unwrap_or_default();
    Ok(occupation_response(updated))
}

pub(crate) async fn history(caller: Caller, Path(soc): Path<String>) -> Result<Response, Problem> {
    let request = caller.request(ListOccupationHistoryRequest { soc_code: soc })?;
    let changes = caller
        .occupations()
        .list_occupation_history(request)
        .await?
        .into_inner()
        .changes;
    let items: Vec<Value> = changes
        .into_iter()
        .map(|change| {
            let changed_at = change
                .changed_at
                .as_ref()
                .and_then(careers_proto::time::instant);
            let fields: Vec<Value> = change
                .fields
                .into_iter()
                .map(|field| {
                    let parse = |text: &str| serde_json::from_str(text).unwrap_or(Value::Null);
                    json!({
                        "field": field.field,
                        "old": parse(&field.old_value_json),
                        "new": parse(&field.new_value_json),
                    })
                })
                .collect();
            json!({
                "version": change.version,
                "changed_by": change.changed_by,
                "changed_at": changed_at.map(|time| time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
                "changes": fields,
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })).into_response())
}
