//! Logs, traces and metrics, set up once per process.
//!
//! Logs are JSON lines on stdout carrying the OpenTelemetry trace and span ids. Traces go
//! to OTLP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, sampled parent-based with the
//! configured ratio. Metrics are served in the Prometheus format on the metrics port.

use std::net::SocketAddr;

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{Sampler, SdkTracerProvider, SpanExporter},
};
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::settings::{MetricsSettings, TelemetrySettings};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry: bad log filter `{filter}`: {reason}")]
    Filter { filter: String, reason: String },
    #[error("telemetry: OTLP exporter: {0}")]
    Exporter(String),
    #[error("metrics: cannot listen on {addr}: {reason}")]
    Metrics { addr: SocketAddr, reason: String },
}

/// Flushes buffered spans when dropped; keep it alive for the life of the process.
#[derive(Debug)]
pub struct TelemetryGuard {
    /// `None` when tracing export is off.
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now (tests read them right after).
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(error) = provider.force_flush()
        {
            tracing::warn!(%error, "flushing spans failed");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans at exit failed: {error}");
        }
    }
}

/// Installs the global log subscriber and, when an OTLP endpoint is set, the trace
/// exporter. A second call in the same process (tests) keeps the first subscriber.
pub fn init(service: &str, settings: &TelemetrySettings) -> Result<TelemetryGuard, TelemetryError> {
    let exporter = match std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => Some(
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|error| TelemetryError::Exporter(error.to_string()))?,
        ),
        _ => None,
    };
    init_with_exporter(service, settings, exporter)
}

/// Like [`init`] with an explicit span exporter, for tests that inspect spans.
pub fn init_with_exporter(
    service: &str,
    settings: &TelemetrySettings,
    exporter: Option<impl SpanExporter + 'static>,
) -> Result<TelemetryGuard, TelemetryError> {
    init_writing_to(service, settings, exporter, std::io::stdout)
}

/// Like [`init_with_exporter`], with the log lines written to `writer` instead of stdout:
/// for tests that read what a process would have logged.
pub fn init_writing_to<W>(
    service: &str,
    settings: &TelemetrySettings,
    exporter: Option<impl SpanExporter + 'static>,
    writer: W,
) -> Result<TelemetryGuard, TelemetryError>
where
    W: for<'writer> tracing_subscriber::fmt::MakeWriter<'writer> + Send + Sync + 'static,
{
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter =
        EnvFilter::try_new(&settings.log_filter).map_err(|error| TelemetryError::Filter {
            filter: settings.log_filter.clone(),
            reason: error.to_string(),
        })?;

    // Spans are always created with OpenTelemetry context so that logs carry trace ids
    // and incoming trace context propagates, even when nothing is exported.
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sampling_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(format!("careers-{service}"))
                .with_attribute(KeyValue::new("service.namespace", "careers"))
                .build(),
        );
    let exporting = exporter.is_some();
    if let Some(exporter) = exporter {
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer(format!("careers-{service}"));
    opentelemetry::global::set_tracer_provider(provider.clone());

    // One flat object per line: the event's fields and those of the spans it is written in
    // (a call's method and request id, an event's type and id), so a request id finds
    // every line of its request. Spans carry ids and names of operations only, never
    // personal data.
    let logs = json_subscriber::fmt::layer()
        .with_opentelemetry_ids(true)
        .with_current_span(false)
        .flatten_span_list_on_top_level(true)
        .flatten_event(true)
        .with_target(true)
        .with_writer(writer);
    // The log filter applies to logs only: quieter logs must not drop the spans that
    // carry traces across services.
    let traces = settings.tracing.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_filter(LevelFilter::INFO)
    });
    let installed = tracing_subscriber::registry()
        .with(traces)
        .with(logs.with_filter(filter))
        .try_init()
        .is_ok();
    if !installed {
        tracing::debug!("a log subscriber was already installed; keeping it");
    }
    Ok(TelemetryGuard {
        provider: exporting.then_some(provider),
    })
}

/// Histogram buckets, in seconds: from a cached read (a few ms) to a long submission.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The HELP text of the families every process exports, and `careers_build_info`.
fn describe_process_metrics() {
    metrics::describe_gauge!(
        "careers_build_info",
        "1, labelled with the version and the commit this process was built from"
    );
    metrics::gauge!("careers_build_info", "version" => env!("CARGO_PKG_VERSION"), "commit" => crate::COMMIT)
        .set(1.0);
    metrics::describe_counter!(
        "careers_grpc_server_requests_total",
        "gRPC calls answered, by method and status code"
    );
    metrics::describe_histogram!(
        "careers_grpc_server_duration_seconds",
        metrics::Unit::Seconds,
        "time to the answer's headers of a gRPC call, by method"
    );
    crate::store::describe_metrics();
    // The process families, read again every second by a thread of their own, so they
    // are current whatever the runtime is busy with.
    let collector = metrics_process::Collector::default();
    collector.describe();
    collector.collect();
    let spawned = std::thread::Builder::new()
        .name("process-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(1));
                collector.collect();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cannot start the process metrics thread");
    }
}

/// Serves Prometheus metrics on their own port. Only the first call in a process
/// installs the recorder; later calls (several services in one test) are no-ops.
pub fn serve_metrics(settings: &MetricsSettings) -> Result<(), TelemetryError> {
    if !settings.enabled {
        return Ok(());
    }
    let result = metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(settings.listen)
        // Every histogram as buckets, never a summary: buckets add up across replicas.
        .set_buckets(&DURATION_BUCKETS)
        .map_err(|error| TelemetryError::Metrics {
            addr: settings.listen,
            reason: error.to_string(),
        })?
        .install();
    match result {
        Ok(()) => {
            describe_process_metrics();
            Ok(())
        }
        Err(metrics_exporter_prometheus::BuildError::FailedToSetGlobalRecorder(_)) => Ok(()),
        Err(error) => Err(TelemetryError::Metrics {
            addr: settings.listen,
            reason: error.to_string(),
        }),
    }
}
