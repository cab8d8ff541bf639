//! The lmi store's migrations, after the event backbone's.

use sea_orm_migration::prelude::*;

/// The lmi store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = careers_eventbus::migration::migrations();
        migrations.push(Box::new(CreateKnownOccupations));
        migrations.push(Box::new(CreateSubmissions));
        migrations.push(Box::new(AddFigurePeriodMonths));
        migrations.push(Box::new(AddFigureStatus));
        migrations.push(Box::new(AddStaging));
        migrations
    }
}

#[derive(DeriveIden)]
enum KnownOccupations {
    Table,
    SocCode,
    Version,
    Title,
}

/// Named explicitly: the derived name is the file's stem, which several crates' files
/// share, and names must be unique within a store.
struct CreateKnownOccupations;

impl MigrationName for CreateKnownOccupations {
    fn name(&self) -> &str {
        "m20261123_001001_lmi_known_occupations"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateKnownOccupations {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KnownOccupations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(KnownOccupations::SocCode)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(KnownOccupations::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(KnownOccupations::Title).string().not_null())
                    .to_owned(),
            )
            .await
    }
}

/// Named explicitly, like every migration here.
struct CreateSubmissions;

impl MigrationName for CreateSubmissions {
    fn name(&self) -> &str {
        "m20261123_001002_lmi_submissions"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSubmissions {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let blob = match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => "BYTEA",
            _ => "BLOB",
        };
        for sql in [
            "CREATE TABLE IF NOT EXISTS sscs (id TEXT PRIMARY KEY, name TEXT NOT NULL, \
             footprint TEXT NOT NULL, synthetic BOOLEAN NOT NULL)"
                .to_owned(),
            // The answer is kept as sent, so a replay by (ssc, key) returns it unchanged.
            format!(
                "CREATE TABLE IF NOT EXISTS submissions (id TEXT PRIMARY KEY, ssc TEXT NOT NULL, \
                 submission_key TEXT NOT NULL, created_at TEXT NOT NULL, response {blob} NOT NULL)"
            ),
            "CREATE UNIQUE INDEX IF NOT EXISTS submissions_ssc_key ON submissions (ssc, submission_key)".to_owned(),
            "CREATE TABLE IF NOT EXISTS figures (figure_id TEXT PRIMARY KEY, submission_id TEXT NOT NULL, \
             soc_code TEXT NOT NULL, region TEXT NOT NULL, measure TEXT NOT NULL, breakdown TEXT NOT NULL, \
             period TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, unit TEXT NOT NULL, source TEXT NOT NULL, \
             horizon TEXT NOT NULL, sample_size BIGINT, quality TEXT NOT NULL, recorded_at TEXT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS figures_key ON figures (soc_code, measure, region, breakdown, period)".to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}

/// Adds the months each figure's period covers, so figures filter and order by time
/// whatever the period's form, and backfills them.
struct AddFigurePeriodMonths;

impl MigrationName for AddFigurePeriodMonths {
    fn name(&self) -> &str {
        "m20261123_001003_lmi_figure_period_months"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddFigurePeriodMonths {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let backend = manager.get_database_backend();
        for sql in [
            "ALTER TABLE figures ADD COLUMN period_first TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE figures ADD COLUMN period_last TEXT NOT NULL DEFAULT ''",
        ] {
            db.execute_unprepared(sql).await?;
        }
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                backend,
                "SELECT figure_id, period FROM figures",
            ))
            .await?;
        for row in rows {
            let id: String = row.try_get_by_index(0)?;
            let period: String = row.try_get_by_index(1)?;
            let months = careers_proto::period::months(&period)
                .ok_or_else(|| DbErr::Custom(format!("figure {id}: period {period:?}")))?;
            db.execute_raw(sea_orm::Statement::from_sql_and_values(
                backend,
                "UPDATE figures SET period_first = $1, period_last = $2 WHERE figure_id = $3",
                [months.first.into(), months.last.into(), id.into()],
            ))
            .await?;
        }
        for sql in [
            "DROP INDEX IF EXISTS figures_key",
            // The listing's order: series, then time, then revision.
            "CREATE INDEX IF NOT EXISTS figures_series ON figures \
             (soc_code, measure, region, breakdown, period_last, period, recorded_at, figure_id)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Figures get a status (published, suppressed, quarantined for QA review, rejected by
/// a reviewer) with the finding that held them and the review decision; SSCs get the
/// flag that turns the change rule off for already-assured publishers.
struct AddFigureStatus;

impl MigrationName for AddFigureStatus {
    fn name(&self) -> &str {
        "m20261123_001004_lmi_figure_status"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddFigureStatus {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "ALTER TABLE figures ADD COLUMN status TEXT NOT NULL DEFAULT 'published'",
            "ALTER TABLE figures ADD COLUMN row_index BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE figures ADD COLUMN line BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE figures ADD COLUMN held_rule TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE figures ADD COLUMN held_message TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE figures ADD COLUMN review_reason TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE figures ADD COLUMN reviewed_by TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE figures ADD COLUMN reviewed_at TEXT NOT NULL DEFAULT ''",
            "CREATE INDEX IF NOT EXISTS figures_held ON figures (status, recorded_at, figure_id)",
            "ALTER TABLE sscs ADD COLUMN change_rule BOOLEAN NOT NULL DEFAULT TRUE",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Submissions are staged as they stream in: a staging row per submission being
/// received (the janitor removes those left behind by a crash), figures that record what
/// they change for the delta, and an index to read a submission's figures back in SOC order.
struct AddStaging;

impl MigrationName for AddStaging {
    fn name(&self) -> &str {
        "m20261123_001005_lmi_staging"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddStaging {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE TABLE IF NOT EXISTS staging (submission_id TEXT PRIMARY KEY, ssc TEXT NOT NULL, \
             submission_key TEXT NOT NULL, started_at TEXT NOT NULL, touched_at TEXT NOT NULL)",
            "ALTER TABLE figures ADD COLUMN delta TEXT NOT NULL DEFAULT ''",
            "ALTER TABLE figures ADD COLUMN previous_value DOUBLE PRECISION",
            "CREATE INDEX IF NOT EXISTS figures_submission ON figures (submission_id, soc_code, row_index)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use careers_testkit::{postgres, sqlite::TestSqlite};
    use sea_orm::{ConnectionTrait, Database, Statement};

    use super::*;

    /// Figures stored before the period columns existed get them from their period.
    async fn period_months_are_backfilled(url: &str) -> anyhow::Result<()> {
        let db = Database::connect(url).await?;
        let before = Migrator::migrations()
            .iter()
            .position(|migration| migration.name() == AddFigurePeriodMonths.name())
            .expect("the migration is listed") as u32;
        Migrator::up(&db, Some(before)).await?;
        db.execute_unprepared(
            "INSERT INTO figures (figure_id, submission_id, soc_code, region, measure, breakdown, \
             period, value, unit, source, horizon, sample_size, quality, recorded_at) VALUES \
             ('f1', 's1', '2134', 'K02000001', 'employment', 'all', '2024-Q2', 1, 'persons', 'x', '', NULL, '', 'now')",
        )
        .await?;
        Migrator::up(&db, None).await?;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT period_first, period_last FROM figures WHERE figure_id = 'f1'",
            ))
            .await?
            .expect("the figure");
        let months: (String, String) = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        assert_eq!(months, ("2024-04".to_owned(), "2024-06".to_owned()));
        Ok(())
    }

    #[tokio::test]
    async fn period_months_are_backfilled_on_sqlite() -> anyhow::Result<()> {
        let database = TestSqlite::new()?;
        period_months_are_backfilled(&database.url).await
    }

    #[tokio::test]
    async fn period_months_are_backfilled_on_postgres() -> anyhow::Result<()> {
        let database = postgres::empty_database().await?;
        period_months_are_backfilled(&database.url).await
    }
}
