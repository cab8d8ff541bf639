//! The HTTP/JSON API, first cut: bearer tokens verified, the caller passed on as the
//! internal identity token, gRPC statuses turned into problem+json.
//!
//! - `GET /v1/occupations/{soc}`: any authenticated role.
//! - the list routes, in [`crate::listings`]; the SSC registry, in [`crate::registry`].
//! - `POST /v1/lmi/submissions`: `ssc_publisher`; JSON `{"submission_key","rows"}` or
//!   `text/csv` with `?submission_key=`; `?dry_run=true` records nothing.

use std::collections::HashMap;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use careers_platform::identity::{self, Identity};
use careers_proto::careers::{
    lmi::v1::{
        DeltaFigure, FigureRow, FigureRows, GetSubmissionRequest, ReportEntry, Submission,
        SubmissionDelta, SubmissionEnd, SubmissionHeader, SubmitFiguresRequest,
        SubmitFiguresResponse, lmi_service_client::LmiServiceClient, submit_figures_request::Part,
    },
    occupations::v1::{
        GetOccupationRequest, Occupation, occupations_service_client::OccupationsServiceClient,
    },
};
use serde::Deserialize;

use crate::{clients, listings, registry};
use serde_json::{Value, json};
use tonic::Code;

/// What handlers call a service through: its channel, reads retried.
pub(crate) type Channel = crate::retry::RetryReads;

use tonic_types::StatusExt;

/// The largest gRPC message to or from lmi: a submission's answer with its report.
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// The template's CSV columns; optional ones may be absent, unknown ones are an error.
const CSV_REQUIRED: [&str; 7] = [
    "soc_code", "region", "period", "measure", "value", "unit", "source",
];
const CSV_OPTIONAL: [&str; 4] = ["breakdown", "horizon", "sample_size", "quality"];

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

