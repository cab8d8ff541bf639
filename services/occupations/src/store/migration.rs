//! The occupations store's migrations, after the event backbone's.

use sea_orm::Statement;
use sea_orm_migration::prelude::*;

/// The occupations store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = careers_eventbus::migration::migrations();
        migrations.push(Box::new(CreateCatalogue));
        migrations.push(Box::new(CreateReference));
        migrations.push(Box::new(CreateHistory));
        migrations.push(Box::new(CreateSynonyms));
        migrations.push(Box::new(AddFigureHorizon));
        migrations.push(Box::new(AddFigurePeriodOrder));
        migrations
    }
}

#[derive(DeriveIden)]
enum Occupations {
    Table,
    SocCode,
    Title,
    MajorGroup,
    SubMajorGroup,
    MinorGroup,
    Description,
    /// JSON array of strings.
    Tasks,
    EntryRoutesText,
    /// JSON array of strings.
    RelatedJobTitles,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LmiFigures {
    Table,
    SocCode,
    Measure,
    Region,
    Breakdown,
    Period,
    Value,
    Unit,
    Source,
    RecordedAt,
    FigureId,
    Suppressed,
}

/// ONS reference data beside each unit group: the coding index's job titles, the
/// sub-unit groups, the crosswalks to SOC 2010 and ISCO-08, and the digest of the files
/// last loaded, so the seeder reloads them only when they change.
struct CreateReference;

impl MigrationName for CreateReference {
    fn name(&self) -> &str {
        "m20261123_002003_occupations_reference"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateReference {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE TABLE IF NOT EXISTS alternative_titles (position BIGINT PRIMARY KEY, \
             soc_code TEXT NOT NULL, sub_unit_group TEXT NOT NULL, title TEXT NOT NULL, \
             qualifier TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS alternative_titles_soc ON alternative_titles (soc_code, position)",
            "CREATE TABLE IF NOT EXISTS sub_unit_groups (code TEXT PRIMARY KEY, soc_code TEXT NOT NULL, \
             title TEXT NOT NULL, index_entries BIGINT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS sub_unit_groups_soc ON sub_unit_groups (soc_code, code)",
            "CREATE TABLE IF NOT EXISTS crosswalks (soc_code TEXT NOT NULL, scheme TEXT NOT NULL, \
             code TEXT NOT NULL, title TEXT NOT NULL, index_entries BIGINT NOT NULL, \
             share DOUBLE PRECISION NOT NULL, PRIMARY KEY (soc_code, scheme, code))",
            "CREATE TABLE IF NOT EXISTS seed_digests (name TEXT PRIMARY KEY, digest TEXT NOT NULL)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Search synonyms: the coding index's cross-references ("see ...") resolved to the unit
/// groups of their targets, and the colloquial titles curated beside the seeds.
struct CreateSynonyms;

impl MigrationName for CreateSynonyms {
    fn name(&self) -> &str {
        "m20261123_002005_occupations_synonyms"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateSynonyms {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        for sql in [
            "CREATE TABLE IF NOT EXISTS search_synonyms (position BIGINT PRIMARY KEY, \
             soc_code TEXT NOT NULL, term TEXT NOT NULL, target TEXT NOT NULL, source TEXT NOT NULL)",
            "CREATE INDEX IF NOT EXISTS search_synonyms_soc ON search_synonyms (soc_code, position)",
        ] {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}

/// Projections carry the year they are to, for the occupation's outlook.
struct AddFigureHorizon;

impl MigrationName for AddFigureHorizon {
    fn name(&self) -> &str {
        "m20261123_002006_occupations_figure_horizon"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddFigureHorizon {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "ALTER TABLE lmi_figures ADD COLUMN horizon TEXT NOT NULL DEFAULT ''",
            )
            .await?;
        Ok(())
    }
}

/// The first part of a figure's merge rank, stored so that the upsert itself can refuse a
/// figure that ranks below the one held (a guard in its `WHERE`): with two consumers, a
/// read followed by a write could let an older figure overwrite a newer one.
struct AddFigurePeriodOrder;

impl MigrationName for AddFigurePeriodOrder {
    fn name(&self) -> &str {
        "m20261207_000001_occupations_figure_period_order"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for AddFigurePeriodOrder {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(
            "ALTER TABLE lmi_figures ADD COLUMN period_order TEXT NOT NULL DEFAULT ''",
        )
        .await?;
        // A handful of distinct periods, however many figures: one update each.
        let periods = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT DISTINCT period FROM lmi_figures",
            ))
            .await?;
        for row in periods {
            let period: String = row.try_get("", "period")?;
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "UPDATE lmi_figures SET period_order = $1 WHERE period = $2",
                [
                    careers_proto::period::order_key(&period).0.into(),
                    period.into(),
                ],
            ))
            .await?;
        }
        Ok(())
    }
}

/// Every change of an occupation: who, when and what, by version.
struct CreateHistory;

impl MigrationName for CreateHistory {
    fn name(&self) -> &str {
        "m20261123_002004_occupations_history"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateHistory {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE TABLE IF NOT EXISTS occupation_history (soc_code TEXT NOT NULL, \
                 version BIGINT NOT NULL, changed_by TEXT NOT NULL, changed_at TEXT NOT NULL, \
                 changes TEXT NOT NULL, PRIMARY KEY (soc_code, version))",
            )
            .await?;
        Ok(())
    }
}

/// Named explicitly: the derived name is the file's stem, which several crates' files
/// share, and names must be unique within a store.
struct CreateCatalogue;

impl MigrationName for CreateCatalogue {
    fn name(&self) -> &str {
        "m20261123_002001_occupations_catalogue"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateCatalogue {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Occupations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Occupations::SocCode)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Occupations::Title).string().not_null())
                    .col(ColumnDef::new(Occupations::MajorGroup).string().not_null())
                    .col(
                        ColumnDef::new(Occupations::SubMajorGroup)
                            .string()
                            .not_null(),
                    )
                    .col(ColumnDef::new(Occupations::MinorGroup).string().not_null())
                    .col(ColumnDef::new(Occupations::Description).text().not_null())
                    .col(ColumnDef::new(Occupations::Tasks).text().not_null())
                    .col(
                        ColumnDef::new(Occupations::EntryRoutesText)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Occupations::RelatedJobTitles)
                            .text()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Occupations::Version)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Occupations::UpdatedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(LmiFigures::Table)
                    .if_not_exists()
                    .col(ColumnDef::new(LmiFigures::SocCode).string().not_null())
                    .col(ColumnDef::new(LmiFigures::Measure).string().not_null())
                    .col(ColumnDef::new(LmiFigures::Region).string().not_null())
                    .col(ColumnDef::new(LmiFigures::Breakdown).string().not_null())
                    .col(ColumnDef::new(LmiFigures::Period).string().not_null())
                    .col(ColumnDef::new(LmiFigures::Value).double().not_null())
                    .col(ColumnDef::new(LmiFigures::Unit).string().not_null())
                    .col(ColumnDef::new(LmiFigures::Source).string().not_null())
                    .col(
                        ColumnDef::new(LmiFigures::RecordedAt)
                            .timestamp_with_time_zone()
                            .not_null(),
                    )
                    .col(ColumnDef::new(LmiFigures::FigureId).string().not_null())
                    .col(ColumnDef::new(LmiFigures::Suppressed).boolean().not_null())
                    .primary_key(
                        Index::create()
                            .col(LmiFigures::SocCode)
                            .col(LmiFigures::Measure)
                            .col(LmiFigures::Region)
                            .col(LmiFigures::Breakdown),
                    )
                    .to_owned(),
            )
            .await
    }
}
