//! The transactional outbox and its relay.
//!
//! A producer calls [`enqueue`] with the same connection (transaction) that writes its
//! state change, so both commit or neither does. The [`Relay`] publishes unsent rows in
//! batches with `Nats-Msg-Id` = event id, awaits the PubAcks together, records each
//! stream sequence and marks the rows sent. A crash between publish and mark only means
//! a republish, which JetStream drops as a duplicate (and consumers' inboxes would too).

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, context::PublishAckFuture, publish::PublishAck};
use chrono::Utc;
use futures::future::join_all;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseBackend, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
    sea_query::{LockBehavior, LockType},
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    EventbusError,
    catalogue::{Event, StreamName},
    entity::outbox,
    envelope,
    settings::{NatsSettings, OutboxSettings},
};

/// How often sent outbox rows and old inbox rows are pruned.
const JANITOR_INTERVAL: Duration = Duration::from_secs(600);

/// Writes `event` to the outbox on `connection`, which should be the transaction of the
/// state change. Returns the event id (UUID v7).
pub async fn enqueue<E: Event>(
    connection: &impl ConnectionTrait,
    aggregate_key: &str,
    aggregate_version: i64,
    event: &E,
) -> Result<String, EventbusError> {
    let event_id = uuid::Uuid::now_v7().to_string();
    let (traceparent, tracestate) = envelope::current_trace_context();
    outbox::Entity::insert(outbox::ActiveModel {
        event_id: Set(event_id.clone()),
        subject: Set(E::SUBJECT.to_owned()),
        event_type: Set(E::TYPE.to_owned()),
        aggregate_key: Set(aggregate_key.to_owned()),
        aggregate_version: Set(aggregate_version),
        payload: Set(event.encode_to_vec()),
        traceparent: Set(traceparent),
        tracestate: Set(tracestate),
        created_at: Set(Utc::now()),
        sent_at: Set(None),
        stream_sequence: Set(None),
    })
    .exec_without_returning(connection)
    .await?;
    Ok(event_id)
}

/// Wakes the relay after a commit, so an event need not wait for the next poll.
#[derive(Debug, Clone, Default)]
pub struct RelayWaker(Arc<Notify>);

impl RelayWaker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Publishes the outbox of one service's store to its stream.
#[derive(Debug, Clone)]
pub struct Relay {
    db: DatabaseConnection,
    jetstream: jetstream::Context,
    stream: StreamName,
    nats: NatsSettings,
    settings: OutboxSettings,
    /// The janitor running in this relay also prunes the inbox after this long.
    inbox_retention: Duration,
    waker: RelayWaker,
}

impl Relay {
    pub fn new(
        db: DatabaseConnection,
        jetstream: jetstream::Context,
        stream: StreamName,
        nats: NatsSettings,
        settings: OutboxSettings,
        inbox_retention: Duration,
    ) -> Self {
        crate::describe_metrics();
        Self {
            db,
            jetstream,
            stream,
            nats,
            settings,
            inbox_retention,
            waker: RelayWaker::default(),
        }
    }

    /// A handle that wakes this relay; call it after committing an outbox row.
    pub fn waker(&self) -> RelayWaker {
        self.waker.clone()
    }