/// The `/v1` routes, behind the front door: load shedding, then who may call what.
pub fn routes(state: ApiState, front: crate::front::Front, max_body_bytes: usize) -> Router {
    Router::new()
        .route("/v1/occupations", get(listings::occupations))
        .route("/v1/occupations/search", get(crate::search::search))
        .route("/v1/occupations/suggest", get(crate::search::suggest))
        .route(
            "/v1/occupations/{soc}",
            get(occupation).patch(crate::catalogue::update),
        )
        .route("/v1/occupations/{soc}/related", get(crate::search::related))
        .route(
            "/v1/occupations/{soc}/profile",
            get(crate::profile::profile),
        )
        .route(
            "/v1/occupations/{soc}/history",
            get(crate::catalogue::history),
        )
        .route("/v1/lmi/figures", get(listings::figures))
        .route("/v1/lmi/review", get(listings::review))
        .route("/v1/lmi/review/{row_id}/{decision}", post(listings::decide))
        .route("/v1/lmi/sscs", get(registry::list).post(registry::create))
        .route(
            "/v1/lmi/sscs/{id}",
            get(registry::get_one).put(registry::replace),
        )
        .route("/v1/clients", get(clients::list).post(clients::create))
        .route(
            "/v1/clients/{id}",
            get(clients::get_one)
                .patch(clients::update)
                .delete(clients::erase),
        )
        .route(
            "/v1/clients/{id}/notes",
            get(clients::list_notes).post(clients::record_note),
        )
        .route(
            "/v1/clients/{id}/notes/{note_id}/amendments",
            post(clients::amend_note),
        )
        .route(
            "/v1/clients/{id}/interactions",
            get(clients::list_interactions).post(clients::record_interaction),
        )
        .route(
            "/v1/clients/{id}/consents",
            get(clients::list_consents).post(clients::record_consent),
        )
        .route(
            "/v1/clients/{id}/referrals",
            get(clients::list_referrals).post(clients::request_referral),
        )
        .route(
            "/v1/clients/{id}/action-plan",
            get(clients::action_plan).put(clients::put_action_plan),
        )
        .route(
            "/v1/clients/{id}/outcomes",
            get(clients::list_outcomes).post(clients::record_outcome),
        )
        .route("/v1/clients/{id}/export", get(clients::export))
        .route("/v1/clients/{id}/gatsby", get(clients::client_gatsby))
        .route(
            "/v1/clients/{id}/transfers",
            post(clients::request_transfer),
        )
        .route("/v1/transfers", get(clients::list_transfers))
        .route("/v1/transfers/{id}/accept", post(clients::accept_transfer))
        .route("/v1/schools/{urn}/gatsby", get(clients::school_gatsby))
        .route("/v1/audit", get(clients::audit))
        .route("/v1/audit/verify", post(clients::verify_audit))
        .route(
            "/v1/ambassadors",
            get(crate::register::list).post(crate::register::register),
        )
        .route(
            "/v1/ambassadors/{id}",
            get(crate::register::get_one)
                .patch(crate::register::update)
                .delete(crate::register::erase),
        )
        .route(
            "/v1/activity-requests",
            get(crate::register::list_requests).post(crate::register::create_request),
        )
        .route(
            "/v1/activity-requests/{id}",
            get(crate::register::get_request),
        )
        .route("/v1/matching/runs", post(crate::register::start_run))
        .route("/v1/matching/runs/{id}", get(crate::register::get_run))
        .route("/v1/engagements", get(crate::register::list_engagements))
        .merge(crate::register::engagement_routes())
        .route("/v1/lmi/submissions/{id}", get(submission_by_id))
        .route("/v1/lmi/submissions/{id}/delta", get(submission_delta))
        // The body is read by the handler: JSON capped, CSV streamed without a cap.
        .route(
            "/v1/lmi/submissions",
            post(submission).layer(DefaultBodyLimit::disable()),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .route_layer(axum::middleware::from_fn_with_state(
            front.clone(),
            crate::front::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            front,
            crate::front::shed,
        ))
        .layer(axum::middleware::from_fn(trace_request))
        .with_state(state)
}

/// A span per request, continuing the caller's trace when it sends `traceparent`; the
/// calls to services carry it on.
async fn trace_request(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = %request.method(),
        url.path = %request.uri().path(),
    );
    if let Err(error) = span.set_parent(careers_platform::grpc::trace_context_of(request.headers()))
    {
        tracing::debug!(%error, "cannot continue the caller's trace");
    }
    next.run(request).instrument(span).await
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
                request_id = crate::front::current_request_id().unwrap_or_default(),
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
                    request_id = crate::front::current_request_id().unwrap_or_default(),
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
        if let Some(id) = crate::front::current_request_id() {
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

/// The caller: the one the front door admitted, else from `Authorization: Bearer …`.
pub(crate) fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Identity, Problem> {
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
pub(crate) fn upstream_request<T>(
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
    Ok(request)
}

async fn occupation(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(soc): Path<String>,
) -> Result<Response, Problem> {
    let caller = authenticate(&state, &headers)?;
    let request = upstream_request(&state, &caller, GetOccupationRequest { soc_code: soc })?;
    let occupation = OccupationsServiceClient::new(state.occupations.clone())
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
            let received_at = figure.received_at.and_then(|time| {
                chrono::DateTime::from_timestamp(time.seconds, u32::try_from(time.nanos).unwrap_or(0))
            });
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

/// A JSON submission; unknown fields are refused so a typo is not silently dropped.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonSubmission {
    submission_key: String,
    rows: Vec<JsonRow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonRow {
    soc_code: String,
    region: String,
    period: String,
    measure: String,
    value: f64,
    unit: String,
    source: String,
    #[serde(default)]
    breakdown: Option<String>,
    #[serde(default)]
    horizon: Option<String>,
    #[serde(default)]
    sample_size: Option<u64>,
    #[serde(default)]
    quality: Option<String>,
}

impl From<JsonRow> for FigureRow {
    fn from(row: JsonRow) -> Self {
        FigureRow {
            soc_code: row.soc_code,
            region: row.region,
            period: row.period,
            measure: row.measure,
            value: row.value,
            unit: row.unit,
            source: row.source,
            breakdown: row.breakdown.unwrap_or_default(),
            horizon: row.horizon.unwrap_or_default(),
            sample_size: row.sample_size,
            quality: row.quality.unwrap_or_default(),
            line: 0,
        }
    }
}

fn bad_request(code: &str, detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::BAD_REQUEST, code, detail)
}

/// Rows per gRPC message when a CSV is streamed to lmi.
const CSV_CHUNK: usize = 1_000;

/// Reads the template CSV as it arrives, handing rows to `sink` in chunks; the header is
/// checked before any row. `sink` answers false when nobody listens any more. Returns
/// the number of rows read.
fn parse_csv(
    body: impl std::io::Read,
    mut sink: impl FnMut(Vec<FigureRow>) -> bool,
) -> Result<u64, Problem> {
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(|error| bad_request("malformed_csv", format!("unreadable CSV header: {error}")))?
        .iter()
        .map(str::to_owned)
        .collect();
    for column in &header {
        if !CSV_REQUIRED.contains(&column.as_str()) && !CSV_OPTIONAL.contains(&column.as_str()) {
            return Err(bad_request(
                "malformed_csv",
                format!("unknown column {column:?} in the CSV header"),
            ));
        }
    }
    if let Some(missing) = CSV_REQUIRED
        .iter()
        .find(|column| !header.iter().any(|name| name == *column))
    {
        return Err(bad_request(
            "malformed_csv",
            format!("the CSV header lacks the required column {missing:?}"),
        ));
    }
    let mut rows = Vec::with_capacity(CSV_CHUNK);
    let mut read = 0_u64;
    for record in reader.records() {
        let record = record.map_err(|error| {
            bad_request("malformed_csv", format!("unreadable CSV record: {error}"))
        })?;
        let line = record.position().map_or(0, |position| position.line());
        let field: HashMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .collect();
        let text = |name: &str| {
            field
                .get(name)
                .map(|value| (*value).to_owned())
                .unwrap_or_default()
        };
        // An unparseable number is reported by lmi as out of range for its field,
        // rather than refusing the whole file.
        let value = text("value").trim().parse::<f64>().unwrap_or(f64::NAN);
        let sample_size = match text("sample_size").trim() {
            "" => None,
            size => Some(size.parse::<u64>().map_err(|_| {
                bad_request(
                    "malformed_csv",
                    format!("line {line}: sample_size {size:?} is not a whole number"),
                )
            })?),
        };
        rows.push(FigureRow {
            soc_code: text("soc_code"),
            region: text("region"),
            period: text("period"),
            measure: text("measure"),
            value,
            unit: text("unit"),
            source: text("source"),
            breakdown: text("breakdown"),
            horizon: text("horizon"),
            sample_size,
            quality: text("quality"),
            line,
        });
        read += 1;
        if rows.len() == CSV_CHUNK && !sink(std::mem::take(&mut rows)) {
            return Ok(read);
        }
    }
    if !rows.is_empty() {
        sink(rows);
    }
    Ok(read)
}

/// The body, or 413 once it passes `limit` bytes.
async fn read_capped(body: axum::body::Body, limit: usize) -> Result<Bytes, Problem> {
    use futures::StreamExt;
    // Past the cap the rest is read and dropped (up to four times the cap), so a client
    // still sending gets its 413 instead of a connection reset mid-write.
    let drain_limit = limit.saturating_mul(4);
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0_usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            bad_request(
                "malformed_body",
                format!("the body could not be read: {error}"),
            )
        })?;
        total = total.saturating_add(chunk.len());
        if total <= limit {
            kept.extend_from_slice(&chunk);
        } else if total > drain_limit {
            break;
        }
    }
    if total > limit {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("a JSON submission is at most {limit} bytes; send CSV for more"),
        ));
    }
    Ok(kept.into())
}

