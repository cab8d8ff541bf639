//! The service's own store: one URL selects SQLite (embedded default) or PostgreSQL.

use std::path::Path;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection, DbErr,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use secrecy::ExposeSecret;

use crate::settings::DatabaseSettings;

/// Why the store could not be reached or migrated. Carries the redacted URL, never the
/// password.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {url}: unsupported URL scheme (use sqlite:// or postgres://)")]
    Scheme { url: String },
    #[error("database {url}: cannot create directory {dir}: {source}")]
    Directory {
        url: String,
        dir: String,
        source: std::io::Error,
    },
    #[error("database {url}: cannot connect: {source}")]
    Connect { url: String, source: DbErr },
    #[error("database {url}: migration failed: {source}")]
    Migrate { url: String, source: DbErr },
}

/// An arbitrary constant shared by every careers service: migrations of one database
/// never run concurrently, whichever service or replica starts them.
const MIGRATION_LOCK_KEY: i64 = 0x6361_7265_6572_7321;

/// Connects, creating the SQLite file and its directory when missing.
pub async fn connect(settings: &DatabaseSettings) -> Result<DatabaseConnection, StoreError> {
    let url = settings.url.expose_secret();
    let redacted = settings.redacted_url();
    let backend = backend_of(url).ok_or_else(|| StoreError::Scheme {
        url: redacted.clone(),
    })?;
    let mut url = url.to_owned();
    if backend == DatabaseBackend::Sqlite {
        url = prepare_sqlite(&url, &redacted)?;
    }
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(settings.max_connections)
        .connect_timeout(settings.connect_timeout)
        .acquire_timeout(settings.connect_timeout)
        .sqlx_logging(false);
    let db = Database::connect(options)
        .await
        .map_err(|source| StoreError::Connect {
            url: redacted.clone(),
            source,
        })?;
    tracing::info!(database = %redacted, "store connected");
    if backend == DatabaseBackend::Sqlite {
        // WAL lets readers run beside the one writer; foreign keys are off by default.
        for pragma in ["PRAGMA journal_mode = WAL", "PRAGMA foreign_keys = ON"] {
            db.execute_unprepared(pragma)
                .await
                .map_err(|source| StoreError::Connect {
                    url: redacted.clone(),
                    source,
                })?;
        }
    }
    Ok(db)
}

/// The HELP text of the store's families; `careers_store_busy_total` at 0.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "careers_store_connections",
        "store connections, by store and state: in_use (by a call or a background task) or idle"
    );
    metrics::describe_gauge!(
        "careers_store_connections_max",
        "the most connections the store's pool opens (database.max_connections)"
    );
    metrics::describe_counter!(
        "careers_store_busy_total",
        "calls answered UNAVAILABLE store_busy: no store connection came free in time"
    );
    metrics::counter!("careers_store_busy_total").increment(0);
}

/// Reports `store`'s pool every second (`careers_store_connections`), until aborted.
/// sqlx counts no waiters: a pool at its maximum with calls answered `store_busy` is
/// what saturation looks like.
pub fn watch_pool(db: &DatabaseConnection, store: &'static str) -> tokio::task::JoinHandle<()> {
    let db = db.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let (size, idle, max) = match db.get_database_backend() {
                DatabaseBackend::Postgres => {
                    let pool = db.get_postgres_connection_pool();
                    (
                        pool.size(),
                        pool.num_idle(),
                        pool.options().get_max_connections(),
                    )
                }
                DatabaseBackend::Sqlite => {
                    let pool = db.get_sqlite_connection_pool();
                    (
                        pool.size(),
                        pool.num_idle(),
                        pool.options().get_max_connections(),
                    )
                }
                _ => return,
            };
            let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
            metrics::gauge!("careers_store_connections", "store" => store, "state" => "in_use")
                .set(f64::from(size - idle));
            metrics::gauge!("careers_store_connections", "store" => store, "state" => "idle")
                .set(f64::from(idle));
            metrics::gauge!("careers_store_connections_max", "store" => store).set(f64::from(max));
        }
    })
}

/// Applies pending migrations. On PostgreSQL they run in one transaction under an
/// advisory lock, so replicas starting together migrate once and never see a half-made
/// schema.
pub async fn migrate<M: MigratorTrait>(
    db: &DatabaseConnection,
    redacted_url: &str,
) -> Result<(), StoreError> {
    let fail = |source| StoreError::Migrate {
        url: redacted_url.to_owned(),
        source,
    };
    match db.get_database_backend() {
        DatabaseBackend::Postgres => {
            let txn = db.begin().await.map_err(fail)?;
            txn.execute_unprepared(&format!(
                "SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})"
            ))
            .await
            .map_err(fail)?;
            M::up(&txn, None).await.map_err(fail)?;
            txn.commit().await.map_err(fail)
        }
        _ => M::up(db, None).await.map_err(fail),
    }
}

fn backend_of(url: &str) -> Option<DatabaseBackend> {
    if url.starts_with("sqlite:") {
        Some(DatabaseBackend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Some(DatabaseBackend::Postgres)
    } else {
        None
    }
}

/// Makes sure the file's directory exists and the URL asks to create the file.
fn prepare_sqlite(url: &str, redacted: &str) -> Result<String, StoreError> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path != ":memory:"
        && !path.is_empty()
        && let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
            url: redacted.to_owned(),
            dir: dir.display().to_string(),
            source,
        })?;
    }
    Ok(if query.contains("mode=") {
        url.to_owned()
    } else if query.is_empty() {
        format!("{url}?mode=rwc")
    } else {
        format!("{url}&mode=rwc")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sqlite_url_gains_create_mode_and_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/store.db");
        let url = format!("sqlite://{}", file.display());
        let prepared = prepare_sqlite(&url, &url).unwrap();
        assert_eq!(prepared, format!("{url}?mode=rwc"));
        assert!(file.parent().unwrap().is_dir());
        assert_eq!(
            prepare_sqlite("sqlite::memory:", "").unwrap(),
            "sqlite::memory:?mode=rwc"
        );
    }

    #[test]
    fn unknown_schemes_are_refused() {
        assert_eq!(backend_of("mysql://x"), None);
        assert_eq!(
            backend_of("postgresql://x"),
            Some(DatabaseBackend::Postgres)
        );
    }
}

/// Raw SQL with `$n` placeholders (sea-orm rewrites them for SQLite), for stores whose
/// queries are clearer written out than built.
pub mod sql {
    use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement, Value};

    pub fn statement(
        connection: &impl ConnectionTrait,
        sql: &str,
        values: Vec<Value>,
    ) -> Statement {
        Statement::from_sql_and_values(connection.get_database_backend(), sql, values)
    }

    /// Runs a statement; the rows it affected.
    pub async fn execute(
        connection: &impl ConnectionTrait,
        sql: &str,
        values: Vec<Value>,
    ) -> Result<u64, DbErr> {
        Ok(connection
            .execute_raw(statement(connection, sql, values))
            .await?
            .rows_affected())
    }

    /// Runs a query and reads every row with `row`.
    pub async fn all<T>(
        connection: &impl ConnectionTrait,
        sql: &str,
        values: Vec<Value>,
        row: impl Fn(&QueryResult) -> Result<T, DbErr>,
    ) -> Result<Vec<T>, DbErr> {
        connection
            .query_all_raw(statement(connection, sql, values))
            .await?
            .iter()
            .map(row)
            .collect()
    }
}
