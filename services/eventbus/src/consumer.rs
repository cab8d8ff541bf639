//! Durable pull consumers that apply each event exactly once in effect.
//!
//! A batch of messages is handled in ONE database transaction: for each event the inbox
//! is checked, the handler's effect and the inbox row are written (in a savepoint, so one
//! failing event does not undo the others), then the transaction commits and only then
//! are the messages acknowledged (`double_ack`). A crash before the ack means a
//! redelivery, which the inbox turns into a no-op.
//!
//! A handler that keeps failing is retried with backoff `max_attempts` times, then its
//! message goes to the dead-letter stream with the reason and the events behind it keep
//! flowing. Store errors are not the event's fault: they are retried without limit.

use std::{
    collections::HashSet,
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull},
};
use chrono::Utc;
use futures::StreamExt;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DatabaseTransaction, DbErr, EntityTrait,
    QueryFilter, TransactionTrait,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    EventbusError,
    catalogue::{self, StreamName},
    entity::inbox,
    envelope::{self, Envelope},
    settings::InboxSettings,
};

/// Why a handler could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The store failed; the event is retried without limit.
    #[error("store: {0}")]
    Store(#[from] DbErr),
    /// The event cannot be applied (malformed payload, broken invariant); retried
    /// `max_attempts` times, then dead-lettered with this reason.
    #[error("{0}")]
    Rejected(String),
}

/// What a consumer does with each event. The effect must be written through `txn` only.
pub trait Handler: Send + Sync + 'static {
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        event: &'a Envelope,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a;

    /// Deletes every row of the projection this handler builds, so a replay rebuilds it.
    fn reset<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
    ) -> impl Future<Output = Result<(), DbErr>> + Send + 'a;
}

/// Which events a durable consumer reads.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    /// `<consumer>_<purpose>`, e.g. `lmi_occupations`.
    pub durable: String,
    pub stream: StreamName,
    /// Subjects within the stream; empty means all.
    pub subjects: Vec<String>,
}

impl ConsumerSpec {
    /// The JetStream configuration of this durable: explicit acks, from the start of the
    /// stream, redelivery left to us (naks with backoff), unlimited deliveries because
    /// dead-lettering is ours too.
    pub fn config(&self, settings: &InboxSettings) -> pull::Config {
        pull::Config {
            durable_name: Some(self.durable.clone()),
            filter_subjects: self.subjects.clone(),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            ack_wait: settings.ack_wait,
            max_deliver: -1,
            max_ack_pending: (settings.batch_size * 10) as i64,
            ..Default::default()
        }
    }
}

/// Runs one durable consumer with its handler.
#[derive(Debug)]
pub struct Consumer<H> {
    db: DatabaseConnection,
    jetstream: jetstream::Context,
    spec: ConsumerSpec,
    settings: InboxSettings,
    handler: Arc<H>,
    caught_up: watch::Sender<bool>,
    /// Events this consumer applied (committed, not duplicates): logged when it stops, so
    /// the work of replicas sharing a durable can be added up.
    applied: AtomicU64,
}

/// What to do with a message once the batch's transaction has committed.
#[derive(Debug)]
enum Outcome {
    Ack,
    /// Already applied (a redelivery): acknowledged, nothing done.
    Duplicate,
    /// Retry after the delay; the event's fault.
    Nak(Duration),
    /// Retry after the delay; not the event's fault (the store).
    Retry(Duration),
    DeadLetter(String),
}

impl<H: Handler> Consumer<H> {
    pub fn new(
        db: DatabaseConnection,
        jetstream: jetstream::Context,
        spec: ConsumerSpec,
        settings: InboxSettings,
        handler: H,
    ) -> Self {
        Self {
            db,
            jetstream,
            spec,
            settings,
            handler: Arc::new(handler),
            caught_up: watch::channel(false).0,
            applied: {
                crate::describe_metrics();
                AtomicU64::new(0)
            },
        }
    }

    /// Becomes true once the durable had nothing pending since this consumer started.
    pub fn caught_up(&self) -> watch::Receiver<bool> {
        self.caught_up.subscribe()
    }

