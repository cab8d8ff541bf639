//! A nats-server with JetStream on free ports, in a temporary directory.
//!
//! The binary is the project's own (`.tools/bin/nats-server`, installed by `make test`),
//! or `CAREERS_NATS_SERVER`; a server older than 2.10.23 is refused, so Debian's 2.9 on
//! PATH is never used.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tempfile::TempDir;

/// The oldest nats-server that keeps its streams after a crash.
pub const MINIMUM_VERSION: (u32, u32, u32) = (2, 10, 23);

/// A running nats-server owned by the test. Killed on drop.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    /// The JetStream store; survives restarts of the server.
    store: TempDir,
    pub port: u16,
    pub monitor_port: u16,
    child: Option<Child>,
}

/// Either the test's own server or one named by `CAREERS_TEST_NATS_URL`.
#[derive(Debug)]
pub enum Nats {
    Own(NatsServer),
    External(String),
}

impl Nats {
    /// `CAREERS_TEST_NATS_URL` if set, else a fresh server. Tests that stop or kill the
    /// server must use [`NatsServer::start`] instead.
    pub fn shared_or_start() -> anyhow::Result<Self> {
        match std::env::var("CAREERS_TEST_NATS_URL") {
            Ok(url) if !url.is_empty() => Ok(Self::External(url)),
            _ => Ok(Self::Own(NatsServer::start()?)),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Own(server) => server.url(),
            Self::External(url) => url.clone(),
        }
    }
}

impl NatsServer {
    /// Starts a server with JetStream on free ports and waits until it is healthy.
    pub fn start() -> anyhow::Result<Self> {
        let binary = binary()?;
        check_version(&binary)?;
        let mut server = Self {
            binary,
            store: tempfile::tempdir()?,
            port: crate::free_port()?,
            monitor_port: crate::free_port()?,
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Stops the server with SIGKILL, as a crash would; the store is kept.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait()?;
        }
        Ok(())
    }

    /// Starts the server again on the same ports and store.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.spawn()
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new(&self.binary)
            .args(["--addr", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .args(["--http_port"])
            .arg(self.monitor_port.to_string())
            .args(["--jetstream", "--store_dir"])
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))?;
        self.child = Some(child);
        self.wait_healthy(Duration::from_secs(15))
    }

    fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("nats-server exited at start with {status}");
            }
            if http_ok(self.monitor_port, "/healthz?js-enabled-only=true") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "nats-server on port {} not healthy within {timeout:?}",
            self.port
        )
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill().ok();
    }
}

/// Where the project's nats-server is.
pub fn binary() -> anyhow::Result<PathBuf> {
    if let Ok(path) = std::env::var("CAREERS_NATS_SERVER")
        && !path.is_empty()
    {
        return Ok(PathBuf::from(path));
    }
    let path = crate::repository_root().join(".tools/bin/nats-server");
    if path.exists() {
        Ok(path)
    } else {
        bail!(
            "no nats-server at {}: run `make tools` (make test does it) or set CAREERS_NATS_SERVER",
            path.display()
        )
    }
}

fn check_version(binary: &PathBuf) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = parse_version(&text)
        .with_context(|| format!("cannot read the version of {}: {text}", binary.display()))?;
    if version < MINIMUM_VERSION {
        bail!(
            "{} is nats-server {}.{}.{}, older than the 2.10.23 this project needs",
            binary.display(),
            version.0,
            version.1,
            version.2
        );
    }
    Ok(())
}

/// Reads `nats-server: v2.15.1` as (2, 15, 1).
fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let version = text.trim().rsplit('v').next()?;
    let mut parts = version.split('.').map(|part| {
        part.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    Some((
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    ))
}

/// Whether the monitoring endpoint answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    crate::http::get(port, path).is_ok_and(|(status, _)| status == 200)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_from_the_banner() {
        assert_eq!(parse_version("nats-server: v2.15.1\n"), Some((2, 15, 1)));
        assert_eq!(parse_version("nats-server: v2.9.10"), Some((2, 9, 10)));
        assert!(parse_version("nats-server: v2.9.10").unwrap() < MINIMUM_VERSION);
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn two_servers_run_side_by_side_and_restart_on_their_store() {
        let mut first = NatsServer::start().unwrap();
        let second = NatsServer::start().unwrap();
        assert_ne!(first.port, second.port);
        first.restart().unwrap();
        assert!(http_ok(first.monitor_port, "/healthz"));
        first.kill().unwrap();
        assert!(!http_ok(first.monitor_port, "/healthz"));
        assert!(http_ok(second.monitor_port, "/healthz"));
    }
}
