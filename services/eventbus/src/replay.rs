//! Rebuilding a projection from the start of its stream (`careersctl replay <durable>`).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use backon::{ExponentialBuilder, Retryable};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::{
    EventbusError,
    consumer::{ConsumerSpec, Handler},
    entity::inbox,
    settings::InboxSettings,
};

/// Pauses the durable, waits for its in-flight batch to be acknowledged, deletes the
/// projection (the handler's [`Handler::reset`]) and the durable's inbox rows in one
/// transaction, then recreates the durable from the start of the stream. The running
/// service's consumer reattaches to the new durable by itself.
pub async fn rebuild<H: Handler>(
    db: &DatabaseConnection,
    jetstream: &jetstream::Context,
    spec: &ConsumerSpec,
    settings: &InboxSettings,
    handler: &H,
) -> Result<(), EventbusError> {
    let stream = jetstream
        .get_stream(spec.stream.name)
        .await
        .map_err(EventbusError::nats)?;
    let exists = stream.consumer_info(&spec.durable).await.is_ok();
    if exists {
        let until = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        stream
            .pause_consumer(&spec.durable, until)
            .await
            .map_err(EventbusError::nats)?;
        // In flight = delivered but not yet acknowledged, which our consumer does only
        // after its commit; once that is zero no batch can commit behind our back.
        let deadline = Instant::now() + settings.ack_wait + Duration::from_secs(5);
        loop {
            let info = stream
                .consumer_info(&spec.durable)
                .await
                .map_err(EventbusError::nats)?;
            if info.num_ack_pending == 0 {
                break;
            }
            if Instant::now() > deadline {
                return Err(EventbusError::Nats(format!(
                    "{} still has {} unacknowledged events; try again",
                    spec.durable, info.num_ack_pending
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let txn = crate::begin_write(db).await?;
    handler.reset(&txn).await?;
    inbox::Entity::delete_many()
        .filter(inbox::Column::Consumer.eq(spec.durable.clone()))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    // The running service recreates the durable the moment it is gone, so JetStream can
    // fail one of these with a transient store error (code 500) when both touch it at
    // once. Each is safe to repeat: a deleted durable stays deleted, and creating one
    // with the same configuration returns the one that exists.
    let recreate = || async {
        if exists && stream.consumer_info(&spec.durable).await.is_ok() {
            stream
                .delete_consumer(&spec.durable)
                .await
                .map_err(EventbusError::nats)?;
        }
        stream
            .create_consumer(spec.config(settings))
            .await
            .map(|_| ())
            .map_err(EventbusError::nats)
    };
    recreate
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_jitter()
                .with_max_times(4),
        )
        .sleep(tokio::time::sleep)
        .notify(|error, pause| {
            tracing::warn!(durable = %spec.durable, %error, retry_in = ?pause, "recreating the durable failed; trying again");
        })
        .await?;
    tracing::info!(durable = %spec.durable, "projection reset; replaying from the start of the stream");
    Ok(())
}
