//! `make bench` (`careers-bench [NAME]`): every figure printed beside a baseline measured
//! in the same run on the same machine, never asserted.
//!
//! - `propagation`: commit in one service's PostgreSQL store to the effect committed in
//!   another's, at a steady rate, beside the broker alone (publish to consume).
//! - `outbox`: events committed and published per second in bursts, beside the broker's
//!   own async publish rate.
//! - `first_flow` and `tracing`: the first flow's goals, in [`flow`].
//! - `ingest`: a 200,000-row CSV submission beside PostgreSQL COPY, in [`ingest`].
//! - `search`: occupation search beside PostgreSQL full-text search, in [`search`].
//! - `casenotes`: note writes and reads with encryption and audit beside both off, in
//!   [`casenotes`].
//! - `matching`: the optimal ambassador matcher beside the greedy baseline, in [`matching`].
//! - `gateway`: an occupation read through the gateway beside direct gRPC and a bare
//!   pass-through proxy, in [`gateway`].
//! - `observability`: the gateway process with metrics and the access log on beside both
//!   off, in [`gateway::observability`].
//!
//! `BENCH_SECONDS` shortens the timed runs (default 60).

mod casenotes;
mod flow;
mod gateway;
mod ingest;
mod matching;
mod recorder;
mod search;

use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull};
use careers_eventbus::{
    ConsumerSpec, Eventbus, catalogue, enqueue,
    settings::{InboxSettings, NatsSettings, OutboxSettings},
    testing::{Migrator, Projector, count, statement},
};
use careers_proto::careers::occupations::events::v1::OccupationUpserted;
use careers_testkit::{nats::NatsServer, postgres};
use futures::StreamExt;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.get(1).map(String::as_str) == Some("tracing-phase") {
        let mode = arguments.get(2).context("tracing-phase MODE SECONDS")?;
        let seconds = arguments
            .get(3)
            .context("tracing-phase MODE SECONDS")?
            .parse()?;
        return flow::tracing_phase(mode, seconds).await;
    }
    let only = arguments
        .get(1)
        .cloned()
        .or_else(|| std::env::var("BENCH").ok())
        .filter(|name| !name.is_empty());
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(60);
    let samples = recorder::install();
    const BENCHES: [&str; 10] = [
        "propagation",
        "outbox",
        "first_flow",
        "tracing",
        "ingest",
        "search",
        "casenotes",
        "matching",
        "gateway",
        "observability",
    ];
    if let Some(name) = &only
        && !BENCHES.contains(&name.as_str())
    {
        anyhow::bail!("no bench named {name}; there are: {}", BENCHES.join(", "));
    }
    for name in BENCHES {
        if only.as_deref().is_some_and(|wanted| wanted != name) {
            continue;
        }
        match name {
            "propagation" => propagation(seconds, &samples).await?,
            "outbox" => outbox().await?,
            "first_flow" => flow::first_flow().await?,
            "tracing" => flow::tracing(seconds).await?,
            "ingest" => ingest::ingest().await?,
            "search" => search::search(seconds).await?,
            "casenotes" => casenotes::casenotes(seconds).await?,
            "matching" => matching::matching()?,
            "gateway" => gateway::gateway(seconds).await?,
            "observability" => gateway::observability(seconds).await?,
            _ => {}
        }
    }
    Ok(())
}

async fn postgres_store() -> anyhow::Result<(DatabaseConnection, postgres::TestDatabase)> {
    let database = postgres::migrated_database::<Migrator, _, _>("bench", |url| async move {
        let db = Database::connect(url.as_str()).await?;
        Migrator::up(&db, None).await?;
        db.close().await?;
        Ok(())
    })
    .await?;
    let db = Database::connect(database.url.as_str()).await?;
    Ok((db, database))
}

/// A nats-server of its own with a `BENCH` stream over `bench.>` for the baselines.
async fn bench_broker() -> anyhow::Result<(NatsServer, NatsSettings, jetstream::Context)> {
    let nats = NatsServer::start()?;
    let settings = NatsSettings {
        url: nats.url(),
        ..NatsSettings::default()
    };
    let jetstream = careers_eventbus::provision::connect_now(&settings, "bench").await?;
    jetstream
        .create_stream(jetstream::stream::Config {
            name: "BENCH".into(),
            subjects: vec!["bench.>".into()],
            ..Default::default()
        })
        .await?;
    Ok((nats, settings, jetstream))
}

fn percentile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * quantile).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(seconds: f64) -> String {
    format!("{:.1} ms", seconds * 1000.0)
}

