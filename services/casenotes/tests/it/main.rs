//! Case notes through its gRPC API, on SQLite and PostgreSQL, as the gateway calls it.

mod access;
mod erasure;
mod events;
mod input;
mod protection;

use std::path::PathBuf;

use careers_casenotes::{Casenotes, settings::generate_dev_secrets};
use careers_platform::identity::Identity;
use careers_proto::careers::casenotes::v1::{
    self as api, casenotes_service_client::CasenotesServiceClient,
};
use careers_testkit::service::{RunningService, TestKeys, spawn_trusting};
use std::sync::Arc;
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

/// A store pair: the main store and the key store, on one backend.
#[derive(Debug)]
pub struct Stores {
    pub main: String,
    pub keys: String,
    _sqlite: Vec<careers_testkit::sqlite::TestSqlite>,
    _postgres: Vec<careers_testkit::postgres::TestDatabase>,
}

impl Stores {
    pub fn sqlite() -> anyhow::Result<Self> {
        let (main, keys) = (
            careers_testkit::sqlite::TestSqlite::new()?,
            careers_testkit::sqlite::TestSqlite::new()?,
        );
        Ok(Self {
            main: main.url.clone(),
            keys: keys.url.clone(),
            _sqlite: vec![main, keys],
            _postgres: Vec::new(),
        })
    }

    pub async fn postgres() -> anyhow::Result<Self> {
        let (main, keys) = (
            careers_testkit::postgres::empty_database().await?,
            careers_testkit::postgres::empty_database().await?,
        );
        Ok(Self {
            main: main.url.clone(),
            keys: keys.url.clone(),
            _sqlite: Vec::new(),
            _postgres: vec![main, keys],
        })
    }
}

/// Development-style secrets in files, kept across restarts of one test's service.
#[derive(Debug)]
pub struct Secrets {
    pub dir: tempfile::TempDir,
    pub kek: PathBuf,
    pub audit: PathBuf,
}

impl Secrets {
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let (kek_line, audit_key) = generate_dev_secrets("test-kek-1");
        let kek = dir.path().join("kek");
        let audit = dir.path().join("audit.key");
        std::fs::write(&kek, kek_line)?;
        std::fs::write(&audit, audit_key)?;
        Ok(Self { dir, kek, audit })
    }
}

/// A running casenotes and a client of it.
#[derive(Debug)]
pub struct Service {
    /// `None` when the service runs as its own process.
    running: Option<RunningService>,
    pub client: CasenotesServiceClient<Channel>,
    keys: Arc<TestKeys>,
}

impl Service {
    pub async fn start(stores: &Stores, secrets: &Secrets) -> anyhow::Result<Self> {
        Self::start_with(stores, secrets, &[]).await
    }

    pub async fn start_with(
        stores: &Stores,
        secrets: &Secrets,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let keys = Arc::new(TestKeys::new()?);
        let kek = secrets.kek.display().to_string();
        let audit = secrets.audit.display().to_string();
        let mut all = vec![
            ("crypto.kek_path", kek.as_str()),
            ("audit.key_path", audit.as_str()),
            ("keystore.url", stores.keys.as_str()),
        ];
        all.extend_from_slice(overrides);
        let running = spawn_trusting::<Casenotes>(&stores.main, &all, &keys).await?;
        let mut service = Self::at(running.port, keys)?;
        service.running = Some(running);
        Ok(service)
    }

    /// A client of the casenotes listening on `port` that trusts `keys`.
    pub fn at(port: u16, keys: Arc<TestKeys>) -> anyhow::Result<Self> {
        let client = CasenotesServiceClient::new(
            Channel::from_shared(format!("http://127.0.0.1:{port}"))?.connect_lazy(),
        );
        Ok(Self {
            running: None,
            client,
            keys,
        })
    }

    /// Runs the in-process service's graceful shutdown.
    pub async fn stop(self) -> anyhow::Result<()> {
        match self.running {
            Some(running) => running.shutdown().await,
            None => Ok(()),
        }
    }

    /// A request as the gateway sends it for `sub` with `roles` in `org`.
    pub fn as_<T>(
        &self,
        sub: &str,
        roles: &[&str],
        org: &str,
        message: T,
    ) -> anyhow::Result<Request<T>> {
        let token = self.keys.signer.sign(&Identity {
            sub: sub.to_owned(),
            roles: roles.iter().map(|role| (*role).to_owned()).collect(),
            org: Some(org.to_owned()),
            ssc: None,
        })?;
        let mut request = Request::new(message);
        request
            .metadata_mut()
            .insert(careers_platform::identity::METADATA_KEY, token.parse()?);
        Ok(request)
    }

    pub fn adviser<T>(&self, org: &str, message: T) -> anyhow::Result<Request<T>> {
        self.as_(&format!("adviser@{org}"), &["adviser"], org, message)
    }

    pub fn supervisor<T>(&self, org: &str, message: T) -> anyhow::Result<Request<T>> {
        self.as_(&format!("supervisor@{org}"), &["supervisor"], org, message)
    }

    /// Creates a client in `org` and answers its id.
    pub async fn create_client(&mut self, org: &str, name: &str) -> anyhow::Result<String> {
        let request = self.adviser(org, new_client(name))?;
        let client = self
            .client
            .create_client(request)
            .await?
            .into_inner()
            .client
            .ok_or_else(|| anyhow::anyhow!("no client in the answer"))?;
        Ok(client.id)
    }
}

pub fn new_client(name: &str) -> api::CreateClientRequest {
    api::CreateClientRequest {
        name: name.to_owned(),
        date_of_birth: "2010-03-14".into(),
        stage: "school_year_10".into(),
        email: Some("pupil@example.org".into()),
        postcode_district: Some("m1".into()),
        school_urn: Some("105574".into()),
        ..api::CreateClientRequest::default()
    }
}

/// The status's code and its contract `code` (ErrorInfo reason).
pub fn failure<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> (Code, String) {
    match result {
        Ok(answer) => (Code::Ok, format!("{answer:?}")),
        Err(status) => (
            status.code(),
            status
                .get_details_error_info()
                .map(|info| info.reason)
                .unwrap_or_default(),
        ),
    }
}
