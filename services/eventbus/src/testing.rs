//! A small projection for testing and benchmarking the backbone itself (used by its
//! tests, `eventbus-soak` and `make bench`): producers write `widgets` with
//! `OccupationUpserted` snapshots through the outbox; [`Projector`] projects them (newer
//! version wins) and `FiguresPublished` figures (later period, recorded_at, id wins)
//! and logs every application in `applied`, so a double application shows as a repeated
//! event id. No service uses it.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use careers_proto::careers::{
    lmi::events::v1::FiguresPublished, occupations::events::v1::OccupationUpserted,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, Statement, Value};
use sea_orm_migration::prelude::*;
use tokio::sync::Notify;

use crate::{Envelope, HandlerError, consumer::Handler, enqueue};

/// The backbone's tables plus the test projection's.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = crate::migration::migrations();
        migrations.push(Box::new(CreateTestTables));
        migrations
    }
}

/// Named explicitly: the derived name is the file's stem, which several crates' files
/// share, and names must be unique within a store.
struct CreateTestTables;

impl MigrationName for CreateTestTables {
    fn name(&self) -> &str {
        "m20261123_900001_eventbus_testing_tables"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateTestTables {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE TABLE widgets (soc_code TEXT PRIMARY KEY, version BIGINT NOT NULL, title TEXT NOT NULL)",
            "CREATE TABLE widget_view (soc_code TEXT PRIMARY KEY, version BIGINT NOT NULL, title TEXT NOT NULL)",
            "CREATE TABLE figure_view (figure_key TEXT PRIMARY KEY, period TEXT NOT NULL, recorded_at TEXT NOT NULL, figure_id TEXT NOT NULL, value DOUBLE PRECISION NOT NULL)",
            "CREATE TABLE applied (event_id TEXT NOT NULL)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Raw SQL with `$n` placeholders, on either backend.
pub fn statement(db: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(db.get_database_backend(), sql, values)
}

pub async fn count(db: &impl ConnectionTrait, sql: &str) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(statement(db, sql, vec![]))
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(sql.to_owned()))?;
    row.try_get_by_index::<i64>(0)
        .map_err(|error| DbErr::Type(error.to_string()))
}

/// The producer's state change and its event, in one transaction.
pub async fn produce(
    db: &DatabaseConnection,
    soc_code: &str,
    version: i64,
    title: &str,
) -> Result<String, crate::EventbusError> {
    let txn = crate::begin_write(db).await?;
    txn.execute_raw(statement(
        &txn,
        "INSERT INTO widgets (soc_code, version, title) VALUES ($1, $2, $3) \
         ON CONFLICT (soc_code) DO UPDATE SET version = excluded.version, title = excluded.title",
        vec![soc_code.into(), version.into(), title.into()],
    ))
    .await?;
    let event = OccupationUpserted {
        soc_code: soc_code.to_owned(),
        version: version as u64,
        title: title.to_owned(),
        ..Default::default()
    };
    let id = enqueue(&txn, soc_code, version, &event).await?;
    txn.commit().await?;
    Ok(id)
}

async fn log_applied(txn: &DatabaseTransaction, event: &Envelope) -> Result<(), DbErr> {
    txn.execute_raw(statement(
        txn,
        "INSERT INTO applied (event_id) VALUES ($1)",
        vec![event.id.clone().into()],
    ))
    .await?;
    Ok(())
}

/// Projects `OccupationUpserted` snapshots (newer version wins) and `FiguresPublished`
/// figures (later period, then later recorded_at, then higher id wins). Rejects titles
/// equal to `poison` until `fixed` is set; holds every event at `gate` when there is one.
#[derive(Debug, Clone, Default)]
pub struct Projector {
    pub fixed: Arc<AtomicBool>,
    pub gate: Option<Gate>,
}

/// Holds each event in the middle of its application until released, so a test can stop
/// a consumer while it is applying one.
#[derive(Debug, Clone, Default)]
pub struct Gate {
    /// Notified when an event reaches the gate.
    pub entered: Arc<Notify>,
    /// Notify once per event to let it through.
    pub release: Arc<Notify>,
}

impl Handler for Projector {
    async fn handle(
        &self,
        txn: &DatabaseTransaction,
        event: &Envelope,
    ) -> Result<(), HandlerError> {
        if let Some(gate) = &self.gate {
            gate.entered.notify_one();
            gate.release.notified().await;
        }
        match event.event_type.as_str() {
            "careers.occupations.events.v1.OccupationUpserted" => {
                let snapshot: OccupationUpserted = event
                    .decode()
                    .map_err(|error| HandlerError::Rejected(format!("undecodable: {error}")))?;
                if snapshot.title == "poison" && !self.fixed.load(Ordering::SeqCst) {
                    return Err(HandlerError::Rejected("title `poison` is refused".into()));
                }
                txn.execute_raw(statement(
                    txn,
                    "INSERT INTO widget_view (soc_code, version, title) VALUES ($1, $2, $3) \
                     ON CONFLICT (soc_code) DO UPDATE SET version = excluded.version, title = excluded.title \
                     WHERE excluded.version > widget_view.version",
                    vec![snapshot.soc_code.into(), (snapshot.version as i64).into(), snapshot.title.into()],
                ))
                .await?;
            }
            "careers.lmi.events.v1.FiguresPublished" => {
                let batch: FiguresPublished = event
                    .decode()
                    .map_err(|error| HandlerError::Rejected(format!("undecodable: {error}")))?;
                for figure in batch.figures {
                    let recorded_at = figure
                        .recorded_at
                        .map(|time| format!("{:020}.{:09}", time.seconds, time.nanos))
                        .unwrap_or_default();
                    let key = format!(
                        "{}|{}|{}|{}",
                        figure.soc_code, figure.measure, figure.region, figure.breakdown
                    );
                    txn.execute_raw(statement(
                        txn,
                        "INSERT INTO figure_view (figure_key, period, recorded_at, figure_id, value) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (figure_key) DO UPDATE SET period = excluded.period, recorded_at = excluded.recorded_at, \
                         figure_id = excluded.figure_id, value = excluded.value \
                         WHERE (excluded.period, excluded.recorded_at, excluded.figure_id) > \
                               (figure_view.period, figure_view.recorded_at, figure_view.figure_id)",
                        vec![key.into(), figure.period.into(), recorded_at.into(), figure.figure_id.into(), figure.value.into()],
                    ))
                    .await?;
                }
            }
            other => {
                return Err(HandlerError::Rejected(format!(
                    "unexpected event type {other}"
                )));
            }
        }
        log_applied(txn, event).await?;
        Ok(())
    }

    async fn reset(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        txn.execute_unprepared("DELETE FROM widget_view").await?;
        txn.execute_unprepared("DELETE FROM figure_view").await?;
        Ok(())
    }
}

/// Every application so far, and how many of them repeated an event.
pub async fn applications(db: &DatabaseConnection) -> Result<(i64, i64), DbErr> {
    let total = count(db, "SELECT COUNT(*) FROM applied").await?;
    let distinct = count(db, "SELECT COUNT(DISTINCT event_id) FROM applied").await?;
    Ok((total, total - distinct))
}