    /// Consumes until `stop`, reconnecting with backoff when NATS or the consumer goes
    /// away (a broker restart, `careersctl replay` recreating the durable). A batch being
    /// applied when `stop` comes is committed and acknowledged first; what was pulled and
    /// not yet applied is redelivered to another replica after `ack_wait`.
    pub async fn run(self, stop: CancellationToken) {
        const LONGEST_PAUSE: Duration = Duration::from_secs(5);
        // Every counter at 0 from the start: an alert's increase() over a series that
        // appears with its first dead letter would miss that dead letter.
        for family in [
            "careers_events_applied_total",
            "careers_events_redelivered_total",
            "careers_events_dead_lettered_total",
        ] {
            metrics::counter!(family, "durable" => self.spec.durable.clone()).increment(0);
        }
        let mut pauses = crate::Pauses::new(LONGEST_PAUSE);
        while !stop.is_cancelled() {
            let started = tokio::time::Instant::now();
            match self.consume(&stop).await {
                Ok(()) => break,
                Err(error) => {
                    // A run that lasted was connected: this is a new outage, not the same one.
                    if started.elapsed() > 6 * LONGEST_PAUSE {
                        pauses.reset();
                    }
                    let pause = pauses.pause();
                    tracing::warn!(durable = %self.spec.durable, %error, retry_in = ?pause, "consumer interrupted");
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
        tracing::info!(
            durable = %self.spec.durable,
            applied = self.applied.load(Ordering::Relaxed),
            "consumer stopped"
        );
    }

    async fn consume(&self, stop: &CancellationToken) -> Result<(), EventbusError> {
        let stream = self
            .jetstream
            .get_stream(self.spec.stream.name)
            .await
            .map_err(EventbusError::nats)?;
        let mut consumer: PullConsumer = stream
            .get_or_create_consumer(&self.spec.durable, self.spec.config(&self.settings))
            .await
            .map_err(EventbusError::nats)?;
        self.check_caught_up(&mut consumer).await;
        let messages = consumer
            .stream()
            .max_messages_per_batch(self.settings.batch_size * 2)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(30))
            .messages()
            .await
            .map_err(EventbusError::nats)?;
        let mut chunks = messages.ready_chunks(self.settings.batch_size);
        let mut last_check = tokio::time::Instant::now();
        loop {
            let chunk = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else {
                return Err(EventbusError::Nats("message stream ended".into()));
            };
            let mut batch = Vec::with_capacity(chunk.len());
            for message in chunk {
                batch.push(message.map_err(EventbusError::nats)?);
            }
            self.handle_batch(batch).await;
            // Until caught up after every batch, then once a second for the lag gauge: a
            // consumer info request per batch would cost a round trip per event at low rates.
            if !*self.caught_up.borrow() || last_check.elapsed() >= Duration::from_secs(1) {
                self.check_caught_up(&mut consumer).await;
                last_check = tokio::time::Instant::now();
            }
        }
    }

    async fn check_caught_up(&self, consumer: &mut PullConsumer) {
        if let Ok(info) = consumer.info().await {
            metrics::gauge!("careers_consumer_lag", "durable" => self.spec.durable.clone())
                .set(info.num_pending as f64);
            if !*self.caught_up.borrow() && info.num_pending == 0 && info.num_ack_pending == 0 {
                tracing::info!(durable = %self.spec.durable, "consumer caught up");
                self.caught_up.send_replace(true);
            }
        }
    }

    /// Applies a batch in one transaction, then acknowledges.
    async fn handle_batch(&self, messages: Vec<jetstream::Message>) {
        let outcomes = match self.apply(&messages).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                tracing::warn!(durable = %self.spec.durable, %error, "batch not committed; redelivering");
                let delay = self
                    .settings
                    .retry_backoff
                    .first()
                    .copied()
                    .unwrap_or_default();
                messages.iter().map(|_| Outcome::Retry(delay)).collect()
            }
        };
        // Acknowledged together: one by one, each waits a round trip to the broker.
        let settled = futures::future::join_all(
            messages
                .iter()
                .zip(outcomes)
                .map(|(message, outcome)| self.settle(message, outcome)),
        )
        .await;
        for error in settled.into_iter().filter_map(Result::err) {
            // The message will be redelivered after ack_wait; the inbox makes that safe.
            tracing::debug!(durable = %self.spec.durable, %error, "acknowledgement lost");
        }
    }

    async fn apply(&self, messages: &[jetstream::Message]) -> Result<Vec<Outcome>, DbErr> {
        let txn = crate::begin_write(&self.db).await?;
        let mut outcomes = Vec::with_capacity(messages.len());
        let mut applied_times = Vec::with_capacity(messages.len());
        let mut seen = self.already_handled(&txn, messages).await?;
        for message in messages {
            let deliveries = message
                .info()
                .map(|info| info.delivered)
                .unwrap_or(1)
                .max(1);
            if deliveries > 1 {
                metrics::counter!("careers_events_redelivered_total", "durable" => self.spec.durable.clone())
                    .increment(1);
            }
            let envelope = match Envelope::from_message(
                message.subject.as_str(),
                message.headers.as_ref(),
                message.payload.clone(),
            ) {
                Ok(envelope) => envelope,
                Err(error) => {
                    outcomes.push(Outcome::DeadLetter(format!("malformed event: {error}")));
                    continue;
                }
            };
            // A second copy within the batch, or one applied before: acknowledge only.
            if !seen.insert(envelope.id.clone()) {
                outcomes.push(Outcome::Duplicate);
                continue;
            }
            let outcome = self.apply_one(&txn, &envelope, deliveries).await?;
            if matches!(outcome, Outcome::Ack) {
                applied_times.push(envelope.time);
            }
            outcomes.push(outcome);
        }
        txn.commit().await?;
        self.applied
            .fetch_add(applied_times.len() as u64, Ordering::Relaxed);
        metrics::counter!("careers_events_applied_total", "durable" => self.spec.durable.clone())
            .increment(applied_times.len() as u64);
        // From the producer's commit (ce-time) to this effect's commit.
        let now = Utc::now();
        for time in applied_times {
            metrics::histogram!("careers_event_propagation_seconds", "durable" => self.spec.durable.clone())
                .record((now - time).as_seconds_f64());
        }
        Ok(outcomes)
    }

