//! The casenotes service: adviser case notes: clients, notes, consent, referrals.
//!
//! - [`grpc`]: the `careers.casenotes.v1.CasenotesService` handlers, scoped to the
//!   caller's organisation, every client read and write audited.
//! - [`domain`]: the client record's rules.
//! - [`store`]: client records; personal fields and note text only sealed.
//! - [`crypto`]: envelope encryption of personal data, a data key per client.
//! - [`keystore`]: the wrapped data keys, in a database of their own.
//! - [`audit`]: the HMAC-chained audit trail, verified entry by entry.
//! - [`audit_log`]: its store, appended with group commit under a row lock per chain.
//! - [`erasure`]: erasure, tombstones re-applied at start, the retention sweeper.
//! - [`events`]: Gatsby encounters from ambassadors' `EngagementCompleted`; the SOC codes
//!   of the catalogue from `OccupationUpserted`, for action plans.
//! - [`protection`]: the seam to the key store and the audit log.
//! - [`settings`]: the service's settings and the secrets they point at.

pub mod audit;
pub mod audit_log;
pub mod crypto;
pub mod domain;
pub mod erasure;
pub mod error;
pub mod events;
pub mod grpc;
pub mod keystore;
pub mod protection;
pub mod settings;
pub mod store;

use std::sync::Arc;

use careers_eventbus::{Eventbus, RelayWaker, catalogue};
use careers_platform::{AppError, Context, Service};
use careers_proto::careers::casenotes::v1::casenotes_service_server::CasenotesServiceServer;
use sea_orm::DatabaseConnection;
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use settings::CasenotesSettings;

/// The casenotes service, as the platform runs it.
#[derive(Debug)]
pub struct Casenotes;

/// The casenotes store's schema.
#[derive(Debug)]
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut migrations = careers_eventbus::migration::migrations();
        migrations.push(Box::new(audit_log::CreateAuditTrail));
        migrations.push(Box::new(store::CreateClientRecords));
        migrations.push(Box::new(store::CreateActionPlans));
        migrations
    }
}

fn service_error(error: impl std::fmt::Display) -> AppError {
    AppError::Service(error.to_string())
}

/// Connects to the key store and migrates it when the main store is migrated on start.
pub async fn connect_keystore(
    settings: &CasenotesSettings,
) -> Result<DatabaseConnection, AppError> {
    let keys = careers_platform::store::connect(&settings.keystore).await?;
    if settings.keystore.migrate_on_start {
        careers_platform::store::migrate::<keystore::KeystoreMigrator>(
            &keys,
            &settings.keystore.redacted_url(),
        )
        .await?;
    }
    Ok(keys)
}

impl Service for Casenotes {
    const NAME: &'static str = "casenotes";
    const GRPC_SERVICE: &'static str = careers_proto::service_names::CASENOTES;
    const DEFAULTS: &'static str = include_str!("defaults.toml");

    type Settings = CasenotesSettings;
    type Migrator = Migrator;

    async fn routes(context: &Context<Self::Settings>) -> Result<Routes, AppError> {
        let settings = &context.settings.service;
        let keyring = Arc::new(settings.crypto.keyring().map_err(service_error)?);
        let audit_key = Arc::new(settings.audit.key().map_err(service_error)?);
        let keys = connect_keystore(settings).await?;
        let pool_watch = careers_platform::store::watch_pool(&keys, "keystore");
        let stop = context.stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            pool_watch.abort();
        });
        // Before anything is served: a restored store must not show an erased client.
        erasure::reapply_tombstones(&context.db, &keys)
            .await
            .map_err(service_error)?;
        let mut bus = Eventbus::for_service(
            Self::NAME,
            context.background.clone(),
            catalogue::CASENOTES,
            &settings.events(),
            careers_eventbus::Lifecycle {
                stop: context.stop.clone(),
                tasks: context.tasks.clone(),
            },
        )
        .await
        .map_err(service_error)?;
        bus.consume(events::engagements_consumer(), events::Engagements);
        bus.consume(
            events::occupations_consumer(),
            events::KnownOccupations::default(),
        );
        let protection = &settings.protection;
        let vault = protection.keys.clone().unwrap_or_else(|| {
            Arc::new(protection::Keystore {
                db: keys.clone(),
                keyring,
            })
        });
        let audit = protection.audit.clone().unwrap_or_else(|| {
            Arc::new(audit_log::AuditLog::start(
                context.db.clone(),
                audit_key.clone(),
            ))
        });
        let handlers = grpc::Handlers {
            db: context.db.clone(),
            keys,
            vault,
            audit,
            audit_key,
            cursors: context.cursors.clone(),
            waker: bus.waker(),
            note_max_bytes: settings.notes.max_bytes,
            seen: Arc::default(),
        };
        tokio::spawn(sweep_retention(
            handlers.clone(),
            settings.retention.clone(),
            context.stop.clone(),
        ));
        let timeout = context.settings.platform.readiness.catch_up_timeout;
        context
            .readiness
            .set_caught_up_when(async move { bus.caught_up(timeout).await });
        Ok(Routes::new(CasenotesServiceServer::with_interceptor(
            handlers,
            context.identity.interceptor(),
        )))
    }
}

/// Erases inactive clients now and then every `sweep_interval`, each erasure audited
/// under the `system:retention` actor.
async fn sweep_retention(
    handlers: grpc::Handlers,
    retention: settings::RetentionSettings,
    stop: CancellationToken,
) {
    loop {
        let now = chrono::Utc::now();
        let waker: &RelayWaker = &handlers.waker;
        match erasure::sweep_inactive(
            &handlers.db,
            &handlers.keys,
            waker,
            now.date_naive(),
            now,
            retention.inactive_years,
        )
        .await
        {
            Ok(erased) if !erased.is_empty() => {
                tracing::info!(erased = erased.len(), "retention: inactive clients erased");
                let records = erased
                    .into_iter()
                    .map(|(client_id, org)| audit_log::Record {
                        org,
                        actor: "system:retention".into(),
                        action: "client.erase".into(),
                        client_id: Some(client_id),
                        purpose: "retention".into(),
                    })
                    .collect();
                if let Err(error) = handlers.audit.append(records).await {
                    tracing::error!(%error, "retention erasures not audited");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "retention sweep failed; retrying next interval"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(retention.sweep_interval) => {}
        }
    }
}
