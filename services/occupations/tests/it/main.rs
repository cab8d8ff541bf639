//! The occupations binary as operators run it: signals, the `migrate` subcommand and
//! logs, checked on the real process.

use std::{
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

mod search;

use careers_occupations::Occupations;
use careers_platform::{Service, readiness::LIVENESS};
use careers_testkit::{free_port, grpc, postgres, sqlite::TestSqlite};
use tonic_health::pb::health_check_response::ServingStatus;

const BINARY: &str = env!("CARGO_BIN_EXE_occupations");

fn command(database_url: &str) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("CAREERS_OCCUPATIONS__DATABASE__URL", database_url)
        // No broker: a closed port, and a short wait before ready without one.
        .env(
            "CAREERS_OCCUPATIONS__NATS__URL",
            format!("nats://127.0.0.1:{}", free_port().unwrap_or(9)),
        )
        .env("CAREERS_OCCUPATIONS__READINESS__CATCH_UP_TIMEOUT", "1s")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Polls without blocking the runtime: the test's gRPC connections must keep running
/// to see the server's GOAWAY, or the server waits for them until its drain timeout.
async fn wait_exit(
    child: &mut Child,
    timeout: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            child.kill().ok();
            anyhow::bail!("process did not exit within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn sigterm_reports_not_serving_before_the_drain_and_then_exits_cleanly() -> anyhow::Result<()>
{
    let store = TestSqlite::new()?;
    let port = free_port()?;
    let keys = tempfile::tempdir()?;
    let (_, jwks) = careers_platform::identity::generate_key_pair("test")?;
    std::fs::write(keys.path().join("internal.jwks.json"), jwks)?;
    let mut child = command(&store.url)
        .env(
            "CAREERS_OCCUPATIONS__IDENTITY__JWKS_PATH",
            keys.path().join("internal.jwks.json"),
        )
        .env(
            "CAREERS_OCCUPATIONS__GRPC__LISTEN",
            format!("127.0.0.1:{port}"),
        )
        .env(
            "CAREERS_OCCUPATIONS__METRICS__LISTEN",
            format!("127.0.0.1:{}", free_port()?),
        )
        .env("CAREERS_OCCUPATIONS__SHUTDOWN__DRAIN_DELAY", "3s")
        .spawn()?;
    let name = Occupations::GRPC_SERVICE;
    grpc::wait_for_health(port, name, ServingStatus::Serving, Duration::from_secs(20)).await?;

    let sent = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(killed.success());
    grpc::wait_for_health(
        port,
        name,
        ServingStatus::NotServing,
        Duration::from_secs(2),
    )
    .await?;
    // Still inside the drain delay: the process serves, and is alive.
    assert!(sent.elapsed() < Duration::from_secs(3));
    assert_eq!(grpc::health(port, LIVENESS).await?, ServingStatus::Serving);

    let status = wait_exit(&mut child, Duration::from_secs(15)).await?;
    assert!(status.success(), "exit status {status}");
    assert!(
        sent.elapsed() >= Duration::from_secs(3),
        "exited before the drain delay"
    );
    Ok(())
}

#[tokio::test]
async fn two_processes_migrating_one_postgres_database_at_once_both_succeed() -> anyhow::Result<()>
{
    let database = postgres::empty_database().await?;
    // Trust authentication accepts any password; it is here to prove it never shows.
    let url = database
        .url
        .replacen("postgres@", "postgres:sekrit-password@", 1);
    let first = command(&url).arg("migrate").spawn()?;
    let second = command(&url).arg("migrate").spawn()?;
    let outputs: Vec<Output> = vec![first.wait_with_output()?, second.wait_with_output()?];
    for output in &outputs {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stdout}{stderr}");
        assert!(
            !stdout.contains("sekrit") && !stderr.contains("sekrit"),
            "{stdout}{stderr}"
        );
        assert!(
            stdout.contains("postgres:***@"),
            "the store log line is missing: {stdout}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_unknown_configuration_key_stops_the_binary_naming_it() -> anyhow::Result<()> {
    let store = TestSqlite::new()?;
    let output = command(&store.url)
        .env("CAREERS_OCCUPATIONS__DATABASE__MIGRATE_ON_STRAT", "false")
        .arg("migrate")
        .output()?;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown key `database.migrate_on_strat`"),
        "{stderr}"
    );
    Ok(())
}
