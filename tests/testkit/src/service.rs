//! A careers service running inside the test process on a free port.

use std::collections::HashMap;

use anyhow::Context;
use careers_platform::{
    App, AppError, Service,
    identity::{self, Identity, IdentitySigner},
    settings::{self, Sources},
};
use tokio::{sync::oneshot, task::JoinHandle};

/// A key pair for the internal identity token in a temporary directory: the private key
/// (for a gateway under test) and the JWKS (for services).
#[derive(Debug)]
pub struct TestKeys {
    pub pem_path: std::path::PathBuf,
    pub jwks_path: std::path::PathBuf,
    pub signer: IdentitySigner,
    _dir: tempfile::TempDir,
}

impl TestKeys {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (pem, jwks) = identity::generate_key_pair("test")?;
        let pem_path = dir.path().join("internal.pem");
        let jwks_path = dir.path().join("internal.jwks.json");
        std::fs::write(&pem_path, &pem)?;
        std::fs::write(&jwks_path, jwks)?;
        Ok(Self {
            signer: IdentitySigner::from_pem(pem.as_bytes(), "test")?,
            pem_path,
            jwks_path,
            _dir: dir,
        })
    }
}

/// A service started by [`spawn`]; stop it with [`RunningService::shutdown`] (dropping
/// it aborts the server).
#[derive(Debug)]
pub struct RunningService {
    pub port: u16,
    /// Signs identity tokens the service accepts, as the gateway would.
    pub signer: IdentitySigner,
    /// Keeps the JWKS file the service reads.
    _keys: std::sync::Arc<TestKeys>,
    /// Keeps casenotes' throwaway secrets and key store, or ambassadors' key.
    _secrets: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), AppError>>,
}

/// Builds and runs service `S` on `database_url` with test settings (gRPC on a free
/// port, no metrics listener, no drain delay, a 1 s catch-up timeout) and `overrides`,
/// given as `("section.key", "value")`. NATS is an unreachable port unless `nats.url`
/// is among the overrides.
pub async fn spawn<S: Service>(
    database_url: &str,
    overrides: &[(&str, &str)],
) -> anyhow::Result<RunningService> {
    // A key pair of its own: the service trusts only this test's tokens.
    let keys = std::sync::Arc::new(TestKeys::new()?);
    spawn_trusting::<S>(database_url, overrides, &keys).await
}

/// Like [`spawn`], trusting the identity tokens of `keys` (shared with a gateway).
pub async fn spawn_trusting<S: Service>(
    database_url: &str,
    overrides: &[(&str, &str)],
    keys: &std::sync::Arc<TestKeys>,
) -> anyhow::Result<RunningService> {
    spawn_adjusted::<S>(database_url, overrides, keys, |_| {}).await
}

/// Like [`spawn_trusting`], with `adjust` applied to the loaded settings before the build:
/// for what code may set and configuration may not (a benchmark's baseline parts).
pub async fn spawn_adjusted<S: Service>(
    database_url: &str,
    overrides: &[(&str, &str)],
    keys: &std::sync::Arc<TestKeys>,
    adjust: impl FnOnce(&mut careers_platform::Settings<S::Settings>),
) -> anyhow::Result<RunningService> {
    let prefix = format!("CAREERS_{}", S::NAME.to_ascii_uppercase());
    let variable = |key: &str| format!("{prefix}__{}", key.replace('.', "__").to_ascii_uppercase());
    let mut environment: HashMap<String, String> = [
        ("grpc.listen", "127.0.0.1:0"),
        ("metrics.enabled", "false"),
        ("shutdown.drain_delay", "0s"),
        ("readiness.store_check_interval", "200ms"),
        // Tests without a broker should not wait the default 30 s to be ready.
        ("readiness.catch_up_timeout", "1s"),
        ("database.url", database_url),
    ]
    .into_iter()
    .map(|(key, value)| (variable(key), value.to_owned()))
    .collect();
    // Hermetic by default: a broker on the default port (a developer's `make run`)
    // must never be used by a test that did not ask for it.
    let unreachable = format!("nats://127.0.0.1:{}", crate::free_port()?);
    environment.insert(variable("nats.url"), unreachable);
    environment.insert(
        variable("identity.jwks_path"),
        keys.jwks_path.display().to_string(),
    );
    let signer = keys.signer.clone();
    let secrets = match S::NAME {
        "casenotes" => Some(casenotes_secrets(&mut environment, &variable)?),
        "ambassadors" => Some(ambassadors_settings(&mut environment, &variable)?),
        _ => None,
    };
    for (key, value) in overrides {
        environment.insert(variable(key), (*value).to_owned());
    }
    let mut settings = settings::load::<S::Settings>(
        S::NAME,
        Sources {
            defaults: S::DEFAULTS,
            file: None,
            secrets_dir: None,
            environment,
        },
    )?;
    adjust(&mut settings);
    let app = App::<S>::build(settings)
        .await
        .with_context(|| format!("building {}", S::NAME))?;
    let port = app.port();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));
    Ok(RunningService {
        port,
        signer,
        _secrets: secrets,
        _keys: keys.clone(),
        stop: Some(stop),
        task,
    })
}

/// Ambassadors' places from the repository's seeds and a throwaway attributes key.
fn ambassadors_settings(
    environment: &mut HashMap<String, String>,
    variable: &impl Fn(&str) -> String,
) -> anyhow::Result<tempfile::TempDir> {
    use base64::Engine;
    environment.insert(
        variable("places.dir"),
        crate::repository_root().join("seeds").display().to_string(),
    );
    let dir = tempfile::tempdir()?;
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(uuid::Uuid::now_v7().as_bytes());
    bytes.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    let key = dir.path().join("attributes.key");
    std::fs::write(
        &key,
        base64::engine::general_purpose::STANDARD.encode(bytes),
    )?;
    environment.insert(variable("crypto.key_path"), key.display().to_string());
    Ok(dir)
}

/// Throwaway case-notes secrets (a KEK and an audit key, as files) and a SQLite key store
/// beside them, unless the test's overrides name its own.
fn casenotes_secrets(
    environment: &mut HashMap<String, String>,
    variable: &impl Fn(&str) -> String,
) -> anyhow::Result<tempfile::TempDir> {
    use base64::Engine;
    let dir = tempfile::tempdir()?;
    let random = || {
        let mut bytes = Vec::with_capacity(32);
        bytes.extend_from_slice(uuid::Uuid::now_v7().as_bytes());
        bytes.extend_from_slice(uuid::Uuid::now_v7().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let kek = dir.path().join("kek");
    let audit = dir.path().join("audit.key");
    std::fs::write(&kek, format!("test-kek:{}", random()))?;
    std::fs::write(&audit, random())?;
    environment.insert(variable("crypto.kek_path"), kek.display().to_string());
    environment.insert(variable("audit.key_path"), audit.display().to_string());
    environment.insert(
        variable("keystore.url"),
        format!("sqlite://{}?mode=rwc", dir.path().join("keys.db").display()),
    );
    Ok(dir)
}

impl RunningService {
    /// An `x-careers-identity` value for `roles`, as the gateway would send it.
    pub fn token(&self, roles: &[&str], ssc: Option<&str>) -> anyhow::Result<String> {
        Ok(self.signer.sign(&Identity {
            sub: "test-user".into(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            org: None,
            ssc: ssc.map(str::to_owned),
        })?)
    }

    /// Runs the service's graceful shutdown and waits for it.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            stop.send(()).ok();
        }
        (&mut self.task).await??;
        Ok(())
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.task.abort();
    }
}
