//! Every error the gateway answers, as `application/problem+json` (RFC 9457), and the
//! request id those bodies carry. A leaf: every other module may use it.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use tonic::Code;
use tonic_types::StatusExt;

tokio::task_local! {
    /// This request's id, for problem bodies and logs.
    static REQUEST: String;
}

/// This request's id, when running under [`with_request_id`].
pub(crate) fn current_request_id() -> Option<String> {
    REQUEST.try_with(String::clone).ok()
}

/// The id of a request: the caller's `x-request-id` when it sends a sane one, else a new
/// UUIDv7.
pub(crate) fn request_id_or_new(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(careers_platform::grpc::REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| careers_platform::grpc::sane_request_id(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// Runs `work` with `id` as the request id its problems and logs carry.
pub(crate) async fn with_request_id<F: Future>(id: String, work: F) -> F::Output {
    REQUEST.scope(id, work).await
}

/// An error as `application/problem+json` (RFC 9457) with `code` and `message`.
#[derive(Debug)]
pub struct Problem {
    status: StatusCode,
    code: String,
    detail: String,
    errors: Vec<(String, String)>,
    retry_after: Option<u64>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            detail: careers_platform::status::bounded(detail),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// What the caller is told.
    #[cfg(test)]
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    /// Adds `Retry-After` (seconds).
    pub(crate) fn retry_after(self, seconds: u64) -> Self {
        Self {
            retry_after: Some(seconds),
            ..self
        }
    }

    /// 400 `validation_failed` naming each bad field.
    pub(crate) fn invalid_fields(errors: Vec<(String, String)>) -> Self {
        let detail = errors
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(StatusCode::BAD_REQUEST, "validation_failed", detail)
        }
    }

    /// The same refusal for a gRPC caller, the code in `ErrorInfo.reason`.
    pub(crate) fn to_status(&self) -> tonic::Status {
        let code = match self.status {
            StatusCode::UNAUTHORIZED => Code::Unauthenticated,
            StatusCode::FORBIDDEN => Code::PermissionDenied,
            StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
            StatusCode::BAD_REQUEST => Code::InvalidArgument,
            _ => Code::Internal,
        };
        careers_platform::status::status(code, &self.code, &self.detail)
    }

    /// Maps a service's status: the contract code rides in `ErrorInfo.reason`.
    fn from_status(status: &tonic::Status) -> Self {
        let http = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::FailedPrecondition
                if status
                    .get_details_error_info()
                    .is_some_and(|info| info.reason == "if_match_required") =>
            {
                StatusCode::PRECONDITION_REQUIRED
            }
            Code::FailedPrecondition => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // tonic reports its own deadline (`grpc-timeout`) as CANCELLED.
            Code::DeadlineExceeded | Code::Cancelled => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if http == StatusCode::INTERNAL_SERVER_ERROR {
            // The service logged its cause; this names the call it answered.
            tracing::error!(
                request_id = current_request_id().unwrap_or_default(),
                code = ?status.code(),
                message = %careers_platform::status::bounded(status.message()),
                "upstream answered an internal error"
            );
            return Self::new(http, "internal", "internal error");
        }
        let info = status.get_details_error_info().map(|info| info.reason);
        let (code, detail) = match (info, http) {
            (Some(code), _) => (code, status.message().to_owned()),
            // A transport failure: the service's own words would be tonic's internals.
            (None, StatusCode::SERVICE_UNAVAILABLE) => (
                "upstream_unavailable".to_owned(),
                "the service behind this route is unavailable; retry shortly".to_owned(),
            ),
            (None, StatusCode::GATEWAY_TIMEOUT) => (
                "upstream_timeout".to_owned(),
                "the service behind this route did not answer in time".to_owned(),
            ),
            // Without the service's own code the words are tonic's (h2 errors, decoded
            // lengths): logged, never shown.
            (None, http) => {
                tracing::warn!(
                    request_id = current_request_id().unwrap_or_default(),
                    code = ?status.code(),
                    message = %careers_platform::status::bounded(status.message()),
                    "upstream answered without a careers code"
                );
                if matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted)
                    || http == StatusCode::PAYLOAD_TOO_LARGE
                {
                    (
                        "too_large".to_owned(),
                        "the request or its answer is larger than the service takes; send less \
                         (smaller batches or pages)"
                            .to_owned(),
                    )
                } else {
                    (
                        "upstream_error".to_owned(),
                        "the service could not handle this request".to_owned(),
                    )
                }
            }
        };
        let errors = status
            .get_details_bad_request()
            .map(|bad| {
                bad.field_violations
                    .into_iter()
                    .map(|v| (v.field, v.description))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            status: http,
            code,
            detail,
            errors,
            // An unavailable service (down, draining, its store busy) is worth a retry.
            retry_after: (http == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
        }
    }
}

/// A service's answer, as the client sees it; `?` on an upstream call maps it.
impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Self {
        Self::from_status(&status)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("https://careers.invalid/errors/{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
            "message": self.detail,
        });
        if let Some(id) = current_request_id() {
            body["request_id"] = Value::String(id);
        }
        if !self.errors.is_empty() {
            body["errors"] = self
                .errors
                .iter()
                .map(|(field, message)| json!({"field": field, "message": message}))
                .collect();
        }
        let request_id = body["request_id"].as_str().unwrap_or_default();
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(request_id, code = %self.code, "answered 500");
        } else if self.status.is_server_error() {
            tracing::warn!(request_id, status = self.status.as_u16(), code = %self.code, "answered a server error");
        }
        let mut response = (self.status, Json(body)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// 400 with `code`.
pub(crate) fn bad_request(code: &str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
}
