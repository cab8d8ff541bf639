//! The event backbone against a real nats-server and real stores, SQLite and PostgreSQL.

mod chaos;
mod harness;

use std::time::Duration;

use async_nats::jetstream;
use careers_eventbus::{
    ConsumerSpec, Eventbus, catalogue, dlq, entity::outbox, envelope, provision, reconcile, replay,
};
use careers_proto::careers::lmi::events::v1::{FiguresPublished, PublishedFigure};
use careers_testkit::nats::NatsServer;
use harness::{Backend, Projector, applications, count, eventually, produce, store};
use sea_orm::{DatabaseConnection, EntityTrait};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

const WAIT: Duration = Duration::from_secs(20);

/// Runs a scenario on both backends, each its own test.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() -> anyhow::Result<()> {
                super::$scenario(super::Backend::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $scenario() -> anyhow::Result<()> {
                super::$scenario(super::Backend::Postgres).await
            })*
        }
    };
}

use chaos::nothing_is_lost_or_doubled_through_crashes;

on_both_backends!(
    nothing_is_lost_or_doubled_through_crashes,
    a_change_commits_while_nats_is_down_and_is_published_once_it_is_back,
    a_relay_dying_between_publish_and_mark_does_not_apply_twice,
    duplicates_and_reordering_never_move_a_projection_backwards,
    a_failing_handler_is_dead_lettered_and_replayed_once_fixed,
    the_reconciler_republishes_a_lost_stream_tail,
    a_replayed_projection_equals_the_one_before,
    stopping_finishes_the_event_being_applied,
);

fn projector_spec() -> ConsumerSpec {
    ConsumerSpec {
        durable: "test_projection".into(),
        stream: catalogue::OCCUPATIONS,
        subjects: vec![],
    }
}

/// Starts the producer's relay and a consumer projecting into `consumer_db`.
async fn start(
    producer_db: &DatabaseConnection,
    consumer_db: &DatabaseConnection,
    url: &str,
    projector: Projector,
    stop: &CancellationToken,
) -> anyhow::Result<(Eventbus, Eventbus)> {
    let nats = harness::nats_settings(url);
    let producer = Eventbus::start(
        "producer",
        producer_db.clone(),
        catalogue::OCCUPATIONS,
        &nats,
        &harness::outbox_settings(),
        &harness::inbox_settings(),
        stop.clone(),
    )
    .await?;
    let mut consumer = Eventbus::start(
        "consumer",
        consumer_db.clone(),
        catalogue::LMI,
        &nats,
        &harness::outbox_settings(),
        &harness::inbox_settings(),
        stop.clone(),
    )
    .await?;
    consumer.consume(projector_spec(), projector);
    Ok((producer, consumer))
}

async fn stream_messages(jetstream: &jetstream::Context, name: &str) -> anyhow::Result<u64> {
    let mut stream = jetstream.get_stream(name).await?;
    Ok(stream.info().await?.state.messages)
}

