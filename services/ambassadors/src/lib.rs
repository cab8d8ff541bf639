//! The ambassadors service: the STEM Ambassador register, requests and matching.
//!
//! Its gRPC operations arrive with their issues; today it runs on the shared platform,
//! migrates its store (the event backbone's outbox and inbox) and answers health and
//! reflection.

use careers_platform::{AppError, Context, Service};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use serde::Deserialize;
use tonic::service::Routes;

/// The ambassadors service, as the platform runs it.
#[derive(Debug)]
pub struct Ambassadors;

/// Settings of the ambassadors service beyond the platform's sections.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AmbassadorsSettings {}

/// The ambassadors store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        careers_eventbus::migration::migrations()
    }
}

impl Service for Ambassadors {
    const NAME: &'static str = "ambassadors";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::AMBASSADORS;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = AmbassadorsSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        // Nothing to catch up with until the service consumes events.
        context.readiness.set_caught_up().await;
        Ok(Routes::builder().routes())
    }
}
