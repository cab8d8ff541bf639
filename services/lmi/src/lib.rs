//! The lmi service: labour market information pushed by sector skills councils.
//!
//! - [`domain`]: the template (v1) and its row rules, pure.
//! - [`submit`]: the one submission pipeline (validate, record, publish).
//! - [`grpc`]: the `careers.lmi.v1.LmiService` handlers.
//! - [`store`]: submissions, figures, the SSC registry and `known_occupations`.
//! - [`ons`]: the real ONS figures in `seeds/lmi/` as submissions from `ons`.
//! - [`registry`]: the SSC registry, managed by operators.
//! - [`review`]: QA decisions on held figures.
//! - [`events`]: the handler keeping `known_occupations` from `OccupationUpserted`.
//! - [`error`], [`settings`]: lmi's errors (as gRPC statuses) and settings sections.

pub mod domain;
pub mod error;
pub mod events;
pub mod grpc;
pub mod ons;
pub mod registry;
pub mod review;
pub mod settings;
pub mod store;
pub mod submit;

use careers_eventbus::{Eventbus, catalogue};
use std::path::Path;

use careers_platform::{AppError, Context, Service};
use careers_proto::careers::lmi::v1::lmi_service_server::LmiServiceServer;
use sea_orm::DatabaseConnection;
use tonic::service::Routes;

pub use error::LmiError;
pub use settings::{LmiSettings, SubmissionSettings, ValidationSettings};
pub use store::migration::Migrator;

/// The lmi service, as the platform runs it.
#[derive(Debug)]
pub struct Lmi;

/// The SSC registry's seed, relative to the seeds directory.
pub const SSC_SEED: &str = "lmi/sscs.csv";

impl Service for Lmi {
    const NAME: &'static str = "lmi";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::LMI;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = LmiSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        let mut bus = Eventbus::for_service(
            Self::NAME,
            context.background.clone(),
            catalogue::LMI,
            &context.settings.service.events(),
            careers_eventbus::Lifecycle {
                stop: context.stop.clone(),
                tasks: context.tasks.clone(),
            },
        )
        .await
        .map_err(|error| AppError::Service(error.to_string()))?;
        bus.consume(
            events::known_occupations_consumer(),
            events::KnownOccupations::default(),
        );
        let handlers = grpc::Handlers {
            db: context.db.clone(),
            waker: bus.waker(),
            cursors: context.cursors.clone(),
            validation: context.settings.service.validation.clone(),
            submissions: context.settings.service.submissions.clone(),
        };
        tokio::spawn(submit::sweep_staging(
            context.background.clone(),
            context.settings.service.submissions.clone(),
            context.stop.clone(),
        ));
        let timeout = context.settings.platform.readiness.catch_up_timeout;
        context
            .readiness
            .set_caught_up_when(async move { bus.caught_up(timeout).await });
        Ok(Routes::new(LmiServiceServer::with_interceptor(
            handlers,
            context.identity.interceptor(),
        )))
    }

    async fn seed(db: &DatabaseConnection, dir: &Path) -> Result<String, AppError> {
        let path = dir.join(SSC_SEED);
        let mut reader = csv::Reader::from_path(&path)
            .map_err(|error| AppError::Service(format!("{}: {error}", path.display())))?;
        let (mut read, mut added) = (0, 0);
        for record in reader.deserialize::<(String, String, String, bool, bool)>() {
            let (id, name, footprint, synthetic, change_rule) = record
                .map_err(|error| AppError::Service(format!("{}: {error}", path.display())))?;
            read += 1;
            let entry = store::sscs::SscEntry {
                id,
                name,
                footprint,
                synthetic,
                change_rule,
            };
            registry::check(&entry).map_err(|error| {
                AppError::Service(format!("{}: SSC {}: {error}", path.display(), entry.id))
            })?;
            if store::sscs::insert(db, &entry)
                .await
                .map_err(|error| AppError::Service(error.to_string()))?
            {
                added += 1;
            }
        }
        Ok(format!("{read} SSCs read, {added} new"))
    }
}
