//! `careersctl dev`: the whole system on one machine, what `make run` starts.
//!
//! A nats-server of the project's own (never an older one found on PATH), every service
//! on SQLite under the data directory, the seeds loaded; ready when the gateway's
//! `/readyz` answers 200, which needs every service's full health name SERVING and so
//! its consumers caught up. Logs go to `<data>/logs/<process>.log`; Ctrl-C stops all.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    process::{Child, Command},
};

/// The oldest nats-server that keeps its streams after a crash.
const NATS_MINIMUM: (u32, u32, u32) = (2, 10, 23);

/// A process of the dev stack and its fixed ports (CONTRACT.md).
struct Process {
    name: &'static str,
    ports: &'static [u16],
}

const NATS_PORTS: &[u16] = &[14222, 18222];
const SERVICES: [Process; 5] = [
    Process {
        name: "occupations",
        ports: &[50061, 9101],
    },
    Process {
        name: "lmi",
        ports: &[50062, 9102],
    },
    Process {
        name: "casenotes",
        ports: &[50063, 9103],
    },
    Process {
        name: "ambassadors",
        ports: &[50064, 9104],
    },
    Process {
        name: "gateway",
        ports: &[8080, 50051, 9100],
    },
];
const GATEWAY_URL: &str = "http://127.0.0.1:8080";
/// One development token per role; `ssc_publisher` publishes for the `dev` SSC.
const ROLES: [(&str, Option<&str>); 9] = [
    ("adviser", None),
    ("supervisor", None),
    ("ssc_publisher", Some("dev")),
    ("qa_reviewer", None),
    ("catalogue_editor", None),
    ("ambassador_coordinator", None),
    ("school_contact", None),
    ("ambassador", None),
    ("operator", None),
];

/// Runs the stack until Ctrl-C or SIGTERM.
pub async fn run(data: &Path, nats_server: &Path) -> anyhow::Result<()> {
    for port in NATS_PORTS
        .iter()
        .chain(SERVICES.iter().flat_map(|process| process.ports))
    {
        if TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, *port))).is_err() {
            bail!("port {port} is taken; stop whatever listens there and run again");
        }
    }
    check_nats_version(nats_server).await?;
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let keys = data.join("dev-keys");
    // The gateway signs the internal identity token; the services verify it.
    let (internal_pem, jwks) = crate::keys::ensure(&keys, "internal", "dev-internal-1")?;
    // Callers' bearer tokens (careersctl token), which the gateway verifies.
    let (bearer_pem, bearer_jwks) = crate::keys::ensure(&keys, "bearer", "dev-bearer-1")?;
    let binaries = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .context("careersctl has no directory")?;

    let mut children = Vec::new();
    let nats = Command::new(nats_server)
        .args([
            "--addr",
            "127.0.0.1",
            "--port",
            "14222",
            "--http_port",
            "18222",
            "--jetstream",
            "--store_dir",
        ])
        .arg(data.join("nats"))
        .stdin(Stdio::null())
        .stdout(log_file(&logs, "nats")?)
        .stderr(log_file(&logs, "nats")?)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", nats_server.display()))?;
    children.push(("nats-server", nats));

    // Seeds first, so the services start with them: the catalogue, the SSC registry.
    for service in ["occupations", "lmi"] {
        let seeded = service_command(&binaries, service, data)
            .args(["seed", "--dir", "seeds"])
            .stdout(Stdio::piped())
            .stderr(log_file(&logs, &format!("{service}-seed"))?)
            .output()
            .await
            .with_context(|| format!("seeding {service}"))?;
        if !seeded.status.success() {
            bail!(
                "seeding {service} failed; see {}",
                logs.join(format!("{service}-seed.log")).display()
            );
        }
        // The seed summary is the last line; the JSON log lines before it go to stderr too.
        eprint!("{}", String::from_utf8_lossy(&seeded.stdout));
    }

    for process in &SERVICES {
        let mut command = service_command(&binaries, process.name, data);
        if process.name == "gateway" {
            command
                .env("CAREERS_GATEWAY__AUTH__JWKS_PATH", &bearer_jwks)
                .env("CAREERS_GATEWAY__IDENTITY__SIGNING_KEY_PATH", &internal_pem)
                .env("CAREERS_GATEWAY__IDENTITY__KEY_ID", "dev-internal-1");
        } else {
            // The services verify the gateway's identity token with its public key.
            let variable = format!(
                "CAREERS_{}__IDENTITY__JWKS_PATH",
                process.name.to_ascii_uppercase()
            );
            command.env(variable, &jwks);
        }
        let child = command
            .stdout(log_file(&logs, process.name)?)
            .stderr(log_file(&logs, process.name)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", process.name))?;
        children.push((process.name, child));
    }

    let ready = wait_ready(&mut children, Duration::from_secs(120)).await;
    if let Err(error) = ready {
        stop(children).await;
        return Err(error);
    }
    println!("Gateway: {GATEWAY_URL}  (logs in {})", logs.display());
    println!("Development tokens (12 h; more with ./bin/careersctl token --role R):");
    let mut publisher = String::new();
    for (role, ssc) in ROLES {
        let token = crate::keys::dev_token(&bearer_pem, role, ssc)?;
        println!("  {role}: {token}");
        if role == "ssc_publisher" {
            publisher = token;
        }
    }
    println!("Try:");
    let row = r#"{"soc_code": "2134", "region": "K02000001", "period": "2024", "measure": "median_annual_pay", "breakdown": "full_time", "value": 54669, "unit": "GBP", "source": "ONS ASHE 2024 provisional, table 14"}"#;
    println!(
        "  curl -s -X POST {GATEWAY_URL}/v1/lmi/submissions -H 'Authorization: Bearer {publisher}' \\\n    \
         -H 'Content-Type: application/json' -d '{{\"submission_key\": \"try-1\", \"rows\": [{row}]}}'"
    );
    println!("  curl -s {GATEWAY_URL}/v1/occupations/2134 -H 'Authorization: Bearer {publisher}'");
    println!("careers is ready at {GATEWAY_URL}");

    careers_platform::shutdown::signal().await;
    stop(children).await;
    Ok(())
}

