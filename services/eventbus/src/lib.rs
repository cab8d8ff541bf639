//! The event backbone shared by every careers service: NATS JetStream with a
//! transactional outbox and an idempotent inbox.
//!
//! - [`catalogue`]: every event's subject and type, every stream.
//! - [`migration`]: the `outbox` and `inbox` tables each service's migrator includes.
//! - [`outbox`]: [`outbox::enqueue`] in the state change's transaction, and the relay.
//! - [`consumer`]: durable consumers applying each event once, with dead letters.
//! - [`reconcile`]: republishing what a stream lost; pruning old rows.
//! - [`dlq`], [`replay`]: what `careersctl dlq` and `careersctl replay` do.
//! - [`provision`]: connecting and creating streams in code.
//! - [`envelope`]: the CloudEvents headers.
//! - [`testing`]: a projection for testing and benchmarking the backbone itself.

pub mod catalogue;
pub mod consumer;
pub mod dlq;
pub mod entity;
pub mod envelope;
mod error;
pub mod known_occupations;
pub mod migration;
pub mod outbox;
mod pauses;
pub mod provision;
pub mod reconcile;
pub mod replay;
pub mod settings;
pub mod testing;

pub use catalogue::Event;
pub use consumer::{Consumer, ConsumerSpec, Handler, HandlerError};
pub use envelope::Envelope;
pub use error::EventbusError;
pub use outbox::{Relay, RelayWaker, enqueue};
pub use pauses::Pauses;

use std::time::Duration;

use async_nats::jetstream;
use sea_orm::DatabaseConnection;
use tokio::sync::watch;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// When the backbone's tasks stop, and what waits for them: `stop` is cancelled when
/// shutdown begins; a process that waits on `tasks` before it exits lets the relay finish
/// its publish and each consumer commit and acknowledge the batch it is applying.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    pub stop: CancellationToken,
    pub tasks: TaskTracker,
}

impl From<CancellationToken> for Lifecycle {
    fn from(stop: CancellationToken) -> Self {
        Self {
            stop,
            tasks: TaskTracker::new(),
        }
    }
}

/// The event backbone of one service, started: its relay runs, its consumers run.
#[derive(Debug)]
pub struct Eventbus {
    jetstream: jetstream::Context,
    db: DatabaseConnection,
    inbox: settings::InboxSettings,
    waker: RelayWaker,
    caught_up: Vec<watch::Receiver<bool>>,
    lifecycle: Lifecycle,
}

impl Eventbus {
    /// Connects to NATS (in the background if it is down) and starts the relay of the
    /// service's outbox to its own stream. Everything stops when `lifecycle.stop` is
    /// cancelled, each task at a point where nothing is half done.
    pub async fn start(
        service: &str,
        db: DatabaseConnection,
        own_stream: catalogue::StreamName,
        nats: &settings::NatsSettings,
        outbox: &settings::OutboxSettings,
        inbox: &settings::InboxSettings,
        lifecycle: impl Into<Lifecycle>,
    ) -> Result<Self, EventbusError> {
        let lifecycle = lifecycle.into();
        let jetstream = provision::connect(nats, &format!("careers-{service}")).await?;
        let relay = Relay::new(
            db.clone(),
            jetstream.clone(),
            own_stream,
            nats.clone(),
            outbox.clone(),
            inbox.retention,
        );
        let waker = relay.waker();
        lifecycle.tasks.spawn(relay.run(lifecycle.stop.clone()));
        Ok(Self {
            jetstream,
            db,
            inbox: inbox.clone(),
            waker,
            caught_up: Vec::new(),
            lifecycle,
        })
    }

    /// [`Eventbus::start`] with a service's `[nats]`, `[outbox]` and `[inbox]` sections.
    pub async fn for_service(
        service: &str,
        db: DatabaseConnection,
        own_stream: catalogue::StreamName,
        settings: &settings::EventSettings,
        lifecycle: impl Into<Lifecycle>,
    ) -> Result<Self, EventbusError> {
        Self::start(
            service,
            db,
            own_stream,
            &settings.nats,
            &settings.outbox,
            &settings.inbox,
            lifecycle,
        )
        .await
    }

    /// Starts a durable consumer with its handler.
    pub fn consume<H: Handler>(&mut self, spec: ConsumerSpec, handler: H) {
        let consumer = Consumer::new(
            self.db.clone(),
            self.jetstream.clone(),
            spec,
            self.inbox.clone(),
            handler,
        );
        self.caught_up.push(consumer.caught_up());
        self.lifecycle
            .tasks
            .spawn(consumer.run(self.lifecycle.stop.clone()));
    }

    /// Wake the relay after committing an outbox row.
    pub fn waker(&self) -> RelayWaker {
        self.waker.clone()
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.jetstream
    }

    /// Waits until every consumer caught up once, or `timeout`; returns whether they did.
    pub async fn caught_up(&self, timeout: Duration) -> bool {
        let all = futures::future::join_all(self.caught_up.iter().cloned().map(
            |mut receiver| async move { receiver.wait_for(|caught_up| *caught_up).await.is_ok() },
        ));
        tokio::time::timeout(timeout, all)
            .await
            .is_ok_and(|results| results.into_iter().all(|ok| ok))
    }
}

/// Begins a transaction that will write. On SQLite it takes the write lock at `BEGIN`
/// (IMMEDIATE): a deferred transaction that read first fails at once with "database is
/// locked" when another connection wrote in between, instead of waiting its turn.
/// Other backends begin as usual.
pub async fn begin_write(
    db: &DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// The HELP text of the event bus's metric families, once per process (the exporter is
/// installed first, at start).
pub fn describe_metrics() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_counter!(
            "careers_events_applied_total",
            "events a durable consumer applied (committed; duplicates not counted)"
        );
        describe_counter!(
            "careers_events_redelivered_total",
            "events delivered again to a durable consumer"
        );
        describe_counter!(
            "careers_events_dead_lettered_total",
            "events a durable consumer gave up on and sent to CAREERS_DEADLETTER"
        );
        describe_gauge!(
            "careers_consumer_lag",
            "events in the stream a durable consumer has not yet acknowledged"
        );
        describe_histogram!(
            "careers_event_propagation_seconds",
            Unit::Seconds,
            "from the producer's commit of an event to the consumer's commit of its effect"
        );
        describe_counter!(
            "careers_events_published_total",
            "outbox events published to JetStream, by stream"
        );
        describe_counter!(
            "careers_outbox_republished_total",
            "outbox events the reconciler published again, by stream"
        );
        describe_gauge!("careers_outbox_pending", "outbox events not yet published");
        describe_gauge!(
            "careers_outbox_oldest_age_seconds",
            "age of the oldest unpublished outbox event (0 when none)"
        );
        describe_gauge!(
            "careers_nats_connected",
            "1 while the NATS connection is up, 0 while it is down"
        );
    });
}
