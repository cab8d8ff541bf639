//! The gateway: the only public entry point.
//!
//! - `/healthz` and `/readyz` on its HTTP port, gRPC health (`liveness`,
//!   `careers.gateway`) and reflection on its gRPC port.
//! - [`routes`]: the HTTP/JSON API, behind [`front`]: bearer tokens ([`bearer`]) or API keys
//!   ([`apikeys`]) checked against one route table ([`access`]), per-principal rate
//!   limits, load shedding, deadlines on every upstream call; the caller passed to
//!   services as the internal identity token.
//! - [`grpc_proxy`]: the services' gRPC APIs re-served on the gRPC port, gRPC-Web too.
//! - [`balance`]: every upstream call spread over all of a service's ready replicas.
//! - [`openapi`]: `/openapi.json` from the route table, `/docs`.

pub mod access;
pub mod apikeys;
pub mod balance;
mod bearer;
pub mod cors;
pub mod front;
mod grpc_proxy;
mod internal;
pub mod openapi;
mod problem;
mod retry;
pub mod routes;
mod slow;

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use axum::{Json, Router, extract::State, http::StatusCode, routing::get};
use careers_platform::{
    grpc,
    identity::IdentitySigner,
    readiness::LIVENESS,
    settings::{MetricsSettings, ShutdownSettings, TelemetrySettings},
};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic_health::{ServingStatus, server::HealthReporter};

/// The embedded default configuration (TOML).
pub const DEFAULTS: &str = include_str!("defaults.toml");

/// The gateway's own health name; never tied to upstreams.
pub const HEALTH_NAME: &str = "careers.gateway";

/// The gateway's settings (`CAREERS_GATEWAY__…`).
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: Listen,
    pub grpc: GrpcListen,
    #[serde(default)]
    pub cors: cors::CorsSettings,
    pub metrics: MetricsSettings,
    pub upstreams: Upstreams,
    #[serde(default)]
    pub auth: AuthSettings,
    #[serde(default)]
    pub identity: IdentitySettings,
    #[serde(default)]
    pub readiness: ReadinessSettings,
    #[serde(default)]
    pub telemetry: TelemetrySettings,
    #[serde(default)]
    pub shutdown: ShutdownSettings,
    #[serde(default)]
    pub submissions: SubmissionSettings,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub access_log: AccessLogSettings,
}

/// `[access_log]`: the gateway's line per `/v1` request.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default)]
pub struct AccessLogSettings {
    /// The share of successful requests logged, from 0 (none) to 1 (all); a 4xx or 5xx
    /// answer is always logged.
    pub sample_rate: f64,
}

impl Default for AccessLogSettings {
    fn default() -> Self {
        Self { sample_rate: 1.0 }
    }
}

impl AccessLogSettings {
    /// Whether the request with this id is in the sample: decided by the id's hash, so one
    /// request is in or out wherever it is asked.
    pub fn samples(&self, request_id: &str) -> bool {
        use std::hash::{Hash, Hasher};
        if self.sample_rate >= 1.0 {
            return true;
        }
        if self.sample_rate <= 0.0 {
            return false;
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        request_id.hash(&mut hasher);
        (hasher.finish() as f64 / u64::MAX as f64) < self.sample_rate
    }
}

/// `[limits]`: per replica; with N replicas a caller may get N times these rates.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// The largest request body, except LMI submissions (`submissions.max_json_bytes`
    /// for JSON; CSV is streamed without a cap).
    pub max_body_bytes: usize,
    /// Requests per second per bearer-token subject, with bursts of `rate_burst`. API
    /// keys have their own rate, in the key file.
    pub rate_per_second: u32,
    pub rate_burst: u32,
    /// Requests in flight at once; beyond it, 503 at once (load shedding).
    pub max_concurrent: usize,
    /// Requests in flight at once from one principal (token subject or API key); beyond
    /// it, 429 `too_many_in_flight`, so that one caller cannot take every slot.
    pub max_concurrent_per_caller: usize,
    /// Every upstream call's deadline, passed on as `grpc-timeout`; 504 when it passes.
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// The deadline of an LMI submission, which may stream a large CSV.
    #[serde(with = "humantime_serde")]
    pub submission_timeout: Duration,
    /// A request's headers must arrive within this; a kept-alive connection idle this long
    /// between requests is closed too.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request body must arrive at at least this many bytes a second once
    /// `body_grace` has passed; slower is 408 `request_timeout` and the connection closed.
    pub body_min_bytes_per_second: u64,
    #[serde(with = "humantime_serde")]
    pub body_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            rate_per_second: 50,
            rate_burst: 100,
            max_concurrent: 512,
            max_concurrent_per_caller: 32,
            upstream_timeout: Duration::from_secs(10),
            submission_timeout: Duration::from_secs(600),
            header_read_timeout: Duration::from_secs(10),
            body_min_bytes_per_second: 1024,
            body_grace: Duration::from_secs(10),
        }
    }
}

