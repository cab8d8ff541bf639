//! The casenotes service: adviser case notes: clients, notes, consent, referrals.
//!
//! Its gRPC operations arrive with their issues; today it runs on the shared platform,
//! migrates its store (the event backbone's outbox and inbox), runs the relay of its
//! outbox to its stream and answers health and reflection.
//!
//! - [`domain`]: the client record's rules.
//! - [`crypto`]: envelope encryption of personal data, a data key per client.
//! - [`keystore`]: the wrapped data keys, in a database of their own.
//! - [`audit`]: the HMAC-chained audit trail, verified entry by entry.
//! - [`audit_log`]: its store, appended with group commit under a row lock per chain.

pub mod audit;
pub mod audit_log;
pub mod crypto;
pub mod domain;
pub mod keystore;

use careers_eventbus::{Eventbus, catalogue, settings::EventSettings};
use careers_platform::{AppError, Context, Service};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tonic::service::Routes;

/// The casenotes service, as the platform runs it.
#[derive(Debug)]
pub struct Casenotes;

/// Settings of the casenotes service beyond the platform's sections.
pub type CasenotesSettings = EventSettings;

/// The casenotes store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = careers_eventbus::migration::migrations();
        migrations.push(Box::new(audit_log::CreateAuditTrail));
        migrations
    }
}

impl Service for Casenotes {
    const NAME: &'static str = "casenotes";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::CASENOTES;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = CasenotesSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        // The relay runs for as long as the service; no consumers yet, so nothing to
        // catch up with.
        Eventbus::for_service(
            Self::NAME,
            context.db.clone(),
            catalogue::CASENOTES,
            &context.settings.service,
            context.stop.clone(),
        )
        .await
        .map_err(|error| AppError::Service(error.to_string()))?;
        context.readiness.set_caught_up().await;
        Ok(Routes::builder().routes())
    }
}