/// Streams a CSV body to lmi as it arrives, a chunk of rows per message, with no total
/// cap and never the whole file in memory. A record that cannot be read aborts the
/// call before lmi sees the end of the stream, so nothing is recorded.
async fn stream_csv(
    state: &ApiState,
    caller: &Identity,
    lmi: &mut LmiServiceClient<Channel>,
    header: SubmitFiguresRequest,
    body: axum::body::Body,
) -> Result<SubmitFiguresResponse, Problem> {
    use futures::StreamExt;
    use tokio_stream::wrappers::ReceiverStream;

    let (chunks, received) = tokio::sync::mpsc::channel::<SubmitFiguresRequest>(4);
    let bytes = body
        .into_data_stream()
        .map(|chunk| chunk.map_err(std::io::Error::other));
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(bytes));
    let mut parser = tokio::task::spawn_blocking(move || {
        let send = |part| chunks.blocking_send(SubmitFiguresRequest { part: Some(part) });
        let rows = parse_csv(reader, |rows| send(Part::Rows(FigureRows { rows })).is_ok())?;
        // Only a file read to its end is sealed: after a bad record the stream just ends,
        // and lmi records nothing however cleanly the transport closes it.
        let _ = send(Part::End(SubmissionEnd { rows }));
        Ok(rows)
    });
    let rows = ReceiverStream::new(received);
    let messages = futures::stream::once(async { header }).chain(rows);
    let mut request = upstream_request(state, caller, messages)?;
    request.set_timeout(state.submission_timeout);
    let call = lmi.submit_figures(request);
    tokio::pin!(call);
    let mut parsed = false;
    loop {
        tokio::select! {
            answer = &mut call => {
                if answer.is_err() && !parsed {
                    // lmi refuses a stream the parser ended early; the parser's reason is
                    // the one the caller can act on, and it is ready by now.
                    let parsed = tokio::time::timeout(std::time::Duration::from_secs(1), &mut parser).await;
                    if let Ok(Ok(Err(problem))) = parsed {
                        return Err(problem);
                    }
                }
                return Ok(answer?.into_inner());
            }
            outcome = &mut parser, if !parsed => {
                parsed = true;
                match outcome {
                    Ok(Ok(_)) => {}
                    // Returning drops the call, which cancels it at lmi.
                    Ok(Err(problem)) => return Err(problem),
                    Err(error) => {
                        tracing::error!(%error, "the CSV reader failed");
                        return Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"));
                    }
                }
            }
        }
    }
}