/// `[submissions]`: LMI submissions through the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SubmissionSettings {
    /// The largest JSON submission body; CSV is streamed without a cap.
    pub max_json_bytes: usize,
}

impl Default for SubmissionSettings {
    fn default() -> Self {
        Self {
            max_json_bytes: 8 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Listen {
    pub listen: SocketAddr,
}

/// `[grpc]`: the services' APIs re-served, gRPC-Web included.
#[derive(Debug, Clone, Deserialize)]
pub struct GrpcListen {
    pub listen: SocketAddr,
    /// Server reflection; the production overlay turns it off.
    #[serde(default = "serve_reflection")]
    pub reflection: bool,
}

fn serve_reflection() -> bool {
    true
}

/// Where each service's gRPC API is (`CAREERS_GATEWAY__UPSTREAMS__LMI=http://…`).
#[derive(Debug, Clone, Deserialize)]
pub struct Upstreams {
    pub occupations: String,
    pub lmi: String,
    pub casenotes: String,
    pub ambassadors: String,
}

impl Upstreams {
    /// (short name, full gRPC service name, URL), in a fixed order.
    fn all(&self) -> [(&'static str, &'static str, &str); 4] {
        use careers_proto::service_names as names;
        [
            ("occupations", names::OCCUPATIONS, &self.occupations),
            ("lmi", names::LMI, &self.lmi),
            ("casenotes", names::CASENOTES, &self.casenotes),
            ("ambassadors", names::AMBASSADORS, &self.ambassadors),
        ]
    }
}

/// Callers' bearer tokens.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// The JWKS of the token issuer; `careersctl token` and `make run` write the
    /// development one.
    pub jwks_path: PathBuf,
    pub issuer: String,
    pub audience: String,
    /// Verified tokens kept (by hash, until `exp`); 0 turns the cache off.
    pub token_cache_entries: usize,
    /// The API key list (hashes); re-read when it changes. No file: no keys.
    pub api_keys_path: PathBuf,
    /// How often the key file is checked for changes.
    #[serde(with = "humantime_serde")]
    pub api_keys_reload: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            jwks_path: "data/dev-keys/bearer.jwks.json".into(),
            issuer: "careers-dev".into(),
            audience: "careers".into(),
            token_cache_entries: 10_000,
            api_keys_path: "data/dev-keys/api-keys.json".into(),
            api_keys_reload: Duration::from_secs(2),
        }
    }
}

