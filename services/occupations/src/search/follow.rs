//! Keeps one replica's index current: ephemeral, ordered consumers of `OccupationUpserted`
//! (re-read from the store and re-indexed) and `FiguresPublished` (pay and outlook).
//!
//! Each replica gets every event, unlike the durable consumers that share work. Nothing is
//! acknowledged and nothing is kept on the broker: whenever following breaks (a broker
//! restart the ordered consumer cannot ride out, a stream not yet created), the consumers
//! are made again, delivering only new events, and the index is rebuilt from the store
//! after that, so no change falls between the two.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{DeliverPolicy, pull::OrderedConfig},
};
use careers_eventbus::{Envelope, Event, catalogue::StreamName};
use careers_proto::careers::{
    lmi::events::v1::FiguresPublished, occupations::events::v1::OccupationUpserted,
};
use futures::StreamExt;
use sea_orm::DatabaseConnection;
use tokio_util::sync::CancellationToken;

use super::SearchIndex;

/// Events applied together, in one index commit.
const BATCH: usize = 500;
/// How long a batch waits for more events once one has arrived.
const LINGER: Duration = Duration::from_millis(20);

/// Follows the events until `stop`; restarts after any failure.
pub async fn follow(
    index: SearchIndex,
    db: DatabaseConnection,
    jetstream: jetstream::Context,
    stop: CancellationToken,
) {
    const LONGEST_PAUSE: Duration = Duration::from_secs(10);
    let mut pauses = careers_eventbus::Pauses::new(LONGEST_PAUSE);
    loop {
        let started = tokio::time::Instant::now();
        let outcome = tokio::select! {
            () = stop.cancelled() => return,
            outcome = follow_once(&index, &db, &jetstream) => outcome,
        };
        // Following that lasted was working: this is a new outage, not the same one.
        if started.elapsed() > 6 * LONGEST_PAUSE {
            pauses.reset();
        }
        let pause = pauses.pause();
        if let Err(error) = outcome {
            tracing::warn!(%error, retry_in = ?pause, "the search index stopped following events; starting again");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn ordered(
    jetstream: &jetstream::Context,
    stream: StreamName,
    subject: &str,
) -> Result<jetstream::consumer::pull::Ordered, BoxError> {
    let consumer = jetstream
        .create_consumer_on_stream(
            OrderedConfig {
                filter_subject: subject.to_owned(),
                deliver_policy: DeliverPolicy::New,
                ..OrderedConfig::default()
            },
            stream.name,
        )
        .await?;
    Ok(consumer.messages().await?)
}

async fn follow_once(
    index: &SearchIndex,
    db: &DatabaseConnection,
    jetstream: &jetstream::Context,
) -> Result<(), BoxError> {
    let mut upserts = ordered(
        jetstream,
        OccupationUpserted::STREAM,
        OccupationUpserted::SUBJECT,
    )
    .await?;
    let mut figures = ordered(
        jetstream,
        FiguresPublished::STREAM,
        FiguresPublished::SUBJECT,
    )
    .await?;
    let count = index.rebuild(db).await?;
    tracing::info!(
        occupations = count,
        "search index rebuilt; following events"
    );
    loop {
        tokio::select! {
            message = upserts.next() => {
                let mut soc_codes = vec![soc_code(message)?];
                while soc_codes.len() < BATCH {
                    match tokio::time::timeout(LINGER, upserts.next()).await {
                        Ok(message) => soc_codes.push(soc_code(message)?),
                        Err(_) => break,
                    }
                }
                soc_codes.sort_unstable();
                soc_codes.dedup();
                index.reindex(db, &soc_codes).await?;
            }
            message = figures.next() => {
                let published: FiguresPublished = decode(message)?;
                index.apply_figures(&published);
            }
        }
    }
}

fn decode<E: Event, M>(message: Option<Result<jetstream::Message, M>>) -> Result<E, BoxError>
where
    M: std::error::Error + Send + Sync + 'static,
{
    let message = message.ok_or("the ordered consumer ended")??;
    let envelope = Envelope::from_message(
        message.subject.as_str(),
        message.headers.as_ref(),
        message.payload.clone(),
    )?;
    Ok(envelope.decode()?)
}

fn soc_code<M>(message: Option<Result<jetstream::Message, M>>) -> Result<String, BoxError>
where
    M: std::error::Error + Send + Sync + 'static,
{
    let event: OccupationUpserted = decode(message)?;
    Ok(event.soc_code)
}
