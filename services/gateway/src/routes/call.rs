//! What every route handler shares: the state, who is calling, the call to a service as
//! that caller, and the JSON conventions of requests and answers (bodies, pages, ETags).

use std::future::Future;

use axum::{
    Json,
    body::Bytes,
    extract::{FromRequestParts, Query, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use careers_platform::identity::{self, Identity};
use careers_proto::careers::{
    ambassadors::v1::ambassadors_service_client::AmbassadorsServiceClient,
    casenotes::v1::casenotes_service_client::CasenotesServiceClient,
    lmi::v1::lmi_service_client::LmiServiceClient,
    occupations::v1::occupations_service_client::OccupationsServiceClient,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Value, json};

use crate::problem::Problem;

/// What handlers call a service through: its channel, reads retried.
pub(crate) type Channel = crate::retry::RetryReads;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub bearer: std::sync::Arc<crate::bearer::Bearer>,
    pub internal: std::sync::Arc<crate::internal::InternalTokens>,
    pub occupations: Channel,
    pub lmi: Channel,
    pub casenotes: Channel,
    pub ambassadors: Channel,
    /// `submissions.max_json_bytes`.
    pub max_json_bytes: usize,
    /// `limits.upstream_timeout`: every call's deadline, passed on as `grpc-timeout`.
    pub upstream_timeout: std::time::Duration,
    /// `limits.submission_timeout`: the deadline of a submission, which may stream a
    /// large CSV.
    pub submission_timeout: std::time::Duration,
}

/// The caller: the one the front door admitted, else from `Authorization: Bearer …`.
fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Identity, Problem> {
    if let Some(caller) = crate::front::admitted_caller() {
        return Ok(caller);
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or_else(|| {
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "a bearer token is required",
            )
        })?;
    state.bearer.verify(token).map_err(|error| {
        tracing::debug!(%error, "bearer token refused");
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the bearer token is not valid",
        )
    })
}

/// A gRPC request carrying the caller as the internal identity token.
fn upstream_request<T>(
    state: &ApiState,
    caller: &Identity,
    message: T,
) -> Result<tonic::Request<T>, Problem> {
    let token = state.internal.token(caller).map_err(|error| {
        tracing::error!(%error, "cannot sign the internal identity token");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })?;
    let mut request = tonic::Request::new(message);
    request.set_timeout(state.upstream_timeout);
    let value = token.parse().map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })?;
    request.metadata_mut().insert(identity::METADATA_KEY, value);
    careers_platform::grpc::inject_trace_context(request.metadata_mut());
    if let Some(id) = crate::problem::current_request_id().and_then(|id| id.parse().ok()) {
        request
            .metadata_mut()
            .insert(careers_platform::grpc::REQUEST_ID, id);
    }
    Ok(request)
}

/// The authenticated caller of a route, with what it takes to call a service as them.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) state: ApiState,
    pub(crate) identity: Identity,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Problem> {
        Ok(Self {
            identity: authenticate(state, &parts.headers)?,
            state: state.clone(),
        })
    }
}

impl Caller {
    /// `message` as a call to a service: the caller's identity token, the deadline and
    /// the trace.
    pub(crate) fn request<T>(&self, message: T) -> Result<tonic::Request<T>, Problem> {
        upstream_request(&self.state, &self.identity, message)
    }

    /// Calls `method` of `client` with `message` as this caller; the answer's message.
    pub(crate) async fn call<C, Req, Resp, Fut>(
        &self,
        client: C,
        message: Req,
        method: impl FnOnce(C, tonic::Request<Req>) -> Fut,
    ) -> Result<Resp, Problem>
    where
        Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
    {
        Ok(method(client, self.request(message)?).await?.into_inner())
    }

    pub(crate) fn occupations(&self) -> OccupationsServiceClient<Channel> {
        OccupationsServiceClient::new(self.state.occupations.clone())
    }

    pub(crate) fn lmi(&self) -> LmiServiceClient<Channel> {
        LmiServiceClient::new(self.state.lmi.clone())
    }

    pub(crate) fn casenotes(&self) -> CasenotesServiceClient<Channel> {
        CasenotesServiceClient::new(self.state.casenotes.clone())
    }

    pub(crate) fn ambassadors(&self) -> AmbassadorsServiceClient<Channel> {
        AmbassadorsServiceClient::new(self.state.ambassadors.clone())
    }
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

/// The query, or a 400 naming what is wrong with it (an unknown parameter included).
pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, Problem> {
    query.map(|Query(query)| query).map_err(|rejection| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("query: {}", rejection.body_text()),
        )
    })
}

pub(crate) fn page(items: Vec<Value>, next_cursor: String) -> Response {
    let next_cursor = (!next_cursor.is_empty()).then_some(next_cursor);
    Json(json!({"items": items, "next_cursor": next_cursor})).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    #[serde(default)]
    pub(crate) cursor: String,
    #[serde(default)]
    pub(crate) limit: u32,
}