/// The gateway's key for the internal identity token.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct IdentitySettings {
    /// PKCS#8 PEM of a P-256 key; its public half is in the services' JWKS.
    pub signing_key_path: PathBuf,
    pub key_id: String,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            signing_key_path: "data/dev-keys/internal.pem".into(),
            key_id: "dev-internal-1".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct ReadinessSettings {
    /// How long `/readyz` waits for each upstream's health answer.
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// How often each replica of each upstream is health-checked; a replica not SERVING
    /// takes no calls until a check passes ([`balance`]).
    #[serde(with = "humantime_serde")]
    pub replica_check_interval: Duration,
    /// How often upstream names are resolved again, to follow replicas coming and going.
    #[serde(with = "humantime_serde")]
    pub replica_resolve_interval: Duration,
}

impl Default for ReadinessSettings {
    fn default() -> Self {
        Self {
            upstream_timeout: Duration::from_secs(1),
            replica_check_interval: Duration::from_secs(1),
            replica_resolve_interval: Duration::from_secs(5),
        }
    }
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{what}: cannot listen on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {name}: bad URL {url}")]
    Upstream { name: &'static str, url: String },
    #[error(transparent)]
    App(#[from] careers_platform::AppError),
    #[error(transparent)]
    Keys(#[from] careers_platform::identity::IdentityError),
    #[error("identity signing key {path}: {source}")]
    SigningKey {
        path: String,
        source: std::io::Error,
    },
    #[error("serving: {0}")]
    Serve(String),
}

/// A built gateway, bound to its ports.
#[derive(Debug)]
pub struct App {
    settings: Settings,
    http: TcpListener,
    grpc: TcpListener,
    upstreams: Vec<balance::Balanced>,
    api: routes::ApiState,
    front: front::Front,
}

impl App {
    /// Binds the HTTP and gRPC ports (failing at once, naming a taken port) and prepares
    /// lazy channels to the upstreams.
    pub async fn build(settings: Settings) -> Result<Self, GatewayError> {
        let bind = |what: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| GatewayError::Bind { what, addr, source })
        };
        let http = bind("http", settings.http.listen).await?;
        let grpc = bind("grpc", settings.grpc.listen).await?;
        let mut upstreams = Vec::new();
        for (name, service, url) in settings.upstreams.all() {
            let balanced =
                balance::Balanced::new(name, service, url, settings.readiness.upstream_timeout)
                    .await
                    .map_err(|_| GatewayError::Upstream {
                        name,
                        url: url.to_owned(),
                    })?;
            upstreams.push(balanced);
        }
        let front = front::Front::new(
            bearer::Bearer::load(&settings.auth)?,
            apikeys::ApiKeys::load(settings.auth.api_keys_path.clone()),
            &settings.limits,
        );
        let pem = std::fs::read(&settings.identity.signing_key_path).map_err(|source| {
            GatewayError::SigningKey {
                path: settings.identity.signing_key_path.display().to_string(),
                source,
            }
        })?;
        let internal = IdentitySigner::from_pem(&pem, settings.identity.key_id.clone())?;
        let channel = |name: &str| {
            upstreams
                .iter()
                .find(|upstream| upstream.name() == name)
                .map(|upstream| retry::RetryReads(upstream.clone()))
        };
        let (Some(occupations), Some(lmi), Some(casenotes), Some(ambassadors)) = (
            channel("occupations"),
            channel("lmi"),
            channel("casenotes"),
            channel("ambassadors"),
        ) else {
            return Err(GatewayError::Serve("upstreams missing".into()));
        };
        let api = routes::ApiState {
            bearer: front.bearer.clone(),
            internal: std::sync::Arc::new(internal::InternalTokens::new(internal)),
            occupations,
            lmi,
            casenotes,
            ambassadors,
            max_json_bytes: settings.submissions.max_json_bytes,
            upstream_timeout: settings.limits.upstream_timeout,
            submission_timeout: settings.limits.submission_timeout,
        };
        Ok(Self {
            settings,
            http,
            grpc,
            upstreams,
            api,
            front,
        })
    }

    pub fn http_port(&self) -> u16 {
        self.http.local_addr().map(|addr| addr.port()).unwrap_or(0)
    }

    pub fn grpc_port(&self) -> u16 {
        self.grpc.local_addr().map(|addr| addr.port()).unwrap_or(0)
    }

    /// An upstream's replicas (`occupations`, `lmi`, …), as the balancer sees them.
    pub fn upstream(&self, name: &str) -> Option<balance::Balanced> {
        self.upstreams
            .iter()
            .find(|upstream| upstream.name() == name)
            .cloned()
    }

    /// Serves until `shutdown`, then reports NOT_SERVING, waits `drain_delay` and stops.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), GatewayError> {
        let (reporter, health_service) = tonic_health::server::health_reporter();
        for name in ["", LIVENESS, HEALTH_NAME] {
            reporter
                .set_service_status(name, ServingStatus::Serving)
                .await;
        }
        let close = CancellationToken::new();
        spawn_upstream_health(
            self.upstreams.clone(),
            reporter.clone(),
            self.settings.readiness.upstream_timeout,
            close.clone(),
        );
        balance::spawn_refresh(
            self.upstreams.clone(),
            self.settings.readiness.replica_check_interval,
            self.settings.readiness.replica_resolve_interval,
            self.settings.readiness.upstream_timeout,
            close.clone(),
        );
        self.front
            .spawn_upkeep(self.settings.auth.api_keys_reload, close.clone());
        let cors = self.settings.cors.layer()?;
        let proxy = grpc_proxy::GrpcProxy {
            front: self.front.clone(),
            signer: self.api.internal.clone(),
            routes: std::sync::Arc::new(
                self.upstreams
                    .iter()
                    .map(|upstream| grpc_proxy::Route {
                        service: upstream.service(),
                        upstream: upstream.clone(),
                    })
                    .collect(),
            ),
            deadline: self.settings.limits.upstream_timeout,
        };
        let mut routes = tonic::service::Routes::from(Router::new().fallback_service(proxy))
            .add_service(health_service);
        if self.settings.grpc.reflection {
            routes = routes
                .add_service(grpc::reflection_v1().map_err(careers_platform::AppError::from)?)
                .add_service(grpc::reflection_v1alpha().map_err(careers_platform::AppError::from)?);
        }
        let grpc_server = tonic::transport::Server::builder()
            // gRPC-Web comes over HTTP/1.1 from browsers.
            .accept_http1(true)
            .trace_fn(grpc::request_span)
            .layer(grpc::AnswerLayer)
            .layer(cors.clone())
            .layer(tonic_web::GrpcWebLayer::new())
            .add_routes(routes)
            .serve_with_incoming_shutdown(
                // Without TCP_NODELAY a small response can wait for a delayed ACK (~40 ms).
                TcpIncoming::from(self.grpc).with_nodelay(Some(true)),
                close.clone().cancelled_owned(),
            );
        let router = Router::new()
            .route("/healthz", get(|| async { StatusCode::OK }))
            .route("/readyz", get(readyz))
            .with_state(ReadyState {
                upstreams: self.upstreams,
                timeout: self.settings.readiness.upstream_timeout,
            })
            .merge(openapi::routes())
            .merge(routes::routes(
                self.api,
                self.front,
                &self.settings.limits,
                self.settings.access_log,
            ))
            .layer(axum::middleware::from_fn(front::request_id))
            .layer(cors);
        let http_server = slow::serve_http(
            self.http,
            router,
            self.settings.limits.header_read_timeout,
            close.clone(),
        );
        tracing::info!("gateway serving");
        let servers = async {
            let (grpc_result, http_result) = tokio::join!(grpc_server, http_server);
            let () = http_result;
            grpc_result.map_err(|error| GatewayError::Serve(error.to_string()))
        };
        tokio::pin!(servers);
        tokio::select! {
            result = &mut servers => return result,
            () = shutdown => {}
        }
        stop_serving(&reporter).await;
        tokio::select! {
            result = &mut servers => return result,
            () = tokio::time::sleep(self.settings.shutdown.drain_delay) => {}
        }
        close.cancel();
        match tokio::time::timeout(self.settings.shutdown.drain_timeout, servers).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!("in-flight requests still running after drain timeout; stopping");
                Ok(())
            }
        }
    }
}

