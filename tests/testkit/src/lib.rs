//! Real servers for tests, hermetic and parallel-safe: each fixture picks free loopback
//! ports and a temporary directory, and stops its server when dropped.
//!
//! - [`grpc`]: health and reflection clients; [`http`]: a GET for health endpoints.
//! - [`logs`]: the process's log lines, captured to search.
//! - [`nats`]: a nats-server (≥ 2.10.23) with JetStream, or `CAREERS_TEST_NATS_URL`.
//! - [`postgres`]: a PostgreSQL cluster, one per `make test` run (shared through
//!   `CAREERS_TEST_DATABASE_URL`) or one per test process; a fresh database per test,
//!   cloned from a migrated template.
//! - [`service`]: a careers service running in the test process on a free port.
//! - [`process`]: a careers service binary running as its own process.
//! - [`spans`]: an in-memory span exporter.
//! - [`sqlite`]: a fresh SQLite file per test.

pub mod grpc;
pub mod http;
pub mod logs;
pub mod nats;
pub mod postgres;
pub mod process;
pub mod projection;
pub mod service;
pub mod spans;
pub mod sqlite;

use std::{
    future::Future,
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    time::{Duration, Instant},
};

/// A loopback port nobody listens on right now.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// The repository root, where `.tools/` lives.
pub fn repository_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the process runs as root, which PostgreSQL refuses.
fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Polls `check` every 25 ms until it returns true; fails after `timeout`, naming `what`
/// and the last error `check` returned.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<bool>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    while Instant::now() < deadline {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    anyhow::bail!("{what}: not within {timeout:?} (last error: {last_error:?})")
}
