//! The HTTP/JSON API under `/v1`: one module per service behind it, each with its own
//! route table, all sharing [`call`] (state, caller, the call upstream) and
//! [`crate::problem`]. Bearer tokens are verified, the caller is passed on as the internal
//! identity token, and gRPC statuses become problem+json.

use axum::{Router, extract::DefaultBodyLimit, response::Response};

pub mod call;

mod ambassadors;
mod casenotes;
mod lmi;
mod occupations;

pub use call::ApiState;

/// The `/v1` routes, behind the front door: load shedding, then who may call what; one
/// access line per request.
pub fn routes(
    state: ApiState,
    front: crate::front::Front,
    limits: &crate::Limits,
    access_log: crate::AccessLogSettings,
) -> Router {
    Router::new()
        .merge(occupations::routes())
        .merge(lmi::routes())
        .merge(casenotes::routes())
        .merge(ambassadors::routes())
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .route_layer(axum::middleware::from_fn_with_state(
            front.clone(),
            crate::front::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            front,
            crate::front::shed,
        ))
        .layer(axum::middleware::from_fn_with_state(
            crate::slow::BodyRate {
                grace: limits.body_grace,
                min_bytes_per_second: limits.body_min_bytes_per_second,
            },
            crate::slow::min_body_rate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            access_log,
            trace_request,
        ))
        .with_state(state)
}

/// A span per request, continuing the caller's trace when it sends `traceparent` (the
/// calls to services carry it on), its metrics (`careers_http_requests_total`,
/// `careers_http_request_duration_seconds`: by route template, method, status class and
/// caller kind), and its access line: one JSON line with the request id,
/// route template, status, duration and the caller's subject and kind, from the span's
/// fields. Failures are always written; successes at `access_log.sample_rate`.
async fn trace_request(
    axum::extract::State(access_log): axum::extract::State<crate::AccessLogSettings>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let request_id = crate::problem::current_request_id();
    let span = tracing::info_span!(
        "http.request",
        otel.kind = "server",
        http.request.method = %request.method(),
        request_id = request_id.as_deref(),
        // Recorded once the route is known and the caller admitted.
        http.route = tracing::field::Empty,
        caller.sub = tracing::field::Empty,
        caller.kind = tracing::field::Empty,
    );
    if let Err(error) = span.set_parent(careers_platform::grpc::trace_context_of(request.headers()))
    {
        tracing::debug!(%error, "cannot continue the caller's trace");
    }
    let started = std::time::Instant::now();
    let method = match *request.method() {
        // Any other method is answered 405; it must not mint a series.
        ref method @ (axum::http::Method::GET
        | axum::http::Method::POST
        | axum::http::Method::PUT
        | axum::http::Method::PATCH
        | axum::http::Method::DELETE
        | axum::http::Method::HEAD
        | axum::http::Method::OPTIONS) => method.as_str().to_owned(),
        _ => "other".to_owned(),
    };
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    let labels = response
        .extensions()
        .get::<crate::front::RouteLabels>()
        .copied()
        .unwrap_or(crate::front::RouteLabels {
            route: "unmatched",
            caller_kind: "none",
        });
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!(
        "careers_http_requests_total",
        "route" => labels.route,
        "method" => method.clone(),
        "status_class" => format!("{}xx", status.as_u16() / 100),
        "caller_kind" => labels.caller_kind
    )
    .increment(1);
    metrics::histogram!(
        "careers_http_request_duration_seconds",
        "route" => labels.route,
        "method" => method
    )
    .record(elapsed);
    if status.is_client_error()
        || status.is_server_error()
        || access_log.samples(request_id.as_deref().unwrap_or_default())
    {
        span.in_scope(|| {
            tracing::info!(
                target: "careers::access",
                duration_ms = elapsed * 1000.0,
                http.response.status_code = status.as_u16(),
                "request"
            );
        });
    }
    response
}
