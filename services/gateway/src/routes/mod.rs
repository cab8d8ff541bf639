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

/// The `/v1` routes, behind the front door: load shedding, then who may call what.
pub fn routes(state: ApiState, front: crate::front::Front, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(occupations::routes())
        .merge(lmi::routes())
        .merge(casenotes::routes())
        .merge(ambassadors::routes())
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
