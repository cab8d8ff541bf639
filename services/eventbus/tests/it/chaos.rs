//! 20,000 events through broker crashes and a consumer crash: nothing lost, nothing
//! applied twice.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use careers_eventbus::{Eventbus, catalogue, enqueue};
use careers_proto::careers::occupations::events::v1::OccupationUpserted;
use careers_testkit::nats::NatsServer;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio_util::sync::CancellationToken;

use crate::harness::{self, Backend, applications, count, eventually, statement};

const EVENTS: i64 = 20_000;
const PER_COMMIT: i64 = 500;
const WAIT: Duration = Duration::from_secs(180);

/// The consumer process; killed with SIGKILL when dropped.
struct ConsumerProcess(Child);

impl ConsumerProcess {
    fn spawn(database_url: &str, nats_url: &str) -> anyhow::Result<Self> {
        let child = Command::new(env!("CARGO_BIN_EXE_eventbus-soak"))
            .args(["--database-url", database_url, "--nats-url", nats_url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()?;
        Ok(Self(child))
    }

    fn kill(&mut self) -> anyhow::Result<()> {
        self.0.kill()?;
        self.0.wait()?;
        Ok(())
    }
}

impl Drop for ConsumerProcess {
    fn drop(&mut self) {
        self.kill().ok();
    }
}

async fn produce_all(
    db: DatabaseConnection,
    bus_waker: careers_eventbus::RelayWaker,
) -> anyhow::Result<()> {
    for chunk in 0..EVENTS / PER_COMMIT {
        let txn = careers_eventbus::begin_write(&db).await?;
        for index in chunk * PER_COMMIT..(chunk + 1) * PER_COMMIT {
            let key = format!("k{index:06}");
            txn.execute_raw(statement(
                &txn,
                "INSERT INTO widgets (soc_code, version, title) VALUES ($1, 1, $2)",
                vec![key.clone().into(), format!("title {index}").into()],
            ))
            .await?;
            let event = OccupationUpserted {
                soc_code: key.clone(),
                version: 1,
                title: format!("title {index}"),
                ..Default::default()
            };
            enqueue(&txn, &key, 1, &event).await?;
        }
        txn.commit().await?;
        bus_waker.wake();
    }
    Ok(())
}

pub async fn nothing_is_lost_or_doubled_through_crashes(backend: Backend) -> anyhow::Result<()> {
    let (producer, consumer) = (
        harness::store(backend).await?,
        harness::store(backend).await?,
    );
    let mut nats = NatsServer::start()?;
    let stop = CancellationToken::new();
    let settings = harness::nats_settings(&nats.url());
    let bus = Eventbus::start(
        "producer",
        producer.db.clone(),
        catalogue::OCCUPATIONS,
        &settings,
        &harness::outbox_settings(),
        &harness::inbox_settings(),
        stop.clone(),
    )
    .await?;
    let mut consumer_process = ConsumerProcess::spawn(&consumer.url, &nats.url())?;
    let producing = tokio::spawn(produce_all(producer.db.clone(), bus.waker()));

    let sent = "SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL";
    eventually(WAIT, "5,000 published", || async {
        Ok(count(&producer.db, sent).await? >= 5_000)
    })
    .await?;
    nats.kill()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart()?;

    eventually(WAIT, "8,000 applied", || async {
        Ok(applications(&consumer.db).await?.0 >= 8_000)
    })
    .await?;
    nats.kill()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nats.restart()?;

    eventually(WAIT, "12,000 applied", || async {
        Ok(applications(&consumer.db).await?.0 >= 12_000)
    })
    .await?;
    consumer_process.kill()?;
    let mut consumer_process = ConsumerProcess::spawn(&consumer.url, &nats.url())?;

    producing.await??;
    eventually(WAIT, "every event applied", || async {
        Ok(count(&consumer.db, "SELECT COUNT(DISTINCT event_id) FROM applied").await? == EVENTS)
    })
    .await?;
    // Longer than the ack wait: any redelivery still to come has come.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (total, repeated) = applications(&consumer.db).await?;
    let projected = count(&consumer.db, "SELECT COUNT(*) FROM widget_view").await?;
    let jetstream = bus.jetstream();
    let mut stream = jetstream.get_stream("CAREERS_OCCUPATIONS").await?;
    let in_stream = stream.info().await?.state.messages;
    let deliveries = stream
        .consumer_info("test_projection")
        .await?
        .delivered
        .consumer_sequence;
    println!(
        "chaos {backend:?}: {EVENTS} events, {in_stream} messages in the stream, {deliveries} deliveries \
         ({} redeliveries), {} lost, {repeated} applied twice",
        deliveries.saturating_sub(in_stream),
        EVENTS - projected,
    );
    consumer_process.kill()?;
    stop.cancel();
    assert_eq!(projected, EVENTS, "events lost");
    assert_eq!((total, repeated), (EVENTS, 0), "effects applied twice");
    Ok(())
}
