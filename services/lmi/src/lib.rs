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

pub mod domain;
pub mod events;
pub mod grpc;
pub mod ons;
pub mod registry;
pub mod review;
pub mod store;
pub mod submit;

use careers_eventbus::{Eventbus, catalogue, settings::EventSettings};
use std::path::Path;

use careers_platform::{AppError, Context, Service, status};
use careers_proto::careers::lmi::v1::lmi_service_server::LmiServiceServer;
use sea_orm::{DatabaseConnection, DbErr};
use tonic::{Code, Status, service::Routes};

pub use store::migration::Migrator;

/// The lmi service, as the platform runs it.
#[derive(Debug)]
pub struct Lmi;

/// Settings of the lmi service beyond the platform's sections.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct LmiSettings {
    #[serde(default)]
    pub nats: careers_eventbus::settings::NatsSettings,
    #[serde(default)]
    pub outbox: careers_eventbus::settings::OutboxSettings,
    #[serde(default)]
    pub inbox: careers_eventbus::settings::InboxSettings,
    #[serde(default)]
    pub validation: ValidationSettings,
    #[serde(default)]
    pub submissions: SubmissionSettings,
}

impl LmiSettings {
    /// The event bus's sections.
    pub fn events(&self) -> EventSettings {
        EventSettings {
            nats: self.nats.clone(),
            outbox: self.outbox.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

/// `[validation]`: the rules that hold or suppress rows rather than reject them.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct ValidationSettings {
    /// A change beyond this fraction of the series' last published value is held for
    /// QA review (0.25 = 25%).
    pub quarantine_change: f64,
    /// A row whose `sample_size` is under this is published as suppressed.
    pub min_sample_size: u64,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        Self {
            quarantine_change: 0.25,
            min_sample_size: 10,
        }
    }
}

/// `[submissions]`: how submissions stream in.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct SubmissionSettings {
    /// An upload that stages nothing for this long is taken as dead: the sweep deletes
    /// what it staged, and finishing it fails with `staging_expired`.
    #[serde(with = "humantime_serde")]
    pub staging_timeout: std::time::Duration,
}

impl Default for SubmissionSettings {
    fn default() -> Self {
        Self {
            staging_timeout: std::time::Duration::from_secs(600),
        }
    }
}

fn unsealed(sent: Option<u64>, received: u64) -> String {
    match sent {
        Some(sent) => format!(
            "the stream's end counts {sent} rows but {received} arrived; nothing was recorded, send it again"
        ),
        None => format!(
            "the stream ended after {received} rows without its end part (the upload was cut off or given up); nothing was recorded, send it again"
        ),
    }
}

/// Everything that can go wrong in lmi, mapped once to a status.
#[derive(Debug, thiserror::Error)]
pub enum LmiError {
    #[error("this needs the {0} role")]
    RoleRequired(&'static str),
    #[error("the token names no SSC (claim `ssc`)")]
    SscClaimMissing,
    #[error("SSC {0:?} is not registered")]
    UnknownSsc(String),
    #[error("submission_key must be 1 to 200 characters")]
    InvalidKey,
    #[error("the first message must be the submission header, and only the first")]
    HeaderFirst,
    #[error("nothing may follow the end of a submission's stream")]
    AfterEnd,
    #[error("{}", unsealed(*.sent, *.received))]
    Unsealed { sent: Option<u64>, received: u64 },
    #[error("a submission holds at most {0} rows")]
    TooManyRows(u64),
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    InvalidQuery(Vec<(&'static str, String)>),
    #[error("the cursor is not one this listing issued; start again without it")]
    BadCursor,
    #[error("no SSC {0} is registered")]
    SscNotFound(String),
    #[error("SSC {0} is already registered")]
    SscExists(String),
    #[error("{}", .0.iter().map(|(field, problem)| format!("{field}: {problem}")).collect::<Vec<_>>().join("; "))]
    InvalidSsc(Vec<(&'static str, String)>),
    #[error("no figure {0} is held for review")]
    FigureNotFound(String),
    #[error("figure {0} was already {1}; a decision is final")]
    AlreadyDecided(String, String),
    #[error("a rejection needs a reason")]
    ReasonRequired,
    #[error(
        "the upload stalled for longer than submissions.staging_timeout and was dropped; send it again with the same key"
    )]
    StagingExpired,
    #[error("no submission {0}")]
    SubmissionNotFound(String),
    #[error("stored answer unreadable: {0}")]
    Corrupt(String),
    #[error("store: {0}")]
    Store(#[from] DbErr),
    #[error("events: {0}")]
    Events(#[from] careers_eventbus::EventbusError),
    #[error("seed: {0}")]
    Seed(String),
}

impl From<LmiError> for Status {
    fn from(error: LmiError) -> Self {
        let message = error.to_string();
        match &error {
            LmiError::RoleRequired(_) | LmiError::SscClaimMissing => {
                status::status(Code::PermissionDenied, "forbidden", message)
            }
            LmiError::UnknownSsc(_) => {
                status::status(Code::PermissionDenied, "unknown_ssc", message)
            }
            LmiError::InvalidKey => {
                status::invalid_fields(message.clone(), &[("submission_key", message)])
            }
            LmiError::InvalidQuery(fields) | LmiError::InvalidSsc(fields) => {
                status::invalid_fields(message, fields)
            }
            LmiError::SscNotFound(_) => status::status(Code::NotFound, "not_found", message),
            LmiError::SscExists(_) => {
                status::status(Code::AlreadyExists, "already_exists", message)
            }
            LmiError::BadCursor => status::status(Code::InvalidArgument, "bad_cursor", message),
            LmiError::HeaderFirst | LmiError::AfterEnd | LmiError::Unsealed { .. } => {
                status::status(Code::InvalidArgument, "malformed_submission", message)
            }
            LmiError::TooManyRows(_) => {
                status::status(Code::ResourceExhausted, "too_many_rows", message)
            }
            LmiError::SubmissionNotFound(_) | LmiError::FigureNotFound(_) => {
                status::status(Code::NotFound, "not_found", message)
            }
            LmiError::StagingExpired => status::status(Code::Aborted, "staging_expired", message),
            LmiError::AlreadyDecided(..) => {
                status::status(Code::FailedPrecondition, "already_decided", message)
            }
            LmiError::ReasonRequired => {
                status::invalid_fields(message.clone(), &[("reason", message)])
            }
            LmiError::Store(store) => status::store(store),
            LmiError::Corrupt(_) | LmiError::Events(_) | LmiError::Seed(_) => {
                status::internal(&error)
            }
        }
    }
}

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
            context.db.clone(),
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
            context.db.clone(),
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
