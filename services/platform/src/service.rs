//! One way to run any careers service: the [`Service`] trait says what is particular to
//! a service; [`App`] does the rest (store, migrations, health, reflection, tracing and
//! graceful shutdown), and [`main`] wraps it in the command line every binary shares.

use std::{
    fmt::Debug,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use clap::{Parser, Subcommand};
use futures::{FutureExt, Stream};
use sea_orm::DatabaseConnection;
use sea_orm_migration::MigratorTrait;
use serde::de::DeserializeOwned;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tonic::service::Routes;

use crate::{
    cursor::Cursors,
    grpc,
    identity::IdentityVerifier,
    readiness::Readiness,
    settings::{self, DatabaseSettings, Settings, Sources},
    store::{self, StoreError},
    telemetry,
};

/// What a service brings; everything else is shared.
pub trait Service: Send + Sync + 'static {
    /// Lowercase name: config prefix `CAREERS_<NAME>`, logs, traces.
    const NAME: &'static str;
    /// The full gRPC service name whose health status means "ready".
    const GRPC_SERVICE: &'static str;
    /// The embedded default configuration (TOML).
    const DEFAULTS: &'static str;

    /// The service's own settings sections, beside the platform's.
    type Settings: DeserializeOwned + Debug + Clone + Send + Sync + 'static;
    /// The service's schema.
    type Migrator: MigratorTrait;

    /// Builds the service's gRPC routes. Background work it starts stops when
    /// `context.stop` is cancelled.
    fn routes(
        context: &Context<Self::Settings>,
    ) -> impl Future<Output = Result<Routes, AppError>> + Send;

    /// Loads the service's seed data from `dir` (typed and idempotent: a second run
    /// changes nothing). Returns a one-line summary.
    fn seed(
        db: &DatabaseConnection,
        dir: &Path,
    ) -> impl Future<Output = Result<String, AppError>> + Send {
        let _ = (db, dir);
        async { Ok("nothing to seed".to_owned()) }
    }
}

/// What a service's handlers are built from.
#[derive(Debug, Clone)]
pub struct Context<S> {
    pub settings: Settings<S>,
    /// The store, for work done on a caller's behalf.
    pub db: DatabaseConnection,
    /// The same store through a pool of its own (`database.background_connections`):
    /// for the event backbone, sweeps and other work no caller waits for, so that a
    /// burst of callers cannot starve it.
    pub background: DatabaseConnection,
    pub readiness: Readiness,
    /// Verifies the gateway's identity token; wrap the service's server with
    /// `identity.interceptor()`.
    pub identity: IdentityVerifier,
    /// Signs and checks the service's page cursors.
    pub cursors: Cursors,
    /// Cancelled when shutdown begins.
    pub stop: CancellationToken,
    /// Background work the process waits for (up to `shutdown.drain_timeout`) before it
    /// exits: the event backbone's relay and consumers, so the batch being applied
    /// commits and is acknowledged instead of being cut off.
    pub tasks: TaskTracker,
}

/// Why a service could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Settings(#[from] settings::SettingsError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Cursor(#[from] crate::cursor::CursorError),
    #[error("grpc: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("grpc: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("grpc reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("{0}")]
    Service(String),
}

/// A built service, bound to its port and ready to run.
#[derive(Debug)]
pub struct App<S: Service> {
    context: Context<S::Settings>,
    listener: Arc<TcpListener>,
    routes: Routes,
}

impl<S: Service> App<S> {
    /// Binds the gRPC port, connects and migrates the store and builds the routes.
    ///
    /// Until the store answers and its schema is current, only health is served on the
    /// port: `liveness` SERVING, the full name NOT_SERVING. A database that is down at
    /// start, or migrations left to a Job that has not run yet, make the pod unready and
    /// never get it restarted. Bad settings still fail at once.
    pub async fn build(settings: Settings<S::Settings>) -> Result<Self, AppError> {
        let platform = &settings.platform;
        let addr = platform.grpc.listen;
        // Bind first: a taken port should fail at once, before any slow work.
        let listener = Arc::new(
            TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Bind { addr, source })?,
        );

