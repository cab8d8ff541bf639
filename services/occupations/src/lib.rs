//! The occupations service: the SOC 2020 occupations catalogue.
//!
//! Its gRPC operations arrive with their issues; today it runs on the shared platform,
//! migrates its store (the event backbone's outbox and inbox) and answers health and
//! reflection.

use careers_platform::{AppError, Context, Service};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use serde::Deserialize;
use tonic::service::Routes;

/// The occupations service, as the platform runs it.
#[derive(Debug)]
pub struct Occupations;

/// Settings of the occupations service beyond the platform's sections.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct OccupationsSettings {}

/// The occupations store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        careers_eventbus::migration::migrations()
    }
}

impl Service for Occupations {
    const NAME: &'static str = "occupations";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::OCCUPATIONS;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = OccupationsSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        // Nothing to catch up with until the service consumes events.
        context.readiness.set_caught_up().await;
        Ok(Routes::builder().routes())
    }
}