/// Sends `rate` events a second for `seconds`, each its own commit.
async fn propagation(seconds: u64, samples: &recorder::Samples) -> anyhow::Result<()> {
    const RATE: u64 = 1_000;
    // Baseline: the broker alone, publish to consume, at the same rate.
    let (_nats, settings, jetstream) = bench_broker().await?;
    let consumer = jetstream
        .get_stream("BENCH")
        .await?
        .create_consumer(pull::Config {
            durable_name: Some("bench".into()),
            ..Default::default()
        })
        .await?;
    let started = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut latencies = Vec::new();
        let mut messages = consumer.messages().await?;
        while latencies.len() < (RATE * seconds) as usize {
            let Some(message) = messages.next().await else {
                break;
            };
            let message = message.map_err(|error| anyhow::anyhow!(error))?;
            let sent: [u8; 8] = message.payload.as_ref().try_into().context("payload")?;
            let sent = Duration::from_nanos(u64::from_le_bytes(sent));
            latencies.push((started.elapsed() - sent).as_secs_f64());
            message
                .ack()
                .await
                .map_err(|error| anyhow::anyhow!(error))?;
        }
        anyhow::Ok(latencies)
    });
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    for _ in 0..RATE * seconds {
        ticker.tick().await;
        let stamp = (started.elapsed().as_nanos() as u64).to_le_bytes();
        jetstream
            .send_publish(
                "bench.x",
                jetstream::message::PublishMessage::build().payload(stamp.to_vec().into()),
            )
            .await?;
    }
    let mut broker = receiver.await??;
    broker.sort_by(f64::total_cmp);

    // The backbone: outbox commit in one store to the effect's commit in another.
    let (producer, _producer_guard) = postgres_store().await?;
    let (consumer_db, _consumer_guard) = postgres_store().await?;
    let stop = CancellationToken::new();
    let bus = Eventbus::start(
        "producer",
        producer.clone(),
        catalogue::OCCUPATIONS,
        &settings,
        &OutboxSettings::default(),
        &InboxSettings::default(),
        stop.clone(),
    )
    .await?;
    let mut consuming = Eventbus::start(
        "consumer",
        consumer_db.clone(),
        catalogue::LMI,
        &settings,
        &OutboxSettings::default(),
        &InboxSettings::default(),
        stop.clone(),
    )
    .await?;
    consuming.consume(
        ConsumerSpec {
            durable: "bench_projection".into(),
            stream: catalogue::OCCUPATIONS,
            subjects: vec![],
        },
        Projector::default(),
    );
    samples.clear();
    let waker = bus.waker();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    for index in 0..RATE * seconds {
        ticker.tick().await;
        let key = format!("k{index:07}");
        let txn = careers_eventbus::begin_write(&producer).await?;
        txn.execute_raw(statement(
            &txn,
            "INSERT INTO widgets (soc_code, version, title) VALUES ($1, 1, 'bench')",
            vec![key.clone().into()],
        ))
        .await?;
        enqueue(
            &txn,
            &key,
            1,
            &OccupationUpserted {
                soc_code: key.clone(),
                version: 1,
                ..Default::default()
            },
        )
        .await?;
        txn.commit().await?;
        waker.wake();
    }
    let expected = (RATE * seconds) as i64;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&consumer_db, "SELECT COUNT(*) FROM applied").await? < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    let mut backbone = samples.take("careers_event_propagation_seconds");
    backbone.sort_by(f64::total_cmp);
    let (p50, p99) = (percentile(&backbone, 0.5), percentile(&backbone, 0.99));
    let (b50, b99) = (percentile(&broker, 0.5), percentile(&broker, 0.99));
    println!(
        "propagation (PostgreSQL to PostgreSQL, {RATE} events/s for {seconds} s, {} events): p50 {}, p99 {} \
         | broker alone p50 {}, p99 {} | ratio p50 {:.1}x, p99 {:.1}x | goal p99 < 50 ms",
        backbone.len(),
        millis(p50),
        millis(p99),
        millis(b50),
        millis(b99),
        p50 / b50,
        p99 / b99
    );
    Ok(())
}

/// Bursts of committed events through the relay, beside the broker's own async publish.
async fn outbox() -> anyhow::Result<()> {
    const EVENTS: u64 = 50_000;
    const PER_COMMIT: u64 = 500;
    // Baseline: the broker's async publish rate, all PubAcks awaited together per 500.
    let (_nats, settings, jetstream) = bench_broker().await?;
    let payload = OccupationUpserted {
        soc_code: "2134".into(),
        version: 1,
        title: "Programmers and software development professionals".into(),
        ..Default::default()
    };
    let bytes: Vec<u8> = prost::Message::encode_to_vec(&payload);
    let started = Instant::now();
    for _ in 0..EVENTS / PER_COMMIT {
        let mut acks = Vec::with_capacity(PER_COMMIT as usize);
        for _ in 0..PER_COMMIT {
            acks.push(
                jetstream
                    .send_publish(
                        "bench.x",
                        jetstream::message::PublishMessage::build().payload(bytes.clone().into()),
                    )
                    .await?,
            );
        }
        for ack in futures::future::join_all(acks.into_iter().map(|ack| ack.into_future())).await {
            ack?;
        }
    }
    let broker_rate = EVENTS as f64 / started.elapsed().as_secs_f64();

    let (producer, _guard) = postgres_store().await?;
    let stop = CancellationToken::new();
    let bus = Eventbus::start(
        "producer",
        producer.clone(),
        catalogue::OCCUPATIONS,
        &settings,
        &OutboxSettings::default(),
        &InboxSettings::default(),
        stop.clone(),
    )
    .await?;
    let started = Instant::now();
    for chunk in 0..EVENTS / PER_COMMIT {
        let txn = careers_eventbus::begin_write(&producer).await?;
        for index in chunk * PER_COMMIT..(chunk + 1) * PER_COMMIT {
            let key = format!("k{index:07}");
            enqueue(&txn, &key, 1, &payload).await?;
        }
        txn.commit().await?;
        bus.waker().wake();
    }
    let committed = started.elapsed();
    while careers_eventbus::outbox::pending_count(&producer).await? > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.cancel();
    let rate = EVENTS as f64 / elapsed;
    println!(
        "outbox (PostgreSQL, {EVENTS} events in commits of {PER_COMMIT}): {rate:.0} events/s committed and published \
         (commits alone {:.0}/s) | broker async publish {broker_rate:.0} msg/s | ratio {:.2}",
        EVENTS as f64 / committed.as_secs_f64(),
        rate / broker_rate
    );
    Ok(())
}