        let identity = IdentityVerifier::from_jwks_file(&platform.identity.jwks_path)?;
        let cursors = Cursors::from_settings(&platform.cursor)?;
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let readiness = Readiness::new(reporter, S::GRPC_SERVICE).await;
        let started = CancellationToken::new();
        let health_only = tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health_service.clone())
                .serve_with_incoming_shutdown(
                    accepted(listener.clone()),
                    started.clone().cancelled_owned(),
                ),
        );
        let db = prepare_store::<S::Migrator>(&platform.database, &readiness).await;
        started.cancel();
        if let Ok(Err(error)) = health_only.await {
            tracing::warn!(%error, "the health-only server stopped with an error");
        }
        let db = db?;
        let background = store::connect(&DatabaseSettings {
            max_connections: platform.database.background_connections,
            ..platform.database.clone()
        })
        .await?;

        let context = Context {
            settings,
            db,
            background,
            readiness,
            identity,
            cursors,
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        let routes = S::routes(&context)
            .await?
            .add_service(health_service)
            .add_service(grpc::reflection_v1()?)
            .add_service(grpc::reflection_v1alpha()?);
        Ok(Self {
            context,
            listener,
            routes,
        })
    }

    /// The bound gRPC port (useful when the configured port was 0).
    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|addr| addr.port())
            .unwrap_or(0)
    }

    pub fn context(&self) -> &Context<S::Settings> {
        &self.context
    }

    /// Serves until `shutdown` resolves, then reports NOT_SERVING, waits `drain_delay` so
    /// load balancers notice, stops accepting and lets in-flight calls and the tracked
    /// background tasks finish, all within `drain_timeout`.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AppError> {
        let Self {
            context,
            listener,
            routes,
        } = self;
        let shutdown_settings = context.settings.platform.shutdown.clone();
        let store_watch = context.readiness.watch_store(
            context.background.clone(),
            &context.settings.platform.readiness,
            context.stop.clone(),
        );
        let pool_watches = [
            store::watch_pool(&context.db, "main"),
            store::watch_pool(&context.background, "background"),
        ];
        let close = CancellationToken::new();
        let server = tonic::transport::Server::builder()
            .trace_fn(grpc::request_span)
            .layer(grpc::AnswerLayer)
            .add_routes(routes)
            .serve_with_incoming_shutdown(accepted(listener), close.clone().cancelled_owned());
        tokio::pin!(server);
        tracing::info!(service = S::NAME, "serving gRPC");

        tokio::select! {
            result = &mut server => {
                context.stop.cancel();
                return result.map_err(AppError::from);
            }
            () = shutdown => {}
        }
        context.readiness.set_shutting_down().await;
        context.stop.cancel();
        tracing::info!(delay = ?shutdown_settings.drain_delay, "draining");
        // Keep serving (health included) while the delay runs.
        tokio::select! {
            result = &mut server => return result.map_err(AppError::from),
            () = tokio::time::sleep(shutdown_settings.drain_delay) => {}
        }
        close.cancel();
        context.tasks.close();
        let drained = tokio::time::timeout(shutdown_settings.drain_timeout, async {
            let (served, ()) = tokio::join!(&mut server, context.tasks.wait());
            served
        })
        .await;
        store_watch.abort();
        for watch in pool_watches {
            watch.abort();
        }
        context.db.clone().close().await.ok();
        context.background.clone().close().await.ok();
        match drained {
            Ok(result) => {
                tracing::info!("drained");
                result.map_err(AppError::from)
            }
            Err(_) => {
                tracing::warn!(
                    background_tasks = context.tasks.len(),
                    "in-flight calls or background tasks still running after the drain timeout; stopping"
                );
                Ok(())
            }
        }
    }
}

/// The connections `listener` accepts, for one server after another (the health-only one
/// at start, then the service's). Accept errors (a file-descriptor limit, say) are logged
/// and retried rather than ending the server.
fn accepted(listener: Arc<TcpListener>) -> impl Stream<Item = std::io::Result<TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    // Without TCP_NODELAY a small response can wait for a delayed ACK (~40 ms).
                    stream.set_nodelay(true).ok();
                    return Some((Ok(stream), listener));
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