    /// Publishes until `stop`, backing off while NATS or the store is unavailable. First
    /// provisions the streams; runs the reconciler at start and every
    /// `reconcile_interval`, and the janitor every ten minutes, in this same task, so
    /// neither races this relay's publishes.
    pub async fn run(self, stop: CancellationToken) {
        for family in [
            "careers_events_published_total",
            "careers_outbox_republished_total",
        ] {
            metrics::counter!(family, "stream" => self.stream.name).increment(0);
        }
        let mut pauses = crate::Pauses::new(self.settings.max_backoff);
        let mut provisioned = false;
        let mut next_reconcile = tokio::time::Instant::now();
        let mut next_prune = tokio::time::Instant::now();
        let mut next_backlog = tokio::time::Instant::now();
        loop {
            if stop.is_cancelled() {
                return;
            }
            if !provisioned {
                match crate::provision::ensure_streams(&self.jetstream, self.stream, &self.nats)
                    .await
                {
                    Ok(()) => provisioned = true,
                    Err(error) => {
                        let pause = pauses.pause();
                        tracing::warn!(%error, retry_in = ?pause, "cannot provision streams yet");
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(pause) => continue,
                        }
                    }
                }
            }
            if tokio::time::Instant::now() >= next_prune {
                next_prune += JANITOR_INTERVAL;
                match crate::reconcile::prune(
                    &self.db,
                    self.settings.retention,
                    self.inbox_retention,
                )
                .await
                {
                    Ok((outbox_rows, inbox_rows)) if outbox_rows + inbox_rows > 0 => {
                        tracing::info!(outbox_rows, inbox_rows, "pruned old outbox and inbox rows");
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "pruning failed"),
                }
            }
            if tokio::time::Instant::now() >= next_reconcile {
                match crate::reconcile::reconcile(&self.db, &self.jetstream, self.stream).await {
                    Ok(_) => next_reconcile += self.settings.reconcile_interval,
                    Err(error) => {
                        tracing::debug!(%error, "reconciler could not run; retrying later");
                        next_reconcile = tokio::time::Instant::now() + self.settings.max_backoff;
                    }
                }
            }
            let pause = match self.publish_batch().await {
                Ok(published) => {
                    pauses.reset();
                    if published as u64 == self.settings.batch_size {
                        continue;
                    }
                    self.settings.poll_interval
                }
                Err(error) => {
                    let pause = pauses.pause();
                    tracing::warn!(%error, retry_in = ?pause, "outbox relay failed; will retry");
                    pause
                }
            };
            if tokio::time::Instant::now() >= next_backlog {
                next_backlog = tokio::time::Instant::now() + Duration::from_secs(1);
                self.record_backlog().await;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One round: fetch a batch of unsent rows, publish them, mark what was acknowledged.
    /// Returns how many rows were marked sent.
    pub async fn publish_batch(&self) -> Result<usize, EventbusError> {
        let limit = self.settings.batch_size;
        if self.db.get_database_backend() == DatabaseBackend::Postgres {
            // Several relays may run: each locks its rows and skips the others'.
            let txn = crate::begin_write(&self.db).await?;
            let rows = unsent(limit)
                .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
                .all(&txn)
                .await?;
            let acks = self.publish(&rows).await;
            let marked = mark_sent(&txn, &rows, &acks).await?;
            txn.commit().await?;
            first_error(acks)?;
            Ok(marked)
        } else {
            // SQLite has one relay per store; holding no transaction while waiting for
            // PubAcks keeps writers unblocked.
            let rows = unsent(limit).all(&self.db).await?;
            let acks = self.publish(&rows).await;
            let txn = crate::begin_write(&self.db).await?;
            let marked = mark_sent(&txn, &rows, &acks).await?;
            txn.commit().await?;
            first_error(acks)?;
            Ok(marked)
        }
    }

    /// Publishes `rows` and awaits all their PubAcks together (not one by one: after a
    /// broker restart each lost ack would otherwise cost a full timeout).
    pub async fn publish(&self, rows: &[outbox::Model]) -> Vec<Result<PublishAck, EventbusError>> {
        let mut pending: Vec<Result<PublishAckFuture, EventbusError>> =
            Vec::with_capacity(rows.len());
        for row in rows {
            let message = jetstream::message::PublishMessage::build()
                .payload(row.payload.clone().into())
                .headers(envelope::headers(row, self.stream.source));
            pending.push(
                self.jetstream
                    .send_publish(row.subject.clone(), message)
                    .await
                    .map_err(|error| EventbusError::Publish(error.to_string())),
            );
        }
        let acks = join_all(pending.into_iter().map(|sent| async move {
            sent?
                .await
                .map_err(|error| EventbusError::Publish(error.to_string()))
        }))
        .await;
        let published = acks.iter().filter(|ack| ack.is_ok()).count();
        metrics::counter!("careers_events_published_total", "stream" => self.stream.name)
            .increment(published as u64);
        acks
    }

    async fn record_backlog(&self) {
        if let Ok(Some(oldest)) = unsent(1).one(&self.db).await {
            let age = (Utc::now() - oldest.created_at).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::gauge!("careers_outbox_oldest_age_seconds").set(age);
        } else {
            metrics::gauge!("careers_outbox_oldest_age_seconds").set(0.0);
        }
        if let Ok(pending) = pending_count(&self.db).await {
            metrics::gauge!("careers_outbox_pending").set(pending as f64);
        }
    }
}

/// Rows not yet acknowledged, oldest first (UUID v7 ids sort by time).
fn unsent(limit: u64) -> sea_orm::Select<outbox::Entity> {
    outbox::Entity::find()
        .filter(outbox::Column::SentAt.is_null())
        .order_by_asc(outbox::Column::EventId)
        .limit(limit)
}

/// How many rows wait to be published.
pub async fn pending_count(connection: &impl ConnectionTrait) -> Result<u64, EventbusError> {
    use sea_orm::PaginatorTrait;
    Ok(outbox::Entity::find()
        .filter(outbox::Column::SentAt.is_null())
        .count(connection)
        .await?)
}

/// Marks every acknowledged row sent with its stream sequence, in one statement.
async fn mark_sent(
    connection: &impl ConnectionTrait,
    rows: &[outbox::Model],
    acks: &[Result<PublishAck, EventbusError>],
) -> Result<usize, EventbusError> {
    let mut values: Vec<sea_orm::Value> = vec![Utc::now().into()];
    let mut tuples = Vec::new();
    for (row, ack) in rows.iter().zip(acks) {
        if let Ok(ack) = ack {
            let n = values.len();
            tuples.push(format!("(${}, CAST(${} AS BIGINT))", n + 1, n + 2));
            values.push(row.event_id.clone().into());
            values.push((ack.sequence as i64).into());
        }
    }
    if tuples.is_empty() {
        return Ok(0);
    }
    // A CTE rather than UPDATE … FROM (VALUES …) AS t(a, b): SQLite has no column aliases
    // on VALUES, and both backends accept this form.
    let sql = format!(
        "WITH acked(event_id, stream_sequence) AS (VALUES {}) \
         UPDATE outbox SET sent_at = $1, \
         stream_sequence = (SELECT acked.stream_sequence FROM acked WHERE acked.event_id = outbox.event_id) \
         WHERE event_id IN (SELECT event_id FROM acked)",
        tuples.join(", ")
    );
    let statement =
        sea_orm::Statement::from_sql_and_values(connection.get_database_backend(), sql, values);
    Ok(connection.execute_raw(statement).await?.rows_affected() as usize)
}

fn first_error(acks: Vec<Result<PublishAck, EventbusError>>) -> Result<(), EventbusError> {
    acks.into_iter().find_map(Result::err).map_or(Ok(()), Err)
}