#[derive(Debug, Deserialize)]
struct SubmissionQuery {
    submission_key: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn submission(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<SubmissionQuery>,
    body: axum::body::Body,
) -> Result<Response, Problem> {
    let caller = authenticate(&state, &headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(|value| {
            value
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let mut lmi = LmiServiceClient::new(state.lmi.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let header = |submission_key: String| SubmitFiguresRequest {
        part: Some(Part::Header(SubmissionHeader {
            submission_key,
            dry_run: query.dry_run,
            sealed: true,
        })),
    };
    let answer = match content_type.as_str() {
        "application/json" => {
            let body = read_capped(body, state.max_json_bytes).await?;
            let parsed: JsonSubmission = serde_json::from_slice(&body).map_err(|error| {
                bad_request(
                    "malformed_json",
                    format!("the body is not a submission: {error}"),
                )
            })?;
            // In chunks like CSV: one message per 1,000 rows stays under gRPC's 4 MiB default.
            let rows: Vec<FigureRow> = parsed.rows.into_iter().map(FigureRow::from).collect();
            let messages: Vec<SubmitFiguresRequest> =
                std::iter::once(header(parsed.submission_key))
                    .chain(rows.chunks(CSV_CHUNK).map(|chunk| SubmitFiguresRequest {
                        part: Some(Part::Rows(FigureRows {
                            rows: chunk.to_vec(),
                        })),
                    }))
                    .chain(std::iter::once(SubmitFiguresRequest {
                        part: Some(Part::End(SubmissionEnd {
                            rows: rows.len() as u64,
                        })),
                    }))
                    .collect();
            let mut request = upstream_request(&state, &caller, tokio_stream::iter(messages))?;
            request.set_timeout(state.submission_timeout);
            lmi.submit_figures(request).await?.into_inner()
        }
        "text/csv" => {
            let key = query.submission_key.clone().ok_or_else(|| {
                bad_request(
                    "validation_failed",
                    "a CSV submission needs ?submission_key=",
                )
            })?;
            stream_csv(&state, &caller, &mut lmi, header(key), body).await?
        }
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send application/json or text/csv, not {other:?}"),
            ));
        }
    };
    let body = submission_json(answer.submission.unwrap_or_default(), query.dry_run);
    let status = if query.dry_run {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (status, Json(body)).into_response();
    if answer.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// One report entry as JSON.
pub(crate) fn report_entry_json(entry: ReportEntry) -> Value {
    json!({
        "row": entry.row, "line": entry.line, "field": entry.field, "rule": entry.rule,
        "severity": entry.severity, "message": entry.message,
    })
}

fn delta_json(delta: SubmissionDelta) -> Value {
    let figure = |figure: DeltaFigure| {
        let mut item = json!({
            "row": figure.row, "soc_code": figure.soc_code, "region": figure.region,
            "measure": figure.measure, "breakdown": figure.breakdown, "period": figure.period,
            "value": figure.new_value,
        });
        if let Some(old) = figure.old_value {
            item["old_value"] = old.into();
            item["new_value"] = figure.new_value.into();
        }
        item
    };
    json!({
        "added": delta.added.into_iter().map(figure).collect::<Vec<_>>(),
        "changed": delta.changed.into_iter().map(figure).collect::<Vec<_>>(),
        "unchanged": delta.unchanged,
    })
}

/// A submission's answer as CONTRACT.md shapes it; a dry run carries its delta.
fn submission_json(submission: Submission, with_delta: bool) -> Value {
    let counts = submission.counts.unwrap_or_default();
    let mut body = json!({
        "id": if submission.id.is_empty() { Value::Null } else { Value::String(submission.id) },
        "submission_key": submission.submission_key,
        "ssc": submission.ssc,
        "counts": {
            "rows": counts.rows, "accepted": counts.accepted, "quarantined": counts.quarantined,
            "rejected": counts.rejected, "suppressed": counts.suppressed,
        },
        "report": submission.report.into_iter().map(report_entry_json).collect::<Vec<_>>(),
    });
    if with_delta {
        body["delta"] = delta_json(submission.delta.unwrap_or_default());
    }
    body
}

async fn stored_submission(
    state: &ApiState,
    headers: &HeaderMap,
    id: String,
    include_delta: bool,
) -> Result<Submission, Problem> {
    let caller = authenticate(state, headers)?;
    let request = upstream_request(state, &caller, GetSubmissionRequest { id, include_delta })?;
    LmiServiceClient::new(state.lmi.clone())
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .get_submission(request)
        .await?
        .into_inner()
        .submission
        .ok_or_else(|| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        })
}

/// `GET /v1/lmi/submissions/{id}`: the answer again; `Accept: text/csv` gives the report
/// as CSV, so an SSC can fix its rows and resend.
async fn submission_by_id(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let submission = stored_submission(&state, &headers, id, false).await?;
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    if !wants_csv {
        return Ok(Json(submission_json(submission, false)).into_response());
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    let internal = |_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    };
    writer
        .write_record(["row", "line", "field", "rule", "severity", "message"])
        .map_err(internal)?;
    for entry in submission.report {
        writer
            .write_record([
                entry.row.to_string(),
                entry.line.to_string(),
                entry.field,
                entry.rule,
                entry.severity,
                entry.message,
            ])
            .map_err(internal)?;
    }
    let bytes = writer.into_inner().map_err(|_| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/csv; charset=utf-8"),
        )],
        bytes,
    )
        .into_response())
}

