//! `careersctl replay lmi_occupations` rebuilds lmi's projection of the catalogue, on
//! SQLite and on PostgreSQL, while the lmi service runs.

use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

use careers_eventbus::{
    Eventbus, catalogue, enqueue, settings,
    testing::{Migrator, count},
};
use careers_lmi::Lmi;
use careers_proto::careers::occupations::events::v1::OccupationUpserted;
use careers_testkit::{eventually, nats::NatsServer, postgres, service::spawn, sqlite::TestSqlite};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;
use tokio_util::sync::CancellationToken;

const CODES: [&str; 10] = [
    "2111", "2112", "2113", "2114", "2115", "2121", "2122", "2123", "2124", "2134",
];

async fn rows(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let result = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            sql.to_owned(),
        ))
        .await?;
    result
        .iter()
        .map(|row| {
            Ok(vec![
                row.try_get_by_index::<String>(0)?,
                row.try_get_by_index::<i64>(1)?.to_string(),
                row.try_get_by_index::<String>(2)?,
            ])
        })
        .collect()
}

async fn replay_rebuilds_the_projection(lmi_url: String) -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let lmi = spawn::<Lmi>(&lmi_url, &[("nats.url", &nats.url())]).await?;
    let lmi_db = Database::connect(lmi_url.as_str()).await?;

    // A producer publishing three versions of ten occupations through its outbox.
    let producer_store = TestSqlite::new()?;
    let producer = Database::connect(producer_store.url.as_str()).await?;
    Migrator::up(&producer, None).await?;
    let stop = CancellationToken::new();
    let nats_settings = settings::NatsSettings {
        url: nats.url(),
        ..Default::default()
    };
    let bus = Eventbus::start(
        "occupations",
        producer.clone(),
        catalogue::OCCUPATIONS,
        &nats_settings,
        &Default::default(),
        &Default::default(),
        stop.clone(),
    )
    .await?;
    for version in 1..=3u64 {
        let txn = careers_eventbus::begin_write(&producer).await?;
        for code in CODES {
            let event = OccupationUpserted {
                soc_code: code.into(),
                version,
                title: format!("{code} v{version}"),
                ..Default::default()
            };
            enqueue(&txn, code, version as i64, &event).await?;
        }
        txn.commit().await?;
    }
    bus.waker().wake();

    let projection = "SELECT soc_code, version, title FROM known_occupations ORDER BY soc_code";
    let inbox = "SELECT COUNT(*) FROM inbox WHERE consumer = 'lmi_occupations'";
    eventually(WAIT, "thirty events applied", || async {
        Ok(count(&lmi_db, inbox).await? == 30)
    })
    .await?;
    let before = rows(&lmi_db, projection).await?;
    assert_eq!(before.len(), 10);
    assert!(before.iter().all(|row| row[1] == "3"), "{before:?}");

    // Damage the projection: only a real rebuild from the stream can repair it.
    lmi_db
        .execute_unprepared("UPDATE known_occupations SET title = 'damaged', version = 99")
        .await?;

    let output = super::careersctl_with(
        &nats.url(),
        &[("CAREERS_CAREERSCTL__DATABASES__LMI", &lmi_url)],
        &["replay", "lmi_occupations"],
    )?;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Rebuilt from the start of the stream by the running service: the projection ends
    // equal to the one before the damage.
    eventually(WAIT, "thirty events re-applied", || async {
        Ok(count(&lmi_db, inbox).await? == 30 && rows(&lmi_db, projection).await? == before)
    })
    .await?;
    assert_eq!(rows(&lmi_db, projection).await?, before);
    stop.cancel();
    lmi.shutdown().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_lmi_known_occupations_on_sqlite() -> anyhow::Result<()> {
    let store = TestSqlite::new()?;
    replay_rebuilds_the_projection(store.url.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_rebuilds_lmi_known_occupations_on_postgres() -> anyhow::Result<()> {
    let database = postgres::empty_database().await?;
    replay_rebuilds_the_projection(database.url.clone()).await
}
