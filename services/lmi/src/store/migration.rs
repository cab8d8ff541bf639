//! The lmi store's migrations, after the event backbone's.

use sea_orm_migration::prelude::*;

/// The lmi store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = careers_eventbus::migration::migrations();
        migrations.push(Box::new(CreateKnownOccupations));
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
