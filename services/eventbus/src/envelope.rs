//! The CloudEvents NATS binding of CONTRACT.md: headers written by the relay and read
//! back by consumers. The payload is the bare protobuf message.

use async_nats::HeaderMap;
use chrono::{DateTime, SecondsFormat, Utc};
use opentelemetry::propagation::{Extractor, Injector};

use crate::entity::outbox;

pub const CE_ID: &str = "ce-id";
pub const CE_SPECVERSION: &str = "ce-specversion";
pub const CE_TYPE: &str = "ce-type";
pub const CE_SOURCE: &str = "ce-source";
pub const CE_TIME: &str = "ce-time";
pub const CE_SUBJECT: &str = "ce-subject";
pub const KEY_VERSION: &str = "careers-key-version";
pub const CONTENT_TYPE: &str = "content-type";
pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
pub const DLQ_REASON: &str = "careers-dlq-reason";
pub const DLQ_DELIVERIES: &str = "careers-dlq-deliveries";
/// On a dead letter: the subject the event was first published on, for replay.
pub const DLQ_SUBJECT: &str = "careers-dlq-subject";

/// The headers of an outbox row, as published.
pub fn headers(row: &outbox::Model, source: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, row.event_id.as_str());
    headers.insert(CE_ID, row.event_id.as_str());
    headers.insert(CE_SPECVERSION, "1.0");
    headers.insert(CE_TYPE, row.event_type.as_str());
    headers.insert(CE_SOURCE, source);
    headers.insert(
        CE_TIME,
        row.created_at
            .to_rfc3339_opts(SecondsFormat::Micros, true)
            .as_str(),
    );
    headers.insert(CE_SUBJECT, row.aggregate_key.as_str());
    headers.insert(KEY_VERSION, row.aggregate_version.to_string().as_str());
    headers.insert(CONTENT_TYPE, "application/protobuf");
    if let Some(traceparent) = &row.traceparent {
        headers.insert(TRACEPARENT, traceparent.as_str());
    }
    if let Some(tracestate) = &row.tracestate {
        headers.insert(TRACESTATE, tracestate.as_str());
    }
    headers
}

/// A received event: its CloudEvents attributes and payload.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub id: String,
    pub event_type: String,
    pub subject: String,
    /// The aggregate key (`ce-subject`).
    pub key: String,
    /// The aggregate's version (`careers-key-version`).
    pub version: i64,
    pub time: DateTime<Utc>,
    pub payload: bytes::Bytes,
    pub headers: HeaderMap,
}

/// Why a message is not a well-formed event; such a message is dead-lettered at once.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("header {0} is missing")]
    Missing(&'static str),
    #[error("header {name} is malformed: {value}")]
    Malformed { name: &'static str, value: String },
}

impl Envelope {
    pub fn from_message(
        subject: &str,
        headers: Option<&HeaderMap>,
        payload: bytes::Bytes,
    ) -> Result<Self, EnvelopeError> {
        let headers = headers.cloned().unwrap_or_default();
        let get = |name: &'static str| {
            headers
                .get(name)
                .map(|value| value.as_str().to_owned())
                .ok_or(EnvelopeError::Missing(name))
        };
        let version = get(KEY_VERSION)?;
        let time = get(CE_TIME)?;
        Ok(Self {
            id: get(CE_ID)?,
            event_type: get(CE_TYPE)?,
            subject: subject.to_owned(),
            key: get(CE_SUBJECT)?,
            version: version.parse().map_err(|_| EnvelopeError::Malformed {
                name: KEY_VERSION,
                value: version.clone(),
            })?,
            time: DateTime::parse_from_rfc3339(&time)
                .map_err(|_| EnvelopeError::Malformed {
                    name: CE_TIME,
                    value: time.clone(),
                })?
                .with_timezone(&Utc),
            payload,
            headers,
        })
    }

    /// Decodes the payload as `E`.
    pub fn decode<E: prost::Message + Default>(&self) -> Result<E, prost::DecodeError> {
        E::decode(self.payload.clone())
    }

    /// The producer's trace context, to continue its trace in the handler.
    pub fn trace_context(&self) -> opentelemetry::Context {
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.extract(&HeaderExtractor(&self.headers))
        })
    }
}

/// The current span's W3C trace context, to store beside an outbox row.
pub fn current_trace_context() -> (Option<String>, Option<String>) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let mut carrier = TraceCarrier::default();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut carrier);
    });
    (carrier.traceparent, carrier.tracestate)
}

#[derive(Default)]
struct TraceCarrier {
    traceparent: Option<String>,
    tracestate: Option<String>,
}

impl Injector for TraceCarrier {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.traceparent = Some(value),
            TRACESTATE if !value.is_empty() => self.tracestate = Some(value),
            _ => {}
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}
