//! gRPC plumbing shared by every server and client: reflection, W3C trace context carried
//! in request metadata, and the request id the gateway gives every call (`x-request-id`),
//! which is on every log line written for the call and on its answer.

use std::{task::Poll, time::Instant};

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reflection v1, for current clients such as `buf curl`.
pub fn reflection_v1() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(careers_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// Reflection v1alpha: grpcurl 1.8 lists services only through this one.
pub fn reflection_v1alpha() -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(careers_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
}

/// The metadata key (and HTTP header) of the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Whether `id` may be taken as a request id: short, and only characters that are safe in
/// a log line and a header.
pub fn sane_request_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-_.:".contains(&byte))
}

/// The request id a call carries, when it carries a sane one.
fn request_id_of(headers: &http::HeaderMap) -> Option<&str> {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| sane_request_id(id))
}

/// The span of one incoming call, a child of the caller's trace when the request
/// carries `traceparent`. Its fields (the request id among them) are on every log line
/// written inside it.
pub fn request_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path();
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        request_id = request_id_of(request.headers()),
    );
    if let Err(error) = span.set_parent(trace_context_of(request.headers())) {
        tracing::debug!(%error, "cannot set the caller's trace as parent");
    }
    span
}

/// The W3C trace context an incoming request carries (empty when none).
pub fn trace_context_of(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Writes the current span's trace context into outgoing request metadata.
pub fn inject_trace_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut MetadataInjector(metadata));
    });
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Answers every call with its request id (`x-request-id`), counts it by method and code
/// (`careers_grpc_server_requests_total`, `careers_grpc_server_duration_seconds`), and logs
/// a call answered with an error: its code and time, never its message, which may quote
/// the caller's input. The code is read from the answer's headers: an error answered
/// before any message ("trailers only", as every unary error is); an answer whose status
/// comes later, in trailers, counts as OK.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnswerLayer;

impl<S> tower::Layer<S> for AnswerLayer {
    type Service = Answer<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Answer(inner)
    }
}

/// See [`AnswerLayer`].
#[derive(Debug, Clone)]
pub struct Answer<S>(S);

impl<S, B, R> tower::Service<http::Request<B>> for Answer<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(context)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id =
            request_id_of(request.headers()).and_then(|id| http::HeaderValue::from_str(id).ok());
        let started = Instant::now();
        let method = request.uri().path().trim_start_matches('/').to_owned();
        let answering = self.0.call(request);
        Box::pin(async move {
            let mut response = answering.await?;
            // An error answered before any message is "trailers only": its code is a header.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .filter(|code| *code != 0);
            let elapsed = started.elapsed();
            if let Some(code) = code {
                tracing::info!(
                    rpc.grpc.status_code = code,
                    code = %tonic::Code::from_i32(code).description(),
                    duration_ms = elapsed.as_secs_f64() * 1000.0,
                    "call answered with an error"
                );
            }
            let code = tonic::Code::from_i32(code.unwrap_or(0));
            // The method as a label only when it is one this server has: a made-up path
            // (answered UNIMPLEMENTED) must not mint a series.
            let method = if code == tonic::Code::Unimplemented {
                "unknown".to_owned()
            } else {
                method
            };
            metrics::counter!(
                "careers_grpc_server_requests_total",
                "method" => method.clone(),
                "code" => format!("{code:?}")
            )
            .increment(1);
            metrics::histogram!("careers_grpc_server_duration_seconds", "method" => method)
                .record(elapsed.as_secs_f64());
            if let Some(id) = id {
                response.headers_mut().insert(REQUEST_ID, id);
            }
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_short_plain_request_id_is_taken() {
        assert!(sane_request_id("0190a0b0-0000-7000-8000-000000000001"));
        assert!(sane_request_id("lb:abc_1.2"));
        for bad in ["", "a b", "x\ny", "é", &"a".repeat(129)] {
            assert!(!sane_request_id(bad), "{bad:?}");
        }
    }
}
