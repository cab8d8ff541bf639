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

/// The services the stack runs, in start order (the gateway last).
const SERVICES: [&str; 4] = ["occupations", "lmi", "casenotes", "ambassadors"];

/// The gateway's CORS origins: `make run`'s default, unless the environment sets them.
const CORS_VARIABLE: &str = "CAREERS_GATEWAY__CORS__ALLOWED_ORIGINS";
const DEV_ORIGINS: &str = "http://localhost:*,http://127.0.0.1:*";

/// Every port of the stack.
#[derive(Debug, Clone)]
pub struct Ports {
    nats: u16,
    nats_monitor: u16,
    /// (gRPC, metrics) per service, in [`SERVICES`] order.
    services: [(u16, u16); 4],
    gateway_http: u16,
    gateway_grpc: u16,
    gateway_metrics: u16,
}

impl Ports {
    /// The ports of CONTRACT.md.
    pub fn contract() -> Self {
        Self {
            nats: 14222,
            nats_monitor: 18222,
            services: [(50061, 9101), (50062, 9102), (50063, 9103), (50064, 9104)],
            gateway_http: 8080,
            gateway_grpc: 50051,
            gateway_metrics: 9100,
        }
    }

    /// Free loopback ports, for running the stack beside another (tests).
    pub fn free() -> anyhow::Result<Self> {
        let listeners = (0..13)
            .map(|_| TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))))
            .collect::<Result<Vec<_>, _>>()?;
        let ports = listeners
            .iter()
            .map(|listener| listener.local_addr().map(|addr| addr.port()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            nats: ports[0],
            nats_monitor: ports[1],
            services: [
                (ports[2], ports[3]),
                (ports[4], ports[5]),
                (ports[6], ports[7]),
                (ports[8], ports[9]),
            ],
            gateway_http: ports[10],
            gateway_grpc: ports[11],
            gateway_metrics: ports[12],
        })
    }

    fn all(&self) -> Vec<u16> {
        let mut all = vec![
            self.nats,
            self.nats_monitor,
            self.gateway_http,
            self.gateway_grpc,
            self.gateway_metrics,
        ];
        all.extend(
            self.services
                .iter()
                .flat_map(|(grpc, metrics)| [*grpc, *metrics]),
        );
        all
    }

    /// Every process's addresses, as `<data>/ports.json` records them.
    fn document(&self) -> serde_json::Value {
        let mut document = serde_json::json!({
            "nats": {"client": self.nats, "monitor": self.nats_monitor},
            "gateway": {"http": self.gateway_http, "grpc": self.gateway_grpc,
                "metrics": self.gateway_metrics},
        });
        for (service, (grpc, metrics)) in SERVICES.iter().zip(self.services) {
            document[*service] = serde_json::json!({"grpc": grpc, "metrics": metrics});
        }
        document
    }

    fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.gateway_http)
    }

    fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats)
    }
}

/// One development token per role, each with the claims its role needs: advisers and
/// supervisors in `college-1`, the school contact for a seeded school (URN 100000),
/// `ssc_publisher` for the `dev` SSC.
const ROLES: [(&str, Option<&str>, Option<&str>); 9] = [
    ("adviser", Some("college-1"), None),
    ("supervisor", Some("college-1"), None),
    ("ssc_publisher", None, Some("dev")),
    ("qa_reviewer", None, None),
    ("catalogue_editor", None, None),
    ("ambassador_coordinator", None, None),
    ("school_contact", Some("100000"), None),
    ("ambassador", None, None),
    ("operator", None, None),
];

