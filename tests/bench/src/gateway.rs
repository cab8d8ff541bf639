//! `gateway`: one occupation read, (a) directly over occupations' gRPC API, (b) through a
//! minimal pass-through gRPC proxy written only for this bench (what one extra hop costs
//! here), (c) through the gateway over HTTP/JSON with authentication, authorisation,
//! limits and tracing on, and (c) again with the token cache off; at concurrency 1 and
//! 32. HTTP is spoken over one kept-alive connection per worker, as gRPC is over one
//! channel.

use std::{sync::Arc, time::Duration};

use careers_gateway::App;
use careers_platform::identity::METADATA_KEY;
use careers_proto::careers::occupations::v1::{
    GetOccupationRequest, occupations_service_client::OccupationsServiceClient,
};
use careers_testkit::{free_port, grpc};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
    sync::Mutex,
};
use tonic::transport::Channel;
use tower::Service;

use crate::search::{drive, line};

const SOC: &str = "2134";
const CONCURRENCY: [usize; 2] = [1, 32];

/// The bench's proxy: every call forwarded as it is to one channel, nothing else.
#[derive(Clone)]
struct PassThrough(Channel);

impl Service<axum::http::Request<axum::body::Body>> for PassThrough {
    type Response = axum::http::Response<axum::body::Body>;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: axum::http::Request<axum::body::Body>) -> Self::Future {
        let mut channel = self.0.clone();
        Box::pin(async move {
            let forwarded = match futures::future::poll_fn(|cx| channel.poll_ready(cx)).await {
                Ok(()) => channel.call(request.map(tonic::body::Body::new)).await,
                Err(error) => Err(error),
            };
            Ok(match forwarded {
                Ok(response) => response.map(axum::body::Body::new),
                Err(_) => tonic::Status::unavailable("upstream").into_http(),
            })
        })
    }
}

async fn start_pass_through(upstream: Channel) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let router = axum::Router::new().fallback_service(PassThrough(upstream));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming(
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            ),
    );
    Ok(port)
}

/// One kept-alive HTTP/1.1 connection.
struct Connection(BufReader<TcpStream>);

impl Connection {
    async fn open(port: u16) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        Ok(Self(BufReader::new(stream)))
    }

    /// GETs `path`; the answer must be 200.
    async fn get(&mut self, path: &str, authorization: &str) -> anyhow::Result<()> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {authorization}\r\n\r\n"
        );
        self.0.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.0.read_line(&mut line).await?;
        anyhow::ensure!(line.starts_with("HTTP/1.1 200"), "{line}");
        let mut length = 0;
        loop {
            line.clear();
            self.0.read_line(&mut line).await?;
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse()?;
            }
        }
        let mut body = vec![0; length];
        self.0.read_exact(&mut body).await?;
        Ok(())
    }
}

/// One kept-alive connection per worker, handed out in turn.
#[derive(Clone)]
struct HttpPool {
    connections: Arc<Vec<Mutex<Connection>>>,
    next: Arc<std::sync::atomic::AtomicUsize>,
    path: Arc<str>,
    authorization: Arc<str>,
}

impl HttpPool {
    async fn open(
        port: u16,
        workers: usize,
        path: &str,
        authorization: &str,
    ) -> anyhow::Result<Self> {
        let mut connections = Vec::new();
        for _ in 0..workers {
            connections.push(Mutex::new(Connection::open(port).await?));
        }
        Ok(Self {
            connections: Arc::new(connections),
            next: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            path: path.into(),
            authorization: authorization.into(),
        })
    }

    fn caller(
        self,
    ) -> impl Fn(String) -> futures::future::BoxFuture<'static, anyhow::Result<()>> + Clone {
        move |_: String| {
            let pool = self.clone();
            Box::pin(async move {
                let index = pool.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let mut connection = pool.connections[index % pool.connections.len()]
                    .lock()
                    .await;
                connection.get(&pool.path, &pool.authorization).await
            })
        }
    }
}

