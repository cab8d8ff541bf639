//! The ambassadors service: the STEM Ambassador register, activity requests and matching.
//!
//! - [`grpc`]: the `careers.ambassadors.v1.AmbassadorsService` handlers and their roles.
//! - [`domain`]: what a valid ambassador and request are; rows to messages and to the
//!   matcher's inputs.
//! - [`matching`]: the hard rules, the score, the optimal assignment (a minimum-cost
//!   flow), the diversity pass and the greedy baseline, as a pure module.
//! - [`runs`]: a matching run under the matching lock, writing proposed engagements.
//! - [`engagements`]: an engagement's life cycle and its events.
//! - [`sealing`]: role-model attributes sealed at rest.
//! - [`store`]: the register, requests, runs, engagements, the catalogue projection.
//! - [`events`]: the catalogue from `OccupationUpserted`; casenotes' referrals as
//!   requests; erased clients forgotten.
//! - [`geo`]: postcode district centroids and schools from the real files in `seeds/`.
//! - [`synthetic`]: the seeded synthetic register (seeds and `make bench`).

pub mod domain;
pub mod engagements;
pub mod error;
pub mod events;
pub mod geo;
pub mod grpc;
pub mod matching;
pub mod runs;
pub mod sealing;
pub mod seed;
pub mod settings;
pub mod store;
pub mod synthetic;

use std::{path::Path, sync::Arc};

use careers_eventbus::{Eventbus, catalogue};
use careers_platform::{AppError, Context, Service};
use careers_proto::careers::ambassadors::v1::ambassadors_service_server::AmbassadorsServiceServer;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tonic::service::Routes;

pub use settings::AmbassadorsSettings;

/// The ambassadors service, as the platform runs it.
#[derive(Debug)]
pub struct Ambassadors;

/// The ambassadors store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = careers_eventbus::migration::migrations();
        migrations.push(Box::new(store::CreateRegister));
        migrations
    }
}

pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn service_error(error: impl std::fmt::Display) -> AppError {
    AppError::Service(error.to_string())
}

impl Service for Ambassadors {
    const NAME: &'static str = "ambassadors";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::AMBASSADORS;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = AmbassadorsSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        let settings = &context.settings.service;
        let key = settings.crypto.attributes_key().map_err(service_error)?;
        let places = Arc::new(geo::Places::load(&settings.places.dir).map_err(service_error)?);
        let mut bus = Eventbus::for_service(
            Self::NAME,
            context.background.clone(),
            catalogue::AMBASSADORS,
            &settings.events(),
            careers_eventbus::Lifecycle {
                stop: context.stop.clone(),
                tasks: context.tasks.clone(),
            },
        )
        .await
        .map_err(service_error)?;
        bus.consume(
            events::occupations_consumer(),
            events::KnownOccupations::default(),
        );
        bus.consume(
            events::referrals_consumer(),
            events::Referrals {
                places: places.clone(),
            },
        );
        bus.consume(events::erasures_consumer(), events::Erasures);
        bus.consume(events::shortages_consumer(), events::Shortages);
        let handlers = grpc::Handlers {
            db: context.db.clone(),
            places,
            cursors: context.cursors.clone(),
            waker: bus.waker(),
            matching: matching::Options {
                diversity_budget: settings.matching.diversity_budget,
            },
            key,
            run_timeout: settings.matching.run_timeout,
        };
        let abandoned = handlers
            .fail_abandoned_runs()
            .await
            .map_err(service_error)?;
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "matching runs left running by a stopped process marked failed"
            );
        }
        let timeout = context.settings.platform.readiness.catch_up_timeout;
        context
            .readiness
            .set_caught_up_when(async move { bus.caught_up(timeout).await });
        Ok(Routes::new(AmbassadorsServiceServer::with_interceptor(
            handlers,
            context.identity.interceptor(),
        )))
    }

    async fn seed(db: &DatabaseConnection, dir: &Path) -> Result<String, AppError> {
        seed::seed(db, dir).await.map_err(AppError::Service)
    }
}