async fn a_change_commits_while_nats_is_down_and_is_published_once_it_is_back(
    backend: Backend,
) -> anyhow::Result<()> {
    let (producer, consumer) = (store(backend).await?, store(backend).await?);
    let mut nats = NatsServer::start()?;
    nats.kill()?;
    let stop = CancellationToken::new();
    let (bus, _consumer_bus) = start(
        &producer.db,
        &consumer.db,
        &nats.url(),
        Projector::default(),
        &stop,
    )
    .await?;

    produce(&producer.db, "2134", 1, "Programmers").await?;
    bus.waker().wake();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        careers_eventbus::outbox::pending_count(&producer.db).await?,
        1
    );

    nats.restart()?;
    eventually(WAIT, "the event is applied", || async {
        Ok(applications(&consumer.db).await?.0 == 1)
    })
    .await?;
    eventually(WAIT, "the outbox is empty", || async {
        Ok(careers_eventbus::outbox::pending_count(&producer.db).await? == 0)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(applications(&consumer.db).await?, (1, 0));
    assert_eq!(
        stream_messages(bus.jetstream(), "CAREERS_OCCUPATIONS").await?,
        1
    );
    stop.cancel();
    Ok(())
}

async fn a_relay_dying_between_publish_and_mark_does_not_apply_twice(
    backend: Backend,
) -> anyhow::Result<()> {
    let (producer, consumer) = (store(backend).await?, store(backend).await?);
    let nats = NatsServer::start()?;
    let (jetstream, relay) = harness::manual_relay(&producer.db, &nats.url()).await?;

    produce(&producer.db, "2134", 1, "Programmers").await?;
    // The relay publishes, then dies before marking: the row stays unsent.
    let rows = outbox::Entity::find().all(&producer.db).await?;
    let acks = relay.publish(&rows).await;
    assert!(acks.iter().all(Result::is_ok));
    assert_eq!(
        careers_eventbus::outbox::pending_count(&producer.db).await?,
        1
    );

    // Its successor publishes the same row again.
    assert_eq!(relay.publish_batch().await?, 1);
    assert_eq!(
        careers_eventbus::outbox::pending_count(&producer.db).await?,
        0
    );
    assert_eq!(stream_messages(&jetstream, "CAREERS_OCCUPATIONS").await?, 1);

    let stop = CancellationToken::new();
    let (_bus, _consumer_bus) = start(
        &producer.db,
        &consumer.db,
        &nats.url(),
        Projector::default(),
        &stop,
    )
    .await?;
    eventually(WAIT, "the event is applied", || async {
        Ok(applications(&consumer.db).await?.0 >= 1)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(applications(&consumer.db).await?, (1, 0));
    stop.cancel();
    Ok(())
}

/// Publishes an outbox row directly with a message id of our choosing, as a broker
/// would redeliver it after its duplicate window, or out of order.
async fn publish_raw(
    jetstream: &jetstream::Context,
    row: &outbox::Model,
    message_id: &str,
) -> anyhow::Result<()> {
    let mut headers = envelope::headers(row, "careers/test");
    headers.insert(async_nats::header::NATS_MESSAGE_ID, message_id);
    jetstream
        .send_publish(
            row.subject.clone(),
            jetstream::message::PublishMessage::build()
                .payload(row.payload.clone().into())
                .headers(headers),
        )
        .await?
        .await?;
    Ok(())
}

fn figure(id: &str, period: &str, recorded_seconds: i64, value: f64) -> PublishedFigure {
    PublishedFigure {
        figure_id: id.into(),
        soc_code: "2134".into(),
        region: "K02000001".into(),
        measure: "median_annual_pay".into(),
        breakdown: "all".into(),
        period: period.into(),
        value,
        unit: "GBP".into(),
        recorded_at: Some(prost_types::Timestamp {
            seconds: recorded_seconds,
            nanos: 0,
        }),
        ..Default::default()
    }
}

async fn duplicates_and_reordering_never_move_a_projection_backwards(
    backend: Backend,
) -> anyhow::Result<()> {
    let (producer, consumer) = (store(backend).await?, store(backend).await?);
    let nats = NatsServer::start()?;
    let settings = harness::nats_settings(&nats.url());
    let jetstream = provision::connect(&settings, "test").await?;
    provision::ensure_streams(&jetstream, catalogue::OCCUPATIONS, &settings).await?;
    provision::ensure_streams(&jetstream, catalogue::LMI, &settings).await?;

    // Two snapshot versions and two additive batches, written through the outbox.
    produce(&producer.db, "2134", 1, "old title").await?;
    produce(&producer.db, "2134", 2, "new title").await?;
    let txn = careers_eventbus::begin_write(&producer.db).await?;
    let older = FiguresPublished {
        soc_code: "2134".into(),
        figures: vec![
            figure("a", "2023", 100, 50000.0),
            figure("c", "2024", 100, 1.0),
        ],
        ..Default::default()
    };
    let newer = FiguresPublished {
        soc_code: "2134".into(),
        figures: vec![figure("b", "2024", 200, 54669.0)],
        ..Default::default()
    };
    careers_eventbus::enqueue(&txn, "2134", 1, &older).await?;
    careers_eventbus::enqueue(&txn, "2134", 2, &newer).await?;
    txn.commit().await?;
    let rows = outbox::Entity::find().all(&producer.db).await?;
    let [v1, v2, batch1, batch2] = rows.as_slice() else {
        anyhow::bail!("expected four outbox rows, got {}", rows.len());
    };

    // Newest first, then the older ones, each twice under distinct message ids so the
    // broker keeps both copies and only the inbox can tell.
    for (row, copy) in [
        (v2, 1),
        (v2, 2),
        (v1, 1),
        (batch2, 1),
        (batch1, 1),
        (batch1, 2),
    ] {
        publish_raw(&jetstream, row, &format!("{}-{copy}", row.event_id)).await?;
    }

    let stop = CancellationToken::new();
    let mut bus = Eventbus::start(
        "consumer",
        consumer.db.clone(),
        catalogue::CASENOTES,
        &settings,
        &harness::outbox_settings(),
        &harness::inbox_settings(),
        stop.clone(),
    )
    .await?;
    bus.consume(projector_spec(), Projector::default());
    bus.consume(
        ConsumerSpec {
            durable: "test_figures".into(),
            stream: catalogue::LMI,
            subjects: vec![],
        },
        Projector::default(),
    );
    assert!(bus.caught_up(WAIT).await, "consumers did not catch up");
    eventually(WAIT, "four events applied", || async {
        Ok(applications(&consumer.db).await?.0 == 4)
    })
    .await?;
    assert_eq!(
        applications(&consumer.db).await?,
        (4, 0),
        "a duplicate was applied"
    );
    let view = count(
        &consumer.db,
        "SELECT version FROM widget_view WHERE soc_code = '2134'",
    )
    .await?;
    assert_eq!(view, 2, "the older snapshot overwrote the newer");
    // Figure "b" (2024, recorded later) beats "c" (2024, recorded earlier) and "a" (2023),
    // although it arrived first.
    let winner = count(
        &consumer.db,
        "SELECT CAST(value AS BIGINT) FROM figure_view",
    )
    .await?;
    assert_eq!(winner, 54669);
    assert_eq!(
        count(&consumer.db, "SELECT COUNT(*) FROM figure_view").await?,
        1
    );
    stop.cancel();
    Ok(())
}

async fn a_failing_handler_is_dead_lettered_and_replayed_once_fixed(
    backend: Backend,
) -> anyhow::Result<()> {
    let (producer, consumer) = (store(backend).await?, store(backend).await?);
    let nats = NatsServer::start()?;
    let stop = CancellationToken::new();
    let projector = Projector::default();
    let (bus, consumer_bus) = start(
        &producer.db,
        &consumer.db,
        &nats.url(),
        projector.clone(),
        &stop,
    )
    .await?;

    let poison_id = produce(&producer.db, "1111", 1, "poison").await?;
    produce(&producer.db, "2134", 1, "Programmers").await?;
    produce(&producer.db, "2135", 1, "IT business analysts").await?;
    bus.waker().wake();

    eventually(WAIT, "the events behind the poison are applied", || async {
        Ok(applications(&consumer.db).await?.0 == 2)
    })
    .await?;
    let jetstream = consumer_bus.jetstream();
    eventually(WAIT, "the poison is dead-lettered", || async {
        Ok(dlq::list(jetstream, Some("test_projection")).await?.len() == 1)
    })
    .await?;
    let letters = dlq::list(jetstream, Some("test_projection")).await?;
    let (letter, _) = &letters[0];
    assert_eq!(letter.event_id, poison_id);
    assert_eq!(letter.reason, "title `poison` is refused");
    assert_eq!(letter.deliveries, "3");
    assert_eq!(letter.subject, "careers.occupations.v1.occupation_upserted");

    projector
        .fixed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(dlq::replay(jetstream, "test_projection", None).await?, 1);
    eventually(WAIT, "the re-driven event is applied", || async {
        Ok(applications(&consumer.db).await?.0 == 3)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(applications(&consumer.db).await?, (3, 0));
    assert!(
        dlq::list(jetstream, Some("test_projection"))
            .await?
            .is_empty()
    );
    stop.cancel();
    Ok(())
}

async fn the_reconciler_republishes_a_lost_stream_tail(backend: Backend) -> anyhow::Result<()> {
    let (producer, consumer) = (store(backend).await?, store(backend).await?);
    let nats = NatsServer::start()?;
    let (jetstream, relay) = harness::manual_relay(&producer.db, &nats.url()).await?;
    for (index, code) in ["2131", "2132", "2133", "2134", "2135"].iter().enumerate() {
        produce(&producer.db, code, 1, &format!("title {index}")).await?;
    }
    assert_eq!(relay.publish_batch().await?, 5);

    // The tail is lost, as unsynced writes are in a broker crash: deleted, then the
    // broker killed and restarted (so its duplicate window forgets them too).
    let stream = jetstream.get_stream("CAREERS_OCCUPATIONS").await?;
    stream.delete_message(5).await?;
    stream.delete_message(4).await?;
    let mut nats = nats;
    nats.restart()?;
    assert_eq!(stream_messages(&jetstream, "CAREERS_OCCUPATIONS").await?, 3);

    assert_eq!(
        reconcile::reconcile(&producer.db, &jetstream, catalogue::OCCUPATIONS).await?,
        2
    );
    assert_eq!(relay.publish_batch().await?, 2);
    assert_eq!(stream_messages(&jetstream, "CAREERS_OCCUPATIONS").await?, 5);
    // Nothing more is missing now.
    assert_eq!(
        reconcile::reconcile(&producer.db, &jetstream, catalogue::OCCUPATIONS).await?,
        0
    );

    let stop = CancellationToken::new();
    let (_bus, _consumer_bus) = start(
        &producer.db,
        &consumer.db,
        &nats.url(),
        Projector::default(),
        &stop,
    )
    .await?;
    eventually(WAIT, "all five applied", || async {
        Ok(count(&consumer.db, "SELECT COUNT(*) FROM widget_view").await? == 5)
    })
    .await?;
    assert_eq!(applications(&consumer.db).await?, (5, 0));
    stop.cancel();
    Ok(())
}

async fn projection(db: &DatabaseConnection) -> anyhow::Result<Vec<(String, i64, String)>> {
    use sea_orm::ConnectionTrait;
    let rows = db
        .query_all_raw(harness::statement(
            db,
            "SELECT soc_code, version, title FROM widget_view ORDER BY soc_code",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ))
        })
        .collect()
}

async fn a_replayed_projection_equals_the_one_before(backend: Backend) -> anyhow::Result<()> {
    let (producer, consumer) = (store(backend).await?, store(backend).await?);
    let nats = NatsServer::start()?;
    let stop = CancellationToken::new();
    let (bus, consumer_bus) = start(
        &producer.db,
        &consumer.db,
        &nats.url(),
        Projector::default(),
        &stop,
    )
    .await?;
    for version in 1..=3 {
        for code in ["2131", "2132", "2133", "2134"] {
            produce(&producer.db, code, version, &format!("{code} v{version}")).await?;
        }
    }
    bus.waker().wake();
    eventually(WAIT, "twelve events applied", || async {
        Ok(applications(&consumer.db).await?.0 == 12)
    })
    .await?;
    let before = projection(&consumer.db).await?;
    assert_eq!(before.len(), 4);

    replay::rebuild(
        &consumer.db,
        consumer_bus.jetstream(),
        &projector_spec(),
        &harness::inbox_settings(),
        &Projector::default(),
    )
    .await?;
    // Every event is applied a second time: the projection was truly rebuilt.
    eventually(WAIT, "the replay re-applies all twelve", || async {
        Ok(applications(&consumer.db).await?.0 == 24)
    })
    .await?;
    assert_eq!(projection(&consumer.db).await?, before);
    stop.cancel();
    Ok(())
}

/// Shutdown cancels the consumer while it is in the middle of an event: the tasks the
/// process waits for before it exits end only once that event is committed and
/// acknowledged.
async fn stopping_finishes_the_event_being_applied(backend: Backend) -> anyhow::Result<()> {
    let (producer, consumer) = (store(backend).await?, store(backend).await?);
    let nats = NatsServer::start()?;
    let settings = harness::nats_settings(&nats.url());
    let producing = CancellationToken::new();
    let _producer = Eventbus::start(
        "producer",
        producer.db.clone(),
        catalogue::OCCUPATIONS,
        &settings,
        &harness::outbox_settings(),
        &harness::inbox_settings(),
        producing.clone(),
    )
    .await?;
    let lifecycle = careers_eventbus::Lifecycle {
        stop: CancellationToken::new(),
        tasks: TaskTracker::new(),
    };
    let mut consuming = Eventbus::start(
        "consumer",
        consumer.db.clone(),
        catalogue::LMI,
        &settings,
        &harness::outbox_settings(),
        &harness::inbox_settings(),
        lifecycle.clone(),
    )
    .await?;
    let gate = careers_eventbus::testing::Gate::default();
    consuming.consume(
        projector_spec(),
        Projector {
            gate: Some(gate.clone()),
            ..Projector::default()
        },
    );
    produce(&producer.db, "2134", 1, "Programmers").await?;
    tokio::time::timeout(WAIT, gate.entered.notified()).await?;

    lifecycle.stop.cancel();
    lifecycle.tasks.close();
    let waited = tokio::time::timeout(Duration::from_millis(500), lifecycle.tasks.wait()).await;
    assert!(
        waited.is_err(),
        "the tasks ended with an event half applied"
    );
    gate.release.notify_one();
    tokio::time::timeout(WAIT, lifecycle.tasks.wait()).await?;

    assert_eq!(applications(&consumer.db).await?, (1, 0));
    let jetstream = provision::connect_now(&settings, "stop-test").await?;
    let info = jetstream
        .get_stream(catalogue::OCCUPATIONS.name)
        .await?
        .get_consumer::<jetstream::consumer::pull::Config>(&projector_spec().durable)
        .await
        .map_err(|error| anyhow::anyhow!("{error}"))?
        .info()
        .await?
        .clone();
    assert_eq!(
        (info.num_pending, info.num_ack_pending),
        (0, 0),
        "the event was not acknowledged before the consumer stopped"
    );
    producing.cancel();
    Ok(())
}