pub async fn gateway(seconds: u64) -> anyhow::Result<()> {
    let seconds = seconds.min(10);
    let (stack, _databases) = crate::flow::start_stack().await?;
    let reader = format!("Bearer {}", stack.bearer(&["adviser"], None)?);

    // (c) without the token cache: a second gateway in front of the same occupations.
    let mut uncached = careers_stack::gateway_settings(
        [
            ("occupations", stack.occupations_port()),
            ("lmi", free_port()?),
            ("casenotes", free_port()?),
            ("ambassadors", free_port()?),
        ],
        &stack.bearer_keys,
        &stack.internal,
    )?;
    uncached.auth.token_cache_entries = 0;
    let uncached = App::build(uncached).await?;
    let uncached_port = uncached.http_port();
    let (stop_uncached, stopped) = tokio::sync::oneshot::channel::<()>();
    let uncached_gateway = tokio::spawn(uncached.run_until(async {
        stopped.await.ok();
    }));

    let direct_channel = grpc::channel(stack.occupations_port())?;
    let proxy_port = start_pass_through(direct_channel.clone()).await?;
    let proxy_channel = grpc::channel(proxy_port)?;
    // The internal token lives a minute: a fresh one per round of four runs.
    let over_grpc = |channel: Channel, identity: tonic::metadata::MetadataValue<_>| {
        move |_: String| {
            let (channel, identity) = (channel.clone(), identity.clone());
            async move {
                let mut request = tonic::Request::new(GetOccupationRequest {
                    soc_code: SOC.to_owned(),
                });
                request.metadata_mut().insert(METADATA_KEY, identity);
                OccupationsServiceClient::new(channel)
                    .get_occupation(request)
                    .await?;
                anyhow::Ok(())
            }
        }
    };
    let path = format!("/v1/occupations/{SOC}");
    let keys = Arc::new(vec![String::new()]);
    let mut figures = Vec::new();
    for workers in CONCURRENCY {
        let identity: tonic::metadata::MetadataValue<_> =
            stack.occupations_identity(&["adviser"])?.parse()?;
        let direct = over_grpc(direct_channel.clone(), identity.clone());
        let proxied = over_grpc(proxy_channel.clone(), identity);
        let through_gateway = HttpPool::open(stack.gateway_port, workers, &path, &reader)
            .await?
            .caller();
        let without_cache = HttpPool::open(uncached_port, workers, &path, &reader)
            .await?
            .caller();
        let mut measured = Vec::new();
        for (label, run) in [
            ("(a) direct gRPC", 0),
            ("(b) pass-through proxy", 1),
            ("(c) gateway HTTP", 2),
            ("(c) gateway HTTP, token cache off", 3),
        ] {
            let timed = |keys: Arc<Vec<String>>, workers, seconds| {
                let (direct, proxied, through_gateway, without_cache) = (
                    direct.clone(),
                    proxied.clone(),
                    through_gateway.clone(),
                    without_cache.clone(),
                );
                async move {
                    match run {
                        0 => drive(keys, workers, seconds, direct).await,
                        1 => drive(keys, workers, seconds, proxied).await,
                        2 => drive(keys, workers, seconds, through_gateway).await,
                        _ => drive(keys, workers, seconds, without_cache).await,
                    }
                }
            };
            timed(keys.clone(), workers, 1).await?;
            let (rate, latencies) = timed(keys.clone(), workers, seconds).await?;
            measured.push((label, rate, latencies));
        }
        let median = |latencies: &[f64]| crate::percentile(latencies, 0.5);
        figures.push(format!(
            "{} | (c)/(b) {:.2}x | (c) adds p50 {:.0} µs over (a)",
            measured
                .iter()
                .map(|(label, rate, latencies)| line(label, workers, *rate, latencies))
                .collect::<Vec<_>>()
                .join(" | "),
            measured[2].1 / measured[1].1,
            (median(&measured[2].2) - median(&measured[0].2)) * 1e6,
        ));
    }
    println!(
        "gateway (GetOccupation {SOC} on PostgreSQL, {seconds} s per run): {} \
         | goal (c) ≥ 0.9x (b); added p50 < 300 µs at c1",
        figures.join(" || ")
    );
    stop_uncached.send(()).ok();
    uncached_gateway.await??;
    tokio::time::sleep(Duration::from_millis(10)).await;
    stack.stop().await
}