    /// The ids of this batch's events that the inbox already holds, in one query.
    async fn already_handled(
        &self,
        txn: &DatabaseTransaction,
        messages: &[jetstream::Message],
    ) -> Result<HashSet<String>, DbErr> {
        let ids: Vec<String> = messages
            .iter()
            .filter_map(|message| message.headers.as_ref()?.get(envelope::CE_ID))
            .map(|id| id.as_str().to_owned())
            .collect();
        Ok(inbox::Entity::find()
            .filter(inbox::Column::Consumer.eq(self.spec.durable.clone()))
            .filter(inbox::Column::EventId.is_in(ids))
            .all(txn)
            .await?
            .into_iter()
            .map(|row| row.event_id)
            .collect())
    }

    async fn apply_one(
        &self,
        txn: &DatabaseTransaction,
        envelope: &Envelope,
        deliveries: i64,
    ) -> Result<Outcome, DbErr> {
        let span = tracing::info_span!(
            "event.handle",
            otel.kind = "consumer",
            durable = %self.spec.durable,
            event_type = %envelope.event_type,
            event_id = %envelope.id,
        );
        if let Err(error) = span.set_parent(envelope.trace_context()) {
            tracing::debug!(%error, "cannot continue the producer's trace");
        }
        let savepoint = txn.begin().await?;
        let result = self
            .handler
            .handle(&savepoint, envelope)
            .instrument(span)
            .await;
        match result {
            Ok(()) => {
                inbox::Entity::insert(inbox::ActiveModel {
                    consumer: Set(self.spec.durable.clone()),
                    event_id: Set(envelope.id.clone()),
                    handled_at: Set(Utc::now()),
                })
                .exec_without_returning(&savepoint)
                .await?;
                savepoint.commit().await?;
                Ok(Outcome::Ack)
            }
            Err(HandlerError::Store(error)) => {
                savepoint.rollback().await?;
                tracing::warn!(durable = %self.spec.durable, %error, "handler could not reach the store");
                Ok(Outcome::Retry(self.delay(deliveries)))
            }
            Err(HandlerError::Rejected(reason)) => {
                savepoint.rollback().await?;
                if deliveries >= i64::from(self.settings.max_attempts) {
                    Ok(Outcome::DeadLetter(reason))
                } else {
                    tracing::warn!(durable = %self.spec.durable, event_id = %envelope.id, deliveries, %reason, "handler failed; will retry");
                    Ok(Outcome::Nak(self.delay(deliveries)))
                }
            }
        }
    }

    fn delay(&self, deliveries: i64) -> Duration {
        let index = usize::try_from(deliveries - 1).unwrap_or(0);
        let backoff = &self.settings.retry_backoff;
        backoff
            .get(index)
            .or(backoff.last())
            .copied()
            .unwrap_or(Duration::from_secs(1))
    }

    async fn settle(
        &self,
        message: &jetstream::Message,
        outcome: Outcome,
    ) -> Result<(), EventbusError> {
        match outcome {
            Outcome::Ack | Outcome::Duplicate => {
                message.double_ack().await.map_err(EventbusError::nats)
            }
            Outcome::Nak(delay) | Outcome::Retry(delay) => message
                .ack_with(AckKind::Nak(Some(delay)))
                .await
                .map_err(EventbusError::nats),
            Outcome::DeadLetter(reason) => {
                let deliveries = message.info().map(|info| info.delivered).unwrap_or(1);
                self.dead_letter(message, &reason, deliveries).await?;
                message
                    .double_ack_with(AckKind::Term)
                    .await
                    .map_err(EventbusError::nats)
            }
        }
    }

    /// Publishes the message to `careers.deadletter.<durable>` with the reason, keeping
    /// its original headers; waits for the PubAck before the original is terminated.
    async fn dead_letter(
        &self,
        message: &jetstream::Message,
        reason: &str,
        deliveries: i64,
    ) -> Result<(), EventbusError> {
        let mut headers = message.headers.clone().unwrap_or_default();
        let event_id = headers
            .get(envelope::CE_ID)
            .map(|id| id.as_str().to_owned())
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("{}.{event_id}", self.spec.durable).as_str(),
        );
        headers.insert(envelope::DLQ_REASON, reason);
        headers.insert(envelope::DLQ_DELIVERIES, deliveries.to_string().as_str());
        headers.insert(envelope::DLQ_SUBJECT, message.subject.as_str());
        crate::provision::publish_and_wait(
            &self.jetstream,
            catalogue::dead_letter_subject(&self.spec.durable),
            message.payload.clone(),
            headers,
        )
        .await?;
        metrics::counter!("careers_events_dead_lettered_total", "durable" => self.spec.durable.clone())
            .increment(1);
        tracing::error!(durable = %self.spec.durable, %event_id, deliveries, %reason, "event dead-lettered");
        Ok(())
    }
}
