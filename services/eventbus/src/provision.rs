//! Connecting to NATS and creating streams, idempotently, in code at start.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use crate::{EventbusError, catalogue::StreamName, settings::NatsSettings};

/// Connects in the background: the service starts (and stays ready) while NATS is down,
/// and `careers_nats_connected` says whether it is reachable.
pub async fn connect(
    settings: &NatsSettings,
    name: &str,
) -> Result<jetstream::Context, EventbusError> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .connection_timeout(settings.request_timeout)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => {
                    metrics::gauge!("careers_nats_connected").set(1.0);
                    tracing::info!("connected to NATS");
                }
                async_nats::Event::Disconnected => {
                    metrics::gauge!("careers_nats_connected").set(0.0);
                    tracing::warn!("disconnected from NATS; events wait in the outbox");
                }
                other => tracing::debug!(event = %other, "nats event"),
            }
        })
        .connect(&settings.url)
        .await
        .map_err(EventbusError::nats)?;
    Ok(context(client, settings))
}

/// Connects at once or fails: for command-line tools, which should not wait for a
/// broker that is not there.
pub async fn connect_now(
    settings: &NatsSettings,
    name: &str,
) -> Result<jetstream::Context, EventbusError> {
    let client = async_nats::ConnectOptions::new()
        .name(name)
        .connection_timeout(settings.request_timeout)
        .connect(&settings.url)
        .await
        .map_err(EventbusError::nats)?;
    Ok(context(client, settings))
}

fn context(client: async_nats::Client, settings: &NatsSettings) -> jetstream::Context {
    let mut context = jetstream::new(client);
    context.set_timeout(settings.request_timeout);
    context
}

/// Publishes one message and waits for its PubAck.
pub async fn publish_and_wait(
    jetstream: &jetstream::Context,
    subject: String,
    payload: bytes::Bytes,
    headers: async_nats::HeaderMap,
) -> Result<jetstream::publish::PublishAck, EventbusError> {
    let message = jetstream::message::PublishMessage::build()
        .payload(payload)
        .headers(headers);
    jetstream
        .send_publish(subject, message)
        .await
        .map_err(|error| EventbusError::Publish(error.to_string()))?
        .await
        .map_err(|error| EventbusError::Publish(error.to_string()))
}

/// Creates or updates `stream` with the configured retention and replicas.
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    stream: StreamName,
    max_age: Duration,
    settings: &NatsSettings,
) -> Result<(), EventbusError> {
    jetstream
        .create_or_update_stream(stream::Config {
            name: stream.name.to_owned(),
            subjects: vec![stream.subjects.to_owned()],
            storage: stream::StorageType::File,
            retention: stream::RetentionPolicy::Limits,
            num_replicas: settings.replicas,
            duplicate_window: settings.duplicate_window,
            max_age,
            ..Default::default()
        })
        .await
        .map_err(EventbusError::nats)?;
    Ok(())
}

/// The service's own stream and the shared dead-letter stream.
pub async fn ensure_streams(
    jetstream: &jetstream::Context,
    own: StreamName,
    settings: &NatsSettings,
) -> Result<(), EventbusError> {
    ensure_stream(jetstream, own, settings.max_age, settings).await?;
    ensure_stream(
        jetstream,
        crate::catalogue::DEAD_LETTERS,
        settings.dead_letter_max_age,
        settings,
    )
    .await
}