fn log_file(logs: &Path, name: &str) -> anyhow::Result<std::fs::File> {
    let path = logs.join(format!("{name}.log"));
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// A service binary with its store under `data` and the stack's NATS.
fn service_command(binaries: &Path, name: &str, data: &Path) -> Command {
    let mut command = Command::new(binaries.join(name));
    let prefix = format!("CAREERS_{}", name.to_ascii_uppercase());
    if name != "gateway" {
        command
            .env(
                format!("{prefix}__DATABASE__URL"),
                format!("sqlite://{}", data.join(format!("{name}.db")).display()),
            )
            .env(format!("{prefix}__NATS__URL"), "nats://127.0.0.1:14222");
    }
    command.stdin(Stdio::null());
    command
}

/// Waits for `/readyz` to answer 200, failing early if a process exits.
async fn wait_ready(
    children: &mut [(&'static str, Child)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited at start ({status}); see data/logs/{name}.log");
            }
        }
        if readyz().await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the system was not ready within {timeout:?}; see data/logs/")
}

async fn readyz() -> anyhow::Result<bool> {
    let mut stream = TcpStream::connect(("127.0.0.1", 8080)).await?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(response.starts_with(b"HTTP/1.1 200"))
}

/// SIGTERM to every child (services drain), then wait; nats-server last.
async fn stop(children: Vec<(&'static str, Child)>) {
    for (name, mut child) in children.into_iter().rev() {
        if let Some(pid) = child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            eprintln!("{name} did not stop in 30 s; killing it");
            let _ = child.kill().await;
        }
    }
}

async fn check_nats_version(binary: &Path) -> anyhow::Result<()> {
    let output = Command::new(binary)
        .arg("--version")
        .output()
        .await
        .with_context(|| {
            format!(
                "no usable nats-server at {} (run `make tools`)",
                binary.display()
            )
        })?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version: Vec<u32> = text
        .trim()
        .rsplit('v')
        .next()
        .unwrap_or_default()
        .split('.')
        .filter_map(|part| part.parse().ok())
        .collect();
    let [major, minor, patch] = version[..] else {
        bail!("cannot read the version of {}: {text}", binary.display());
    };
    if (major, minor, patch) < NATS_MINIMUM {
        bail!(
            "{} is nats-server {major}.{minor}.{patch}; 2.10.23 or later is needed",
            binary.display()
        );
    }
    Ok(())
}

/// The project's nats-server, installed by `make tools`.
pub fn default_nats_server() -> PathBuf {
    PathBuf::from(".tools/bin/nats-server")
}
