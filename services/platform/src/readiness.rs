//! The two health names of CONTRACT.md.
//!
//! `liveness` (and `""`) is SERVING for as long as the process runs. The service's full
//! name is SERVING only while every readiness condition holds: migrations ran, the store
//! answers, projections caught up once since start, and shutdown has not begun.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use sea_orm::DatabaseConnection;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::settings::ReadinessSettings;

/// The name every process reports SERVING under while it runs.
pub const LIVENESS: &str = "liveness";

/// Shared readiness state; cheap to clone.
#[derive(Clone)]
pub struct Readiness {
    inner: Arc<Inner>,
}

struct Inner {
    reporter: HealthReporter,
    /// The full gRPC service name whose status tracks readiness.
    service: String,
    /// Serialises status updates so a late writer never overwrites a newer state.
    update: Mutex<()>,
    migrated: AtomicBool,
    store_ok: AtomicBool,
    caught_up: AtomicBool,
    shutting_down: AtomicBool,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("service", &self.inner.service)
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl Readiness {
    /// Starts with the full name NOT_SERVING and liveness SERVING.
    pub async fn new(reporter: HealthReporter, service: impl Into<String>) -> Self {
        let readiness = Self {
            inner: Arc::new(Inner {
                reporter,
                service: service.into(),
                update: Mutex::new(()),
                migrated: AtomicBool::new(false),
                store_ok: AtomicBool::new(false),
                caught_up: AtomicBool::new(false),
                shutting_down: AtomicBool::new(false),
            }),
        };
        for name in ["", LIVENESS] {
            readiness
                .inner
                .reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        readiness.publish().await;
        readiness
    }

    /// Whether every condition holds right now.
    pub fn is_ready(&self) -> bool {
        let inner = &self.inner;
        inner.migrated.load(Ordering::SeqCst)
            && inner.store_ok.load(Ordering::SeqCst)
            && inner.caught_up.load(Ordering::SeqCst)
            && !inner.shutting_down.load(Ordering::SeqCst)
    }

    pub async fn set_migrated(&self) {
        self.inner.migrated.store(true, Ordering::SeqCst);
        self.publish().await;
    }

    pub async fn set_store_ok(&self, ok: bool) {
        let was = self.inner.store_ok.swap(ok, Ordering::SeqCst);
        if was != ok {
            if ok {
                tracing::info!("store reachable");
            } else {
                tracing::warn!("store unreachable; reporting NOT_SERVING");
            }
        }
        self.publish().await;
    }

    /// Called once the service's durable consumers caught up since start (or at once by a
    /// service that consumes nothing).
    pub async fn set_caught_up(&self) {
        self.inner.caught_up.store(true, Ordering::SeqCst);
        self.publish().await;
    }

    /// Marks the projections caught up once `caught_up` resolves: with `true` when the
    /// consumers caught up, with `false` when they did not within the timeout (NATS
    /// unreachable), which is logged and then treated as caught up, as the contract says.
    pub fn set_caught_up_when(&self, caught_up: impl Future<Output = bool> + Send + 'static) {
        let readiness = self.clone();
        tokio::spawn(async move {
            if !caught_up.await {
                tracing::warn!(
                    "consumers did not catch up in time (is NATS reachable?); reporting ready anyway"
                );
            }
            readiness.set_caught_up().await;
        });
    }

    /// Reports NOT_SERVING from now on; the first step of shutdown.
    pub async fn set_shutting_down(&self) {
        self.inner.shutting_down.store(true, Ordering::SeqCst);
        self.publish().await;
    }

    async fn publish(&self) {
        let _guard = self.inner.update.lock().await;
        let status = if self.is_ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        self.inner
            .reporter
            .set_service_status(&self.inner.service, status)
            .await;
    }

    /// Pings the store every `store_check_interval` until `stop`, keeping `store_ok` true.
    pub fn watch_store(
        &self,
        db: DatabaseConnection,
        settings: &ReadinessSettings,
        stop: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let readiness = self.clone();
        let interval = settings.store_check_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = ticker.tick() => {}
                }
                let ok = tokio::time::timeout(
                    interval.max(std::time::Duration::from_secs(1)),
                    db.ping(),
                )
                .await
                .is_ok_and(|result| result.is_ok());
                readiness.set_store_ok(ok).await;
            }
        })
    }
}