/// Connects to the store and brings its schema up to date, waiting (with backoff, logged)
/// while it is unreachable; with `migrate_on_start` off, waits until no migration is
/// pending. Reports the store reachable and the schema migrated as each comes true.
async fn prepare_store<M: MigratorTrait>(
    settings: &DatabaseSettings,
    readiness: &Readiness,
) -> Result<DatabaseConnection, AppError> {
    let redacted = settings.redacted_url();
    // Without limit: a replica waits for its store however long it takes, serving health
    // meanwhile. Jitter keeps replicas restarted together from retrying in step.
    let mut pauses = backon::BackoffBuilder::build(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(400))
            .with_max_delay(Duration::from_secs(10))
            .with_jitter()
            .without_max_times(),
    );
    let mut wait = |reason: String| {
        let pause = pauses.next().unwrap_or(Duration::from_secs(10));
        tracing::warn!(%reason, retry_in = ?pause, "store not ready; serving health only");
        tokio::time::sleep(pause)
    };
    let db = loop {
        match store::connect(settings).await {
            Ok(db) => break db,
            Err(error @ StoreError::Connect { .. }) => wait(error.to_string()).await,
            Err(error) => return Err(error.into()),
        }
    };
    readiness.set_store_ok(true).await;
    loop {
        if settings.migrate_on_start {
            match store::migrate::<M>(&db, &redacted).await {
                Ok(()) => {
                    tracing::info!("migrations applied");
                    break;
                }
                Err(StoreError::Migrate { source, .. }) if is_connection_error(&source) => {
                    wait(format!("migrations interrupted: {source}")).await;
                }
                Err(error) => return Err(error.into()),
            }
        } else {
            match M::get_pending_migrations(&db).await {
                Ok(pending) if pending.is_empty() => break,
                Ok(pending) => {
                    wait(format!(
                        "{} migrations pending and migrate_on_start is off: run the `migrate` \
                         command (the migration Job)",
                        pending.len()
                    ))
                    .await;
                }
                Err(error) => wait(format!("cannot read the applied migrations: {error}")).await,
            }
        }
    }
    readiness.set_migrated().await;
    Ok(db)
}

fn is_connection_error(error: &sea_orm::DbErr) -> bool {
    matches!(
        error,
        sea_orm::DbErr::Conn(_) | sea_orm::DbErr::ConnectionAcquire(_)
    )
}

/// The command line every service binary shares.
#[derive(Debug, Parser)]
struct Cli {
    /// A TOML file layered over the embedded defaults.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve gRPC (the default).
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Apply pending migrations, load the seed data idempotently and exit.
    Seed {
        /// The repository's seeds/ directory.
        #[arg(long, default_value = "seeds")]
        dir: PathBuf,
    },
}

/// The whole `main` of a service binary.
pub async fn main<S: Service>() -> ExitCode {
    let cli = Cli::parse();
    match run::<S>(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "stopped");
            eprintln!("{}: {error}", S::NAME);
            ExitCode::FAILURE
        }
    }
}

async fn run<S: Service>(cli: Cli) -> Result<(), AppError> {
    let settings = settings::load::<S::Settings>(
        S::NAME,
        Sources::from_process(S::DEFAULTS, cli.config.as_deref()),
    )?;
    let _telemetry = telemetry::init(S::NAME, &settings.platform.telemetry)?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Migrate => {
            let db = store::connect(&settings.platform.database).await?;
            store::migrate::<S::Migrator>(&db, &settings.platform.database.redacted_url()).await?;
            tracing::info!(service = S::NAME, "migrations applied");
            db.close().await.ok();
            Ok(())
        }
        Command::Seed { dir } => {
            let db = store::connect(&settings.platform.database).await?;
            store::migrate::<S::Migrator>(&db, &settings.platform.database.redacted_url()).await?;
            let summary = S::seed(&db, &dir).await?;
            tracing::info!(service = S::NAME, %summary, "seeded");
            println!("{}: {summary}", S::NAME);
            db.close().await.ok();
            Ok(())
        }
        Command::Serve => {
            telemetry::serve_metrics(&settings.platform.metrics)?;
            // A signal while the store is still awaited stops the process too.
            let shutdown = crate::shutdown::signal().boxed().shared();
            let app = tokio::select! {
                app = App::<S>::build(settings) => app?,
                () = shutdown.clone() => return Ok(()),
            };
            app.run_until(shutdown).await
        }
    }
}
