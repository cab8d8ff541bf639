//! PostgreSQL for tests.
//!
//! `make test` starts one cluster for the whole run (`with-postgres`) and passes it on as
//! `CAREERS_TEST_DATABASE_URL`; so does anyone pointing tests at their own server. With
//! neither, the first test of a process starts a private cluster that the process's
//! tests share and that stops when the last of them drops its database.
//!
//! Each test gets a fresh database cloned from a template that was migrated once per
//! schema, so a test pays for `CREATE DATABASE … TEMPLATE`, not for its migrations.

use std::{
    future::Future,
    hash::{DefaultHasher, Hash, Hasher},
    path::PathBuf,
    process::{Command, Stdio},
    sync::{Arc, Mutex, Weak},
};

use anyhow::{Context, bail};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;
use tempfile::TempDir;

/// The PostgreSQL major version the project pins.
pub const MAJOR_VERSION: u32 = 15;

/// A PostgreSQL cluster in a temporary directory on a free loopback port. Stopped on drop.
#[derive(Debug)]
pub struct PgCluster {
    bin_dir: PathBuf,
    data: TempDir,
    pub port: u16,
    as_postgres_user: bool,
}

impl PgCluster {
    /// `initdb` and `pg_ctl start`, as the `postgres` user when running as root.
    pub fn start() -> anyhow::Result<Self> {
        let bin_dir = bin_dir()?;
        let data = tempfile::Builder::new().prefix("careers-pg-").tempdir()?;
        let as_postgres_user = crate::running_as_root();
        let cluster = Self {
            bin_dir,
            data,
            port: crate::free_port()?,
            as_postgres_user,
        };
        if as_postgres_user {
            run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.data.path()))?;
        }
        let pgdata = cluster.pgdata();
        run(cluster
            .command("initdb")
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&pgdata))?;
        cluster.pg_ctl_start()?;
        Ok(cluster)
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (as a crash or an outage would); the data is kept.
    pub fn stop(&self) -> anyhow::Result<()> {
        run(self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.pgdata()))
    }

    /// Starts it again after [`PgCluster::stop`].
    pub fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        // Durability settings are off: test data is thrown away, and fsync dominates
        // test time on slow disks.
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=300",
            self.port,
            self.data.path().display()
        );
        run(self
            .command("pg_ctl")
            .args(["start", "-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.data.path().join("server.log"))
            .arg("-D")
            .arg(self.pgdata()))
    }

    fn pgdata(&self) -> PathBuf {
        self.data.path().join("pgdata")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin_dir.join(program);
        if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.stop().ok();
    }
}

/// Where `initdb` and `pg_ctl` of the pinned major version are.
/// The pinned PostgreSQL's programs (`CAREERS_PG_BIN`, else the Debian package's).
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var("CAREERS_PG_BIN") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(format!("/usr/lib/postgresql/{MAJOR_VERSION}/bin")),
    };
    if dir.join("initdb").exists() {
        Ok(dir)
    } else {
        bail!(
            "no initdb in {}: run `make tools` (make test does it) to install postgresql-{MAJOR_VERSION}",
            dir.display()
        )
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// A database of its own for one test. The cluster behind it (if the test kit started
/// one) lives at least as long.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
    _cluster: Option<Arc<PgCluster>>,
}

/// The server tests use: `CAREERS_TEST_DATABASE_URL`, else this process's own cluster.
fn server() -> anyhow::Result<(String, Option<Arc<PgCluster>>)> {
    if let Ok(url) = std::env::var("CAREERS_TEST_DATABASE_URL")
        && !url.is_empty()
    {
        return Ok((url, None));
    }
    static PROCESS_CLUSTER: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
    let mut slot = PROCESS_CLUSTER
        .lock()
        .map_err(|_| anyhow::anyhow!("the cluster lock was poisoned by a failed test"))?;
    if let Some(cluster) = slot.upgrade() {
        return Ok((cluster.admin_url(), Some(cluster)));
    }
    let cluster = Arc::new(PgCluster::start()?);
    *slot = Arc::downgrade(&cluster);
    Ok((cluster.admin_url(), Some(cluster)))
}