/// `observability`: the gateway as a process (as deployed) in front of the same
/// occupations, at concurrency 32, with its metrics and an access line for every request
/// on, beside both off. The modes alternate (off, on, three times each) so a drift of the machine
/// falls on both; the access log goes to a file, as a container runtime's would.
pub async fn observability(seconds: u64) -> anyhow::Result<()> {
    const WORKERS: usize = 32;
    let seconds = seconds.min(10);
    let binary = std::env::current_exe()?
        .parent()
        .map(|directory| directory.join("gateway"))
        .filter(|binary| binary.exists())
        .ok_or_else(|| {
            anyhow::anyhow!("no gateway binary beside careers-bench (make bench builds it)")
        })?;
    let (stack, _databases) = crate::flow::start_stack().await?;
    let reader = format!("Bearer {}", stack.bearer(&["adviser"], None)?);
    let path = format!("/v1/occupations/{SOC}");
    let logs = tempfile::tempdir()?;
    let keys = Arc::new(vec![String::new()]);
    let mut rates = [Vec::new(), Vec::new()];
    // A first round, not counted, warms occupations and its store for both modes.
    let modes = [
        None,
        Some(false),
        Some(true),
        Some(false),
        Some(true),
        Some(false),
        Some(true),
    ];
    for (round, on) in modes.into_iter().enumerate() {
        let counted = on;
        let on = on.unwrap_or(false);
        let port = free_port()?;
        let mut environment = careers_stack::gateway_environment(
            [
                ("occupations", stack.occupations_port()),
                ("lmi", free_port()?),
                ("casenotes", free_port()?),
                ("ambassadors", free_port()?),
            ],
            &stack.bearer_keys,
            &stack.internal,
        );
        let sample_rate = if on { "1.0" } else { "0.0" };
        environment.extend([
            (
                "CAREERS_GATEWAY__HTTP__LISTEN".into(),
                format!("127.0.0.1:{port}"),
            ),
            ("CAREERS_GATEWAY__METRICS__ENABLED".into(), on.to_string()),
            (
                "CAREERS_GATEWAY__METRICS__LISTEN".into(),
                format!("127.0.0.1:{}", free_port()?),
            ),
            (
                "CAREERS_GATEWAY__ACCESS_LOG__SAMPLE_RATE".into(),
                sample_rate.into(),
            ),
        ]);
        let log = std::fs::File::create(logs.path().join(format!("gateway-{round}.log")))?;
        let mut gateway = tokio::process::Command::new(&binary)
            .env_clear()
            .envs(environment)
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        // Ready once a read goes through (the balancer has checked occupations).
        let started = std::time::Instant::now();
        loop {
            let answered = match Connection::open(port).await {
                Ok(mut connection) => connection.get(&path, &reader).await.is_ok(),
                Err(_) => false,
            };
            if answered {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(30),
                "the gateway did not answer"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caller = HttpPool::open(port, WORKERS, &path, &reader)
            .await?
            .caller();
        drive(keys.clone(), WORKERS, 1, caller.clone()).await?;
        let (rate, _) = drive(keys.clone(), WORKERS, seconds, caller).await?;
        if let Some(on) = counted {
            rates[usize::from(on)].push(rate);
        }
        gateway.kill().await?;
    }
    let mean = |rates: &[f64]| rates.iter().sum::<f64>() / rates.len().max(1) as f64;
    let (off, on) = (mean(&rates[0]), mean(&rates[1]));
    let rounds = |rates: &[f64]| {
        rates
            .iter()
            .map(|rate| format!("{rate:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let written = std::fs::read_dir(logs.path())?
        .filter_map(Result::ok)
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .map(|text| {
            text.lines()
                .filter(|line| line.contains("careers::access"))
                .count()
        })
        .sum::<usize>();
    println!(
        "observability (GetOccupation {SOC} through the gateway process, c{WORKERS}, 3 × {seconds} s per mode): \
         metrics and access log off {off:.0} req/s ({}) | on {on:.0} req/s ({}; {written} access lines \
         written) | on/off {:.2}x | goal ≥ 0.95x",
        rounds(&rates[0]),
        rounds(&rates[1]),
        on / off
    );
    stack.stop().await
}
