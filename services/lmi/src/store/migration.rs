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