/// `GET /v1/lmi/submissions/{id}/delta`: what the submission changed against the figures
/// published when it was checked.
async fn submission_delta(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let submission = stored_submission(&state, &headers, id, true).await?;
    Ok(Json(delta_json(submission.delta.unwrap_or_default())).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(body: &[u8]) -> Result<Vec<FigureRow>, Problem> {
        let mut all = Vec::new();
        parse_csv(body, |rows| {
            all.extend(rows);
            true
        })?;
        Ok(all)
    }

    #[test]
    fn rows_arrive_in_chunks_and_a_bad_record_stops_the_stream_naming_it() {
        let header = "soc_code,region,period,measure,value,unit,source\n";
        let row = "2134,K02000001,2024,median_annual_pay,54669,GBP,ONS\n";
        let mut csv = header.to_owned();
        for _ in 0..2_500 {
            csv.push_str(row);
        }
        let mut chunks = Vec::new();
        let read = parse_csv(csv.as_bytes(), |rows| {
            chunks.push(rows.len());
            true
        })
        .unwrap();
        assert_eq!((read, chunks), (2_500, vec![1_000, 1_000, 500]));

        let mut broken = csv.into_bytes();
        broken.extend_from_slice(b"2134,K02000001,2024,median_annual_pay,\xff\xfe,GBP,ONS\n");
        let error = parse_all(&broken).unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.detail.contains("2502"), "{}", error.detail);
    }

    #[test]
    fn a_csv_with_the_template_header_parses_with_lines() {
        let csv = "soc_code,region,period,measure,value,unit,source,breakdown\n\
                   2134,K02000001,2024,median_annual_pay,54669,GBP,ONS ASHE 2024,full_time\n";
        let rows = parse_all(csv.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].soc_code.as_str(), rows[0].value, rows[0].line),
            ("2134", 54669.0, 2)
        );
    }

    #[test]
    fn a_csv_with_a_wrong_header_is_refused_naming_the_column() {
        let error = parse_all(b"soc,region\n2134,K02000001\n").unwrap_err();
        assert_eq!(error.status, StatusCode::BAD_REQUEST);
        assert!(error.detail.contains("\"soc\""), "{}", error.detail);
        let error = parse_all(b"soc_code,region\n").unwrap_err();
        assert!(error.detail.contains("period"), "{}", error.detail);
    }
}
