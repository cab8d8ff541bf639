//! Healing a stream that lost its tail, and pruning old outbox and inbox rows.
//!
//! The store is the source of truth: an outbox row marked sent whose message the stream
//! no longer has (a broker that lost unsynced writes in a crash, a purge) is put back to
//! unsent, and the relay republishes it with the same `Nats-Msg-Id`.

use std::time::Duration;

use async_nats::jetstream::{self, stream::RawMessageErrorKind};
use chrono::Utc;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, sea_query::Expr,
};

use crate::{
    EventbusError,
    catalogue::StreamName,
    entity::{inbox, outbox},
};

/// Rows checked per round trip while walking back from the newest sent row.
const PAGE: u64 = 500;

/// Walks the sent rows from the newest back, and requeues each whose message is gone
/// from `stream`, until it meets one the stream still has. Returns how many were requeued.
pub async fn reconcile(
    db: &DatabaseConnection,
    jetstream: &jetstream::Context,
    stream: StreamName,
) -> Result<u64, EventbusError> {
    let mut handle = jetstream
        .get_stream(stream.name)
        .await
        .map_err(EventbusError::nats)?;
    let state = handle
        .info()
        .await
        .map_err(EventbusError::nats)?
        .state
        .clone();
    let mut lost = Vec::new();
    let mut below: Option<i64> = None;
    'walk: loop {
        let mut query = outbox::Entity::find()
            .filter(outbox::Column::StreamSequence.is_not_null())
            .order_by_desc(outbox::Column::StreamSequence)
            .limit(PAGE);
        if let Some(below) = below {
            query = query.filter(outbox::Column::StreamSequence.lt(below));
        }
        let rows = query.all(db).await?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let Some(sequence) = row.stream_sequence else {
                continue;
            };
            if still_in_stream(&handle, state.last_sequence, sequence as u64, &row.event_id).await?
            {
                break 'walk;
            }
            lost.push(row.event_id.clone());
            below = Some(sequence);
        }
    }
    if lost.is_empty() {
        return Ok(0);
    }
    tracing::warn!(
        stream = stream.name,
        rows = lost.len(),
        "stream lost events; republishing them from the outbox"
    );
    let requeued = outbox::Entity::update_many()
        .col_expr(
            outbox::Column::SentAt,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .col_expr(
            outbox::Column::StreamSequence,
            Expr::value(Option::<i64>::None),
        )
        .filter(outbox::Column::EventId.is_in(lost))
        .exec(db)
        .await?
        .rows_affected;
    metrics::counter!("careers_outbox_republished_total", "stream" => stream.name)
        .increment(requeued);
    Ok(requeued)
}

async fn still_in_stream(
    stream: &jetstream::stream::Stream,
    last_sequence: u64,
    sequence: u64,
    event_id: &str,
) -> Result<bool, EventbusError> {
    if sequence > last_sequence {
        return Ok(false);
    }
    match stream.get_raw_message(sequence).await {
        Ok(message) => Ok(message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .is_some_and(|id| id.as_str() == event_id)),
        Err(error) if error.kind() == RawMessageErrorKind::NoMessageFound => Ok(false),
        Err(error) => Err(EventbusError::nats(error)),
    }
}

/// Deletes outbox rows sent longer than `outbox_retention` ago and inbox rows handled
/// longer than `inbox_retention` ago. Returns (outbox rows, inbox rows) deleted.
pub async fn prune(
    db: &impl ConnectionTrait,
    outbox_retention: Duration,
    inbox_retention: Duration,
) -> Result<(u64, u64), EventbusError> {
    let now = Utc::now();
    let cutoff = |retention: Duration| {
        now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX)
    };
    let outbox_rows = outbox::Entity::delete_many()
        .filter(outbox::Column::SentAt.lt(cutoff(outbox_retention)))
        .exec(db)
        .await?
        .rows_affected;
    let inbox_rows = inbox::Entity::delete_many()
        .filter(inbox::Column::HandledAt.lt(cutoff(inbox_retention)))
        .exec(db)
        .await?
        .rows_affected;
    Ok((outbox_rows, inbox_rows))
}
