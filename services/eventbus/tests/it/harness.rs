//! Stores and settings shared by the event backbone's tests; the projection itself is
//! `careers_eventbus::testing`.

use std::time::Duration;

use careers_eventbus::settings::{InboxSettings, NatsSettings, OutboxSettings};
use careers_testkit::{postgres, sqlite::TestSqlite};
use sea_orm::{Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A migrated store and what keeps it alive.
pub struct Store {
    pub db: DatabaseConnection,
    pub url: String,
    _sqlite: Option<TestSqlite>,
    _postgres: Option<postgres::TestDatabase>,
}

pub use careers_eventbus::testing::{Migrator, Projector, applications, count, produce, statement};
pub use careers_testkit::eventually;

pub async fn store(backend: Backend) -> anyhow::Result<Store> {
    match backend {
        Backend::Sqlite => {
            let sqlite = TestSqlite::new()?;
            let db = Database::connect(sqlite.url.as_str()).await?;
            Migrator::up(&db, None).await?;
            Ok(Store {
                db,
                url: sqlite.url.clone(),
                _sqlite: Some(sqlite),
                _postgres: None,
            })
        }
        Backend::Postgres => {
            let database =
                postgres::migrated_database::<Migrator, _, _>("eventbus_it", |url| async move {
                    let db = Database::connect(url.as_str()).await?;
                    Migrator::up(&db, None).await?;
                    db.close().await?;
                    Ok(())
                })
                .await?;
            let db = Database::connect(database.url.as_str()).await?;
            Ok(Store {
                db,
                url: database.url.clone(),
                _sqlite: None,
                _postgres: Some(database),
            })
        }
    }
}

pub fn nats_settings(url: &str) -> NatsSettings {
    NatsSettings {
        url: url.to_owned(),
        request_timeout: Duration::from_secs(2),
        ..NatsSettings::default()
    }
}

pub fn outbox_settings() -> OutboxSettings {
    OutboxSettings {
        max_backoff: Duration::from_millis(500),
        reconcile_interval: Duration::from_millis(300),
        ..OutboxSettings::default()
    }
}

pub fn inbox_settings() -> InboxSettings {
    InboxSettings {
        max_attempts: 3,
        retry_backoff: vec![Duration::from_millis(50), Duration::from_millis(100)],
        ack_wait: Duration::from_secs(2),
        ..InboxSettings::default()
    }
}

/// A broker connection with the streams provisioned, and a relay of `db`'s outbox that
/// the test drives by hand.
pub async fn manual_relay(
    db: &DatabaseConnection,
    nats_url: &str,
) -> anyhow::Result<(async_nats::jetstream::Context, careers_eventbus::Relay)> {
    let settings = nats_settings(nats_url);
    let jetstream = careers_eventbus::provision::connect(&settings, "test").await?;
    careers_eventbus::provision::ensure_streams(
        &jetstream,
        careers_eventbus::catalogue::OCCUPATIONS,
        &settings,
    )
    .await?;
    let relay = careers_eventbus::Relay::new(
        db.clone(),
        jetstream.clone(),
        careers_eventbus::catalogue::OCCUPATIONS,
        settings,
        outbox_settings(),
        Duration::from_secs(3600),
    );
    Ok((jetstream, relay))
}
