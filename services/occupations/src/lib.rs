//! The occupations service: the SOC 2020 catalogue.
//!
//! - [`classify`]: typed entry routes and the STEM flag, derived by stated rules.
//! - [`store`]: the catalogue rows and the latest LMI figures per occupation.
//! - [`seed`]: the typed, idempotent loader of ONS SOC 2020 unit groups.
//! - [`events`]: `OccupationUpserted` out, `FiguresPublished` in.
//! - [`grpc`]: the `careers.occupations.v1.OccupationsService` handlers.
//! - [`error`], [`settings`]: occupations' errors (as gRPC statuses) and settings.

pub mod classify;
pub mod edit;
pub mod error;
pub mod events;
pub mod grpc;
pub mod search;
pub mod seed;
pub mod settings;
pub mod store;
pub mod summary;

use std::path::Path;

use careers_eventbus::{Eventbus, catalogue};
use careers_platform::{AppError, Context, Service};
use careers_proto::careers::occupations::v1::occupations_service_server::OccupationsServiceServer;
use sea_orm::DatabaseConnection;
use tonic::service::Routes;

pub use error::OccupationsError;
pub use settings::OccupationsSettings;
pub use store::migration::Migrator;

/// The occupations service, as the platform runs it.
#[derive(Debug)]
pub struct Occupations;

impl Service for Occupations {
    const NAME: &'static str = "occupations";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::OCCUPATIONS;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = OccupationsSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        let mut bus = Eventbus::for_service(
            Self::NAME,
            context.background.clone(),
            catalogue::OCCUPATIONS,
            &context.settings.service,
            careers_eventbus::Lifecycle {
                stop: context.stop.clone(),
                tasks: context.tasks.clone(),
            },
        )
        .await
        .map_err(|error| AppError::Service(error.to_string()))?;
        bus.consume(events::lmi_figures_consumer(), events::LmiFigures);
        let waker = bus.waker();
        // The search index answers from the store's content at once, then follows events.
        let search =
            search::SearchIndex::new().map_err(|error| AppError::Service(error.to_string()))?;
        search
            .rebuild(&context.db)
            .await
            .map_err(|error| AppError::Service(error.to_string()))?;
        tokio::spawn(search::follow(
            search.clone(),
            context.background.clone(),
            bus.jetstream().clone(),
            context.stop.clone(),
        ));
        let timeout = context.settings.platform.readiness.catch_up_timeout;
        context
            .readiness
            .set_caught_up_when(async move { bus.caught_up(timeout).await });
        Ok(Routes::new(OccupationsServiceServer::with_interceptor(
            grpc::Handlers {
                db: context.db.clone(),
                cursors: context.cursors.clone(),
                waker,
                search,
            },
            context.identity.interceptor(),
        )))
    }

    async fn seed(db: &DatabaseConnection, dir: &Path) -> Result<String, AppError> {
        let (read, changed) = seed::seed(db, dir)
            .await
            .map_err(|error| AppError::Service(error.to_string()))?;
        Ok(format!("{read} unit groups read, {changed} new or changed"))
    }
}
