//! Calling a service's gRPC API for an HTTP route whose JSON is the service's messages
//! (casenotes, ambassadors): a body parsed straight into the request message (unknown
//! fields refused), the answer written as it is.

use std::future::Future;

use axum::{
    Json,
    body::Bytes,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::api::{ApiState, Problem, authenticate, upstream_request};

/// Calls `client` as the authenticated caller.
pub(crate) async fn call<C, Req, Resp, Fut>(
    state: &ApiState,
    headers: &HeaderMap,
    client: C,
    message: Req,
    method: impl FnOnce(C, tonic::Request<Req>) -> Fut,
) -> Result<Resp, Problem>
where
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    let caller = authenticate(state, headers)?;
    let request = upstream_request(state, &caller, message)?;
    Ok(method(client, request).await?.into_inner())
}

/// The body as the request message; a 400 naming the problem otherwise.
pub(crate) fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Problem> {
    serde_json::from_slice(bytes).map_err(|error| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("the body is not the expected JSON object: {error}"),
        )
    })
}

/// The message as JSON; an empty `next_cursor` (the last page) is `null`.
pub(crate) fn json<T: Serialize>(status: StatusCode, message: &T) -> Response {
    let mut value = serde_json::to_value(message).unwrap_or(Value::Null);
    if let Some(cursor) = value.get_mut("next_cursor")
        && cursor.as_str() == Some("")
    {
        *cursor = Value::Null;
    }
    (status, Json(value)).into_response()
}

/// The version in `If-Match` (`"3"` or `W/"3"`): 428 `if_match_required` without it.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<i64, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Err(Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "if_match_required",
            "send If-Match with the ETag you read",
        ));
    };
    value
        .to_str()
        .ok()
        .map(|text| text.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|text| text.parse::<i64>().ok())
        .filter(|version| *version > 0)
        .ok_or_else(|| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "validation_failed",
                "If-Match must be the ETag the resource was read with, for example \"3\"",
            )
        })
}

/// The message as JSON with `ETag: "<version>"`.
pub(crate) fn versioned<T: Serialize>(
    status: StatusCode,
    message: &T,
    version: Option<i64>,
) -> Response {
    let mut response = json(status, message);
    if let Some(Ok(etag)) = version.map(|version| HeaderValue::from_str(&format!("\"{version}\"")))
    {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}
