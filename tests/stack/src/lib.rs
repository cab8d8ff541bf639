//! Occupations and lmi (seeded) behind a gateway, in this process, with a real
//! nats-server: what the system tests and `make bench` drive over HTTP.

use careers_gateway::Settings;
use careers_platform::settings::{Sources, load_standalone};
use careers_testkit::service::TestKeys;

/// The gateway's settings for a test: free ports, the test's bearer and internal keys.
pub fn gateway_settings(
    upstreams: [(&str, u16); 4],
    bearer: &TestKeys,
    internal: &TestKeys,
) -> anyhow::Result<Settings> {
    Ok(load_standalone(
        "gateway",
        Sources {
            defaults: careers_gateway::DEFAULTS,
            file: None,
            secrets_dir: None,
            environment: gateway_environment(upstreams, bearer, internal)
                .into_iter()
                .collect(),
        },
    )?)
}

/// The environment of [`gateway_settings`], for a gateway run as a process.
pub fn gateway_environment(
    upstreams: [(&str, u16); 4],
    bearer: &TestKeys,
    internal: &TestKeys,
) -> Vec<(String, String)> {
    let mut environment: Vec<(String, String)> = vec![
        (
            "CAREERS_GATEWAY__AUTH__JWKS_PATH".into(),
            bearer.jwks_path.display().to_string(),
        ),
        (
            "CAREERS_GATEWAY__IDENTITY__SIGNING_KEY_PATH".into(),
            internal.pem_path.display().to_string(),
        ),
        ("CAREERS_GATEWAY__IDENTITY__KEY_ID".into(), "test".into()),
        ("CAREERS_GATEWAY__HTTP__LISTEN".into(), "127.0.0.1:0".into()),
        ("CAREERS_GATEWAY__GRPC__LISTEN".into(), "127.0.0.1:0".into()),
        ("CAREERS_GATEWAY__METRICS__ENABLED".into(), "false".into()),
        ("CAREERS_GATEWAY__SHUTDOWN__DRAIN_DELAY".into(), "0s".into()),
        // Tests and benches share one subject per role; the limits have tests of their own.
        (
            "CAREERS_GATEWAY__LIMITS__RATE_PER_SECOND".into(),
            "1000000".into(),
        ),
        (
            "CAREERS_GATEWAY__LIMITS__RATE_BURST".into(),
            "1000000".into(),
        ),
        (
            "CAREERS_GATEWAY__LIMITS__MAX_CONCURRENT_PER_CALLER".into(),
            "1000000".into(),
        ),
    ];
    for (name, port) in upstreams {
        environment.push((
            format!("CAREERS_GATEWAY__UPSTREAMS__{}", name.to_ascii_uppercase()),
            format!("http://127.0.0.1:{port}"),
        ));
    }
    environment
}

/// A gateway serving in this process until [`RunningGateway::stop`].
#[derive(Debug)]
pub struct RunningGateway {
    pub http_port: u16,
    pub grpc_port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), careers_gateway::GatewayError>>,
}

impl RunningGateway {
    /// Builds the gateway (binding its ports) and serves it in a task.
    pub async fn start(settings: Settings) -> anyhow::Result<Self> {
        let app = careers_gateway::App::build(settings).await?;
        let (http_port, grpc_port) = (app.http_port(), app.grpc_port());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async {
            stopped.await.ok();
        }));
        Ok(Self {
            http_port,
            grpc_port,
            stop,
            task,
        })
    }

    /// Shuts the gateway down and waits for it to finish.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.send(()).ok();
        Ok(self.task.await??)
    }
}

/// Occupations and lmi (seeded) behind a gateway, with a real nats-server.
pub struct Stack {
    pub gateway_port: u16,
    pub bearer_keys: TestKeys,
    pub lmi_db: sea_orm::DatabaseConnection,
    occupations: careers_testkit::service::RunningService,
    lmi: careers_testkit::service::RunningService,
    gateway: RunningGateway,
    /// The stack's own nats-server, to kill and restart.
    pub nats: careers_testkit::nats::NatsServer,
    pub occupations_db: sea_orm::DatabaseConnection,
    pub occupations_url: String,
    /// The internal identity keys the services trust, to start more replicas.
    pub internal: std::sync::Arc<TestKeys>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Stack")
            .field("gateway_port", &self.gateway_port)
            .finish_non_exhaustive()
    }
}

impl Stack {
    /// Starts everything and waits until lmi knows the whole catalogue.
    pub async fn start(occupations_url: String, lmi_url: String) -> anyhow::Result<Self> {
        use std::{sync::Arc, time::Duration};

        use careers_eventbus::testing::count;
        use careers_lmi::Lmi;
        use careers_occupations::Occupations;
        use careers_platform::Service;
        use careers_testkit::{eventually, nats::NatsServer, service::spawn_trusting};
        use sea_orm::Database;
        let nats = NatsServer::start()?;
        let internal = Arc::new(TestKeys::new()?);
        let bearer_keys = TestKeys::new()?;
        let nats_url = nats.url();
        let overrides = [("nats.url", nats_url.as_str())];
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
        let occupations_db = Database::connect(occupations_url.as_str()).await?;
        let lmi_db = Database::connect(lmi_url.as_str()).await?;
        let occupations =
            spawn_trusting::<Occupations>(&occupations_url, &overrides, &internal).await?;
        let occupations_port = occupations.port;
        let lmi = spawn_trusting::<Lmi>(&lmi_url, &overrides, &internal).await?;
        Occupations::seed(&occupations_db, &seeds).await?;
        Lmi::seed(&lmi_db, &seeds).await?;
        let closed = careers_testkit::free_port()?;
        let gateway = RunningGateway::start(gateway_settings(
            [
                ("occupations", occupations_port),
                ("lmi", lmi.port),
                ("casenotes", closed),
                ("ambassadors", closed),
            ],
            &bearer_keys,
            &internal,
        )?)
        .await?;
        eventually(
            Duration::from_secs(30),
            "lmi knows the catalogue",
            || async { Ok(count(&lmi_db, "SELECT COUNT(*) FROM known_occupations").await? == 412) },
        )
        .await?;

        Ok(Self {
            gateway_port: gateway.http_port,
            bearer_keys,
            lmi_db,
            occupations,
            lmi,
            gateway,
            nats,
            occupations_db,
            occupations_url,
            internal,
        })
    }