async fn stop_serving(reporter: &HealthReporter) {
    reporter
        .set_service_status(HEALTH_NAME, ServingStatus::NotServing)
        .await;
}

#[derive(Clone)]
struct ReadyState {
    upstreams: Vec<balance::Balanced>,
    timeout: Duration,
}

/// Whether an upstream answers SERVING for its full name within `timeout`.
async fn upstream_serving(upstream: &balance::Balanced, timeout: Duration) -> bool {
    upstream.any_serving(timeout).await
}

/// Keeps each re-served service's health name on the gateway's port following its
/// upstream, checked every two seconds until `stop`.
fn spawn_upstream_health(
    upstreams: Vec<balance::Balanced>,
    reporter: HealthReporter,
    timeout: Duration,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            for upstream in &upstreams {
                let status = if upstream_serving(upstream, timeout).await {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                reporter
                    .set_service_status(upstream.service(), status)
                    .await;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    });
}

/// 200 `{"status":"ready"}` when every upstream's full name is SERVING, else 503
/// `{"status":"degraded","unavailable":[…]}`.
async fn readyz(State(state): State<ReadyState>) -> (StatusCode, Json<serde_json::Value>) {
    let checks = state.upstreams.iter().map(|upstream| async {
        (
            upstream.name(),
            upstream_serving(upstream, state.timeout).await,
        )
    });
    let unavailable: Vec<&str> = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter_map(|(name, serving)| (!serving).then_some(name))
        .collect();
    if unavailable.is_empty() {
        (StatusCode::OK, Json(serde_json::json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "degraded", "unavailable": unavailable})),
        )
    }
}

