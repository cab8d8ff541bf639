//! A careers service binary running as its own process, as a pod runs it: for what an
//! in-process service cannot show (signals, several replicas, exit codes).

use std::{
    path::PathBuf,
    process::{ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A binary `make test` builds beside the test binaries (`target/<profile>/<name>`).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    // target/debug/deps/<test> → target/debug/<name>
    let path = exe
        .parent()
        .and_then(std::path::Path::parent)
        .map(|profile| profile.join(name))
        .context("no target directory")?;
    anyhow::ensure!(
        path.exists(),
        "{} is missing; make test builds every binary first",
        path.display()
    );
    Ok(path)
}

/// Runs `binary args…` with only `environment` set, to completion; fails with its output
/// unless it exits 0.
pub async fn run(
    name: &str,
    args: &[&str],
    environment: &[(String, String)],
) -> anyhow::Result<()> {
    let output = Command::new(binary(name)?)
        .args(args)
        .env_clear()
        .envs(environment.iter().cloned())
        .stdin(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "{name} {args:?} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// A running service process whose log lines (stdout and stderr) are kept. Killed when
/// dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ServiceProcess {
    /// Starts `binary` (serving) with only `environment` set.
    pub fn spawn(name: &str, environment: &[(String, String)]) -> anyhow::Result<Self> {
        let mut child = Command::new(binary(name)?)
            .env_clear()
            .envs(environment.iter().cloned())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let logs = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        for pipe in [
            Box::new(stdout) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
            Box::new(stderr),
        ] {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().map(|mut logs| logs.push(line)).ok();
                }
            });
        }
        Ok(Self { child, logs })
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs
            .lock()
            .map(|logs| logs.clone())
            .unwrap_or_default()
    }

    /// Sends SIGTERM, as the kubelet does, without waiting.
    pub fn terminate(&self) -> anyhow::Result<()> {
        let pid = self.child.id().context("the process has already exited")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        Ok(())
    }

    /// SIGTERM, then waits for the exit; fails unless the process drained and exited 0
    /// within `timeout`.
    pub async fn stop(&mut self, timeout: Duration) -> anyhow::Result<()> {
        self.terminate()?;
        let status = self.wait(timeout).await?;
        anyhow::ensure!(status.success(), "exited with {status} after SIGTERM");
        Ok(())
    }

    /// Waits for the process to exit, failing after `timeout`.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        tokio::time::timeout(timeout, self.child.wait())
            .await
            .context("the process did not exit in time")?
            .context("waiting for the process")
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL, as a crash or an OOM kill.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        Ok(self.child.kill().await?)
    }
}