/// An empty database.
pub async fn empty_database() -> anyhow::Result<TestDatabase> {
    let (admin_url, cluster) = server()?;
    let admin = connect_one(&admin_url).await?;
    let name = format!("test_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    admin.close().await?;
    Ok(TestDatabase {
        url: database_url(&admin_url, &name),
        name,
        _cluster: cluster,
    })
}

/// A database with `M`'s schema, cloned from a template migrated once per schema by
/// `migrate` (which receives the template's URL and must close its connections).
pub async fn migrated_database<M, F, Fut>(service: &str, migrate: F) -> anyhow::Result<TestDatabase>
where
    M: MigratorTrait,
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let (admin_url, cluster) = server()?;
    let template = template_name::<M>(service);
    let admin = connect_one(&admin_url).await?;
    // A session lock on the single connection: concurrent test processes build each
    // template once and the others wait for it.
    let lock_key = stable_hash(&template);
    admin
        .execute_unprepared(&format!("SELECT pg_advisory_lock({lock_key})"))
        .await?;
    let built = ensure_template(&admin, &admin_url, &template, migrate).await;
    admin
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({lock_key})"))
        .await?;
    built?;
    let name = format!("test_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
        .await
        .with_context(|| format!("cloning {template}"))?;
    admin.close().await?;
    Ok(TestDatabase {
        url: database_url(&admin_url, &name),
        name,
        _cluster: cluster,
    })
}

async fn ensure_template<F, Fut>(
    admin: &DatabaseConnection,
    admin_url: &str,
    template: &str,
    migrate: F,
) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let exists = admin
        .query_one_raw(Statement::from_string(
            admin.get_database_backend(),
            format!("SELECT 1 FROM pg_database WHERE datname = '{template}'"),
        ))
        .await?
        .is_some();
    if exists {
        return Ok(());
    }
    // Built under another name and renamed when complete, so a crash mid-way never
    // leaves a half-migrated template behind.
    let building = format!("{template}_building");
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {building}"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE {building}"))
        .await?;
    migrate(database_url(admin_url, &building))
        .await
        .with_context(|| format!("migrating template {template}"))?;
    admin
        .execute_unprepared(&format!("ALTER DATABASE {building} RENAME TO {template}"))
        .await?;
    Ok(())
}

/// `tmpl_<service>_<hash of the migration names>`: a new migration makes a new template.
fn template_name<M: MigratorTrait>(service: &str) -> String {
    let names: Vec<String> = M::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    format!("tmpl_{service}_{:x}", stable_hash(&names) as u64)
}

fn stable_hash(value: &impl Hash) -> i64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish() as i64
}

async fn connect_one(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// The same server and credentials, another database.
fn database_url(admin_url: &str, database: &str) -> String {
    let (base, query) = admin_url
        .split_once('?')
        .map_or((admin_url, None), |(base, query)| (base, Some(query)));
    let server = match base.rsplit_once('/') {
        Some((server, _)) if server.contains("://") && server.len() > "postgres://".len() => server,
        _ => base,
    };
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// `pg_dump` of the database at `url`, as plain SQL: what a backup holds.
pub fn dump(url: &str) -> anyhow::Result<Vec<u8>> {
    let output = Command::new(bin_dir()?.join("pg_dump"))
        .arg(format!("--dbname={url}"))
        .stdin(Stdio::null())
        .output()
        .context("running pg_dump")?;
    if !output.status.success() {
        bail!(
            "pg_dump failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output.stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_keep_server_and_options() {
        assert_eq!(
            database_url("postgres://postgres@127.0.0.1:5432/postgres", "test_1"),
            "postgres://postgres@127.0.0.1:5432/test_1"
        );
        assert_eq!(
            database_url("postgres://u:p@h/postgres?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
    }

    #[tokio::test]
    async fn every_test_gets_its_own_empty_database() {
        let first = empty_database().await.unwrap();
        let second = empty_database().await.unwrap();
        assert_ne!(first.name, second.name);
        let db = connect_one(&first.url).await.unwrap();
        db.execute_unprepared("CREATE TABLE only_here (id int)")
            .await
            .unwrap();
        let other = connect_one(&second.url).await.unwrap();
        assert!(
            other
                .execute_unprepared("SELECT * FROM only_here")
                .await
                .is_err()
        );
    }
}
