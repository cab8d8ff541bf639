//! The event backbone's settings; each service embeds these sections in its own.

use std::time::Duration;

use serde::Deserialize;

/// `[nats]`: the broker and the streams this service owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct NatsSettings {
    pub url: String,
    /// Stream replicas: 1 on one machine, 3 in a cluster.
    pub replicas: usize,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a republished duplicate.
    #[serde(with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// How long the service's own stream keeps events; 0 keeps them for ever (occupations
    /// and lmi rebuild projections from the whole history).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// How long dead letters are kept.
    #[serde(with = "humantime_serde")]
    pub dead_letter_max_age: Duration,
    /// How long to wait for a PubAck or an API answer.
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:14222".into(),
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::ZERO,
            dead_letter_max_age: Duration::from_secs(30 * 24 * 3600),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// `[outbox]`: the relay and the janitor of sent rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct OutboxSettings {
    /// The longest time between two polls of the outbox (a commit also wakes the relay).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Rows published per batch; their PubAcks are awaited together.
    pub batch_size: u64,
    /// Sent rows are deleted after this.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// How often the reconciler compares the outbox with the stream.
    #[serde(with = "humantime_serde")]
    pub reconcile_interval: Duration,
    /// The longest pause between retries while NATS is unreachable.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(10),
            batch_size: 500,
            retention: Duration::from_secs(7 * 24 * 3600),
            reconcile_interval: Duration::from_secs(30),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// `[inbox]`: consumers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct InboxSettings {
    /// Handled event ids are kept this long; never shorter than the producing stream's
    /// max age, or a late redelivery could be applied twice.
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    /// Messages handled per database transaction.
    pub batch_size: usize,
    /// Deliveries of a failing event before it goes to the dead-letter stream.
    pub max_attempts: u32,
    /// Delay before the n-th redelivery of a failed event (the last repeats).
    #[serde(deserialize_with = "durations")]
    pub retry_backoff: Vec<Duration>,
    /// How long JetStream waits for an ack before redelivering.
    #[serde(with = "humantime_serde")]
    pub ack_wait: Duration,
}

impl Default for InboxSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(30 * 24 * 3600),
            batch_size: 200,
            max_attempts: 5,
            retry_backoff: vec![
                Duration::from_millis(100),
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(10),
            ],
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// A list of humantime durations such as `["100ms", "2s"]`.
fn durations<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Duration>, D::Error> {
    let wrapped: Vec<humantime_serde::Serde<Duration>> = Deserialize::deserialize(deserializer)?;
    Ok(wrapped
        .into_iter()
        .map(humantime_serde::Serde::into_inner)
        .collect())
}

/// The sections a service that produces or consumes events embeds in its settings
/// (`[nats]`, `[outbox]`, `[inbox]`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct EventSettings {
    #[serde(default)]
    pub nats: NatsSettings,
    #[serde(default)]
    pub outbox: OutboxSettings,
    #[serde(default)]
    pub inbox: InboxSettings,
}
