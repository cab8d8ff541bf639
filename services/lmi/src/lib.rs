//! The lmi service: labour market information pushed by sector skills councils.
//!
//! - [`store`]: the schema and `known_occupations`, its projection of the catalogue.
//! - [`events`]: the handler keeping that projection from `OccupationUpserted`.
//!
//! Submissions (the gRPC API) arrive with the first end-to-end flow; today the service
//! migrates, keeps its projection and answers health and reflection.

pub mod events;
pub mod store;

use careers_eventbus::{Eventbus, catalogue, settings::EventSettings};
use careers_platform::{AppError, Context, Service};
use tonic::service::Routes;

pub use store::migration::Migrator;

/// The lmi service, as the platform runs it.
#[derive(Debug)]
pub struct Lmi;

/// Settings of the lmi service beyond the platform's sections.
pub type LmiSettings = EventSettings;

impl Service for Lmi {
    const NAME: &'static str = "lmi";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::LMI;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = LmiSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        let mut bus = Eventbus::for_service(
            Self::NAME,
            context.db.clone(),
            catalogue::LMI,
            &context.settings.service,
            context.stop.clone(),
        )
        .await
        .map_err(|error| AppError::Service(error.to_string()))?;
        bus.consume(
            events::known_occupations_consumer(),
            events::KnownOccupations,
        );
        let timeout = context.settings.platform.readiness.catch_up_timeout;
        context
            .readiness
            .set_caught_up_when(async move { bus.caught_up(timeout).await });
        Ok(Routes::builder().routes())
    }
}