    /// The SOC codes lmi knows (the whole catalogue once started), in order: what test
    /// submissions are written over.
    pub async fn catalogue_codes(&self) -> anyhow::Result<Vec<String>> {
        use sea_orm::ConnectionTrait;
        let db = &self.lmi_db;
        Ok(db
            .query_all_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                "SELECT soc_code FROM known_occupations ORDER BY soc_code",
            ))
            .await?
            .iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<_, _>>()?)
    }

    /// The occupations replica's gRPC port, for calls that skip the gateway.
    pub fn occupations_port(&self) -> u16 {
        self.occupations.port
    }

    /// An internal identity token occupations accepts, as the gateway would send it.
    pub fn occupations_identity(&self, roles: &[&str]) -> anyhow::Result<String> {
        self.occupations.token(roles, None)
    }

    /// A development-style bearer token.
    pub fn bearer(&self, roles: &[&str], ssc: Option<&str>) -> anyhow::Result<String> {
        bearer_token(&self.bearer_keys, roles, ssc)
    }

    /// Stops the gateway, then the services.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.gateway.stop().await?;
        self.occupations.shutdown().await?;
        self.lmi.shutdown().await
    }
}

/// A development-style bearer token (issuer `careers-dev`, audience `careers`, one hour)
/// signed with `keys`.
pub fn bearer_token(keys: &TestKeys, roles: &[&str], ssc: Option<&str>) -> anyhow::Result<String> {
    let identity = careers_platform::identity::Identity {
        sub: "tester".into(),
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        org: None,
        ssc: ssc.map(str::to_owned),
    };
    Ok(keys.signer.sign_for(
        &identity,
        "careers-dev",
        "careers",
        std::time::Duration::from_secs(3600),
    )?)
}

/// One HTTP request on a blocking thread.
pub async fn call(
    port: u16,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> anyhow::Result<careers_testkit::http::Response> {
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        careers_testkit::http::request(port, method, &path, &headers, &body)
    })
    .await?
}

/// `Authorization` and `Content-Type` headers.
pub fn auth(token: &str, content_type: &str) -> Vec<(String, String)> {
    vec![
        ("Authorization".into(), format!("Bearer {token}")),
        ("Content-Type".into(), content_type.into()),
    ]
}

/// All four services in this process on SQLite (occupations and lmi seeded; no
/// nats-server, the outboxes keep their events) behind a gateway: what the API-wide
/// tests (fuzzing, hostile input) drive.
pub struct AllServices {
    pub gateway: RunningGateway,
    pub bearer: TestKeys,
    services: Vec<careers_testkit::service::RunningService>,
    _stores: Vec<careers_testkit::sqlite::TestSqlite>,
}

impl std::fmt::Debug for AllServices {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AllServices")
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

impl AllServices {
    pub async fn start() -> anyhow::Result<Self> {
        use careers_platform::Service;
        use careers_testkit::service::spawn_trusting;
        let internal = std::sync::Arc::new(TestKeys::new()?);
        let stores = (0..4)
            .map(|_| careers_testkit::sqlite::TestSqlite::new())
            .collect::<anyhow::Result<Vec<_>>>()?;
        let seeds = careers_testkit::repository_root().join("seeds");
        let connect = |index: usize| sea_orm::Database::connect(stores[index].url.as_str());
        let occupations =
            spawn_trusting::<careers_occupations::Occupations>(&stores[0].url, &[], &internal)
                .await?;
        careers_occupations::Occupations::seed(&connect(0).await?, &seeds).await?;
        let lmi = spawn_trusting::<careers_lmi::Lmi>(&stores[1].url, &[], &internal).await?;
        careers_lmi::Lmi::seed(&connect(1).await?, &seeds).await?;
        let casenotes =
            spawn_trusting::<careers_casenotes::Casenotes>(&stores[2].url, &[], &internal).await?;
        let ambassadors =
            spawn_trusting::<careers_ambassadors::Ambassadors>(&stores[3].url, &[], &internal)
                .await?;
        let bearer = TestKeys::new()?;
        let gateway = RunningGateway::start(gateway_settings(
            [
                ("occupations", occupations.port),
                ("lmi", lmi.port),
                ("casenotes", casenotes.port),
                ("ambassadors", ambassadors.port),
            ],
            &bearer,
            &internal,
        )?)
        .await?;
        Ok(Self {
            gateway,
            bearer,
            services: vec![occupations, lmi, casenotes, ambassadors],
            _stores: stores,
        })
    }

    /// A bearer token holding every role, for school 105574 and the `dev` SSC.
    pub fn every_role(&self, sub: &str) -> anyhow::Result<String> {
        Ok(self.bearer.signer.sign_for(
            &careers_platform::identity::Identity {
                sub: sub.into(),
                roles: careers_gateway::access::ROLES
                    .iter()
                    .map(|role| (*role).to_owned())
                    .collect(),
                org: Some("105574".into()),
                ssc: Some("dev".into()),
            },
            "careers-dev",
            "careers",
            std::time::Duration::from_secs(3600),
        )?)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.gateway.stop().await?;
        for service in self.services {
            service.shutdown().await?;
        }
        Ok(())
    }
}