/// Runs the stack until Ctrl-C or SIGTERM.
pub async fn run(data: &Path, nats_server: &Path, ports: &Ports) -> anyhow::Result<()> {
    let gateway_url = ports.gateway_url();
    for port in ports.all() {
        if TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_err() {
            bail!("port {port} is taken; stop whatever listens there and run again");
        }
    }
    check_nats_version(nats_server).await?;
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    // Where each process listens (with --free-ports, known nowhere else): for scrapers and
    // tools pointed at a running stack.
    let ports_file = data.join("ports.json");
    std::fs::write(&ports_file, format!("{:#}\n", ports.document()))
        .with_context(|| format!("writing {}", ports_file.display()))?;
    let keys = data.join("dev-keys");
    // The gateway signs the internal identity token; the services verify it.
    let (internal_pem, jwks) = crate::keys::ensure(&keys, "internal", "dev-internal-1")?;
    // Callers' bearer tokens (careersctl token), which the gateway verifies.
    let (bearer_pem, bearer_jwks) = crate::keys::ensure(&keys, "bearer", "dev-bearer-1")?;
    // Case notes' key-encryption key and audit key: secrets outside its stores.
    let (kek, audit_key) = crate::keys::ensure_casenotes_secrets(&keys)?;
    // Ambassadors' key sealing role-model attributes.
    let attributes_key = crate::keys::ensure_ambassadors_key(&keys)?;
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
            &ports.nats.to_string(),
            "--http_port",
            &ports.nats_monitor.to_string(),
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

    // Seeds first, so the services start with them: the catalogue, the SSC registry, the
    // synthetic ambassador register.
    for service in ["occupations", "lmi", "ambassadors"] {
        let seeded = service_command(&binaries, service, data, ports)
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

    for (service, (grpc, metrics)) in SERVICES.iter().zip(ports.services) {
        let prefix = format!("CAREERS_{}", service.to_ascii_uppercase());
        let mut command = service_command(&binaries, service, data, ports);
        if *service == "casenotes" {
            command
                .env("CAREERS_CASENOTES__CRYPTO__KEK_PATH", &kek)
                .env("CAREERS_CASENOTES__AUDIT__KEY_PATH", &audit_key)
                .env(
                    "CAREERS_CASENOTES__KEYSTORE__URL",
                    format!("sqlite://{}", data.join("casenotes-keys.db").display()),
                );
        }
        if *service == "ambassadors" {
            command.env("CAREERS_AMBASSADORS__CRYPTO__KEY_PATH", &attributes_key);
        }
        let child = command
            .env(
                format!("{prefix}__GRPC__LISTEN"),
                format!("127.0.0.1:{grpc}"),
            )
            .env(
                format!("{prefix}__METRICS__LISTEN"),
                format!("127.0.0.1:{metrics}"),
            )
            // The services verify the gateway's identity token with its public key.
            .env(format!("{prefix}__IDENTITY__JWKS_PATH"), &jwks)
            .stdout(log_file(&logs, service)?)
            .stderr(log_file(&logs, service)?)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {service}"))?;
        children.push((*service, child));
    }
    let mut gateway = Command::new(binaries.join("gateway"));
    gateway
        .env(
            "CAREERS_GATEWAY__HTTP__LISTEN",
            format!("127.0.0.1:{}", ports.gateway_http),
        )
        .env(
            "CAREERS_GATEWAY__GRPC__LISTEN",
            format!("127.0.0.1:{}", ports.gateway_grpc),
        )
        .env(
            "CAREERS_GATEWAY__METRICS__LISTEN",
            format!("127.0.0.1:{}", ports.gateway_metrics),
        )
        .env("CAREERS_GATEWAY__AUTH__JWKS_PATH", &bearer_jwks)
        .env("CAREERS_GATEWAY__IDENTITY__SIGNING_KEY_PATH", &internal_pem)
        .env("CAREERS_GATEWAY__IDENTITY__KEY_ID", "dev-internal-1");
    for (service, (grpc, _)) in SERVICES.iter().zip(ports.services) {
        gateway.env(
            format!(
                "CAREERS_GATEWAY__UPSTREAMS__{}",
                service.to_ascii_uppercase()
            ),
            format!("http://127.0.0.1:{grpc}"),
        );
    }
    // A front end's dev server on this machine may call the gateway, whatever its port.
    let cors = std::env::var(CORS_VARIABLE).unwrap_or_else(|_| DEV_ORIGINS.to_owned());
    gateway.env(CORS_VARIABLE, &cors);
    let child = gateway
        .stdin(Stdio::null())
        .stdout(log_file(&logs, "gateway")?)
        .stderr(log_file(&logs, "gateway")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the gateway")?;
    children.push(("gateway", child));

    let ready = wait_ready(&mut children, ports.gateway_http, Duration::from_secs(120)).await;
    if let Err(error) = ready {
        stop(children).await;
        return Err(error);
    }
    eprintln!("Loading the ONS figures through lmi (the first run takes a minute or two)...");
    let signer = careers_platform::identity::IdentitySigner::from_pem(
        &std::fs::read(&internal_pem)?,
        "dev-internal-1",
    )?;
    let (occupations_port, lmi_port) = (ports.services[0].0, ports.services[1].0);
    match crate::ons_seed::push(Path::new("seeds"), lmi_port, occupations_port, &signer).await {
        Ok(summary) => eprintln!("{summary}"),
        Err(error) => {
            stop(children).await;
            return Err(error.context("loading the ONS figures"));
        }
    }
    println!("Gateway: {gateway_url}  (logs in {})", logs.display());
    println!("Browser pages from {cors} may call it (CORS; set {CORS_VARIABLE} to change)");
    println!("Development tokens (12 h; more with ./bin/careersctl token --role R):");
    let mut publisher = String::new();
    for (role, org, ssc) in ROLES {
        let token = crate::keys::dev_token(&bearer_pem, role, org, ssc)?;
        println!("  {role}: {token}");
        if role == "ssc_publisher" {
            publisher = token;
        }
    }
    println!("Try:");
    let row = r#"{"soc_code": "2134", "region": "K02000001", "period": "2024", "measure": "median_annual_pay", "breakdown": "full_time", "value": 54669, "unit": "GBP", "source": "ONS ASHE 2024 provisional, table 14"}"#;
    println!(
        "  curl -s -X POST {gateway_url}/v1/lmi/submissions -H 'Authorization: Bearer {publisher}' \\\n    \
         -H 'Content-Type: application/json' -d '{{\"submission_key\": \"try-1\", \"rows\": [{row}]}}'"
    );
    println!("  curl -s {gateway_url}/v1/occupations/2134 -H 'Authorization: Bearer {publisher}'");
    println!("careers is ready at {gateway_url}");

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
fn service_command(binaries: &Path, name: &str, data: &Path, ports: &Ports) -> Command {
    let mut command = Command::new(binaries.join(name));
    let prefix = format!("CAREERS_{}", name.to_ascii_uppercase());
    let store = data.join(format!("{name}.db"));
    command
        .env(
            format!("{prefix}__DATABASE__URL"),
            format!("sqlite://{}", store.display()),
        )
        .env(format!("{prefix}__NATS__URL"), ports.nats_url())
        .stdin(Stdio::null());
    command
}

/// Waits for `/readyz` to answer 200, failing early if a process exits.
async fn wait_ready(
    children: &mut [(&'static str, Child)],
    gateway_http: u16,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for (name, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited at start ({status}); see data/logs/{name}.log");
            }
        }
        if readyz(gateway_http).await.unwrap_or(false) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("the system was not ready within {timeout:?}; see data/logs/")
}

async fn readyz(port: u16) -> anyhow::Result<bool> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
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