/// The HELP text of the gateway's own metric families; call once the exporter is installed.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "careers_http_requests_total",
        "HTTP requests under /v1 answered, by route template, method, status class and caller kind"
    );
    describe_histogram!(
        "careers_http_request_duration_seconds",
        Unit::Seconds,
        "time to answer an HTTP request under /v1, by route template and method"
    );
    describe_counter!(
        "careers_gateway_refused_total",
        "requests refused before any service was called: rate_limited, too_many_in_flight, overloaded, too_slow"
    );
    // At 0 from the start: a rate over a series that appears with its first refusal would
    // miss that refusal.
    for reason in [
        "rate_limited",
        "too_many_in_flight",
        "overloaded",
        "too_slow",
    ] {
        metrics::counter!("careers_gateway_refused_total", "reason" => reason).increment(0);
    }
    describe_counter!(
        "careers_gateway_upstream_requests_total",
        "calls to a service's replica (each attempt of a retried read), by service, method and gRPC code"
    );
    describe_histogram!(
        "careers_gateway_upstream_duration_seconds",
        Unit::Seconds,
        "time to a service's answer headers, by service and method"
    );
}

#[cfg(test)]
mod access_log_tests {
    use super::AccessLogSettings;

    #[test]
    fn the_sample_rate_keeps_about_that_share_and_the_same_id_always_alike() {
        let ids: Vec<String> = (0..2000).map(|n| format!("request-{n}")).collect();
        let kept = |rate: f64| {
            let settings = AccessLogSettings { sample_rate: rate };
            ids.iter().filter(|id| settings.samples(id)).count()
        };
        assert_eq!(kept(1.0), 2000);
        assert_eq!(kept(0.0), 0);
        let half = kept(0.5);
        assert!((800..1200).contains(&half), "{half} of 2000");
        let settings = AccessLogSettings { sample_rate: 0.3 };
        assert!(
            ids.iter()
                .all(|id| settings.samples(id) == settings.samples(id))
        );
    }
}
