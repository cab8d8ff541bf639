//! Client-side load balancing over every replica of a service.
//!
//! One HTTP/2 connection behind a Kubernetes ClusterIP pins every call to one pod, so a
//! second replica would take no load. Instead an upstream is one or more URLs
//! (`http://occupations-headless:50051`, or a comma-separated list); each URL's host is
//! resolved to every address it has (a headless Service lists one per ready pod), and each
//! address gets a connection of its own. Calls go round robin over the replicas whose
//! last health check was SERVING (the service's full name: a replica whose store is down
//! takes no calls). A replica that fails a call is taken out at once and comes back when
//! a check passes. Names are resolved again every `readiness.replica_resolve_interval`
//! and replicas checked every `readiness.replica_check_interval`.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::http::{Request, Response, Uri};
use tokio_util::sync::CancellationToken;
use tonic::{body::Body, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response, health_client::HealthClient};
use tower::Service;

/// One service's replicas.
#[derive(Debug, Clone)]
pub struct Balanced {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The short name (`lmi`), for logs and errors.
    name: &'static str,
    /// The full gRPC service name whose health decides whether a replica takes calls.
    service: &'static str,
    /// (host, port) of each configured URL, resolved again on every refresh.
    targets: Vec<(String, u16)>,
    replicas: RwLock<Vec<Arc<Replica>>>,
    /// Where the round robin goes on from.
    next: AtomicUsize,
    connect_timeout: Duration,
}

/// One address of a service, with a connection of its own.
#[derive(Debug)]
pub struct Replica {
    pub addr: SocketAddr,
    channel: Channel,
    healthy: AtomicBool,
    /// Calls sent to this replica, for tests and logs.
    calls: AtomicU64,
}

/// A URL that is not `http://host:port`.
#[derive(Debug, thiserror::Error)]
#[error("{url:?} is not http://host:port[,http://host:port…]")]
pub struct BadUpstream {
    pub url: String,
}

/// A call that never reached a replica (none known, or the connection failed): reads may
/// be sent again, to another replica.
#[derive(Debug)]
pub struct NotSent(pub tonic::Status);

impl Balanced {
    /// Parses `urls` (comma-separated) and resolves them once; a name that does not
    /// resolve yet is tried again by [`Balanced::refresh`].
    pub async fn new(
        name: &'static str,
        service: &'static str,
        urls: &str,
        connect_timeout: Duration,
    ) -> Result<Self, BadUpstream> {
        let targets = urls
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(|url| {
                let uri: Uri = url.parse().map_err(|_| BadUpstream { url: url.into() })?;
                match (uri.scheme_str(), uri.host(), uri.port_u16()) {
                    (Some("http"), Some(host), Some(port)) if !host.is_empty() => {
                        Ok((host.trim_matches(['[', ']']).to_owned(), port))
                    }
                    _ => Err(BadUpstream { url: url.into() }),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        if targets.is_empty() {
            return Err(BadUpstream { url: urls.into() });
        }
        let balanced = Self {
            inner: Arc::new(Inner {
                name,
                service,
                targets,
                replicas: RwLock::new(Vec::new()),
                next: AtomicUsize::new(0),
                connect_timeout,
            }),
        };
        balanced.resolve().await;
        Ok(balanced)
    }

    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    pub fn service(&self) -> &'static str {
        self.inner.service
    }

    /// The replicas known now.
    pub fn replicas(&self) -> Vec<Arc<Replica>> {
        self.inner
            .replicas
            .read()
            .map(|replicas| replicas.clone())
            .unwrap_or_default()
    }

    /// Resolves every target again: new addresses become replicas (taking calls until a
    /// check says otherwise), vanished ones are dropped. A failed lookup changes nothing.
    async fn resolve(&self) {
        let mut found = BTreeSet::new();
        for (host, port) in &self.inner.targets {
            match tokio::net::lookup_host((host.as_str(), *port)).await {
                Ok(addrs) => found.extend(addrs),
                Err(error) => {
                    tracing::warn!(upstream = self.inner.name, %host, %error, "cannot resolve");
                    return;
                }
            }
        }
        let Ok(mut replicas) = self.inner.replicas.write() else {
            return;
        };
        let before = replicas.len();
        replicas.retain(|replica| found.contains(&replica.addr));
        let removed = before - replicas.len();
        for addr in found {
            if replicas.iter().any(|replica| replica.addr == addr) {
                continue;
            }
            let Ok(endpoint) = Channel::from_shared(format!("http://{addr}")) else {
                continue;
            };
            replicas.push(Arc::new(Replica {
                addr,
                channel: endpoint
                    .connect_timeout(self.inner.connect_timeout)
                    .tcp_nodelay(true)
                    .connect_lazy(),
                healthy: AtomicBool::new(true),
                calls: AtomicU64::new(0),
            }));
            tracing::info!(upstream = self.inner.name, %addr, "replica added");
        }
        if removed > 0 {
            tracing::info!(upstream = self.inner.name, removed, "replicas removed");
        }
    }

    /// Asks every replica for the service's health; SERVING within `timeout` takes calls.
    async fn check(&self, timeout: Duration) {
        let checks = self.replicas().into_iter().map(|replica| async move {
            let serving = serving(&replica.channel, self.inner.service, timeout).await;
            let was = replica.healthy.swap(serving, Ordering::Relaxed);
            if was != serving {
                tracing::info!(
                    upstream = self.inner.name,
                    addr = %replica.addr,
                    serving,
                    "replica health changed"
                );
            }
        });
        futures::future::join_all(checks).await;
    }

    /// Whether any replica answers SERVING for the service now (a live check, for
    /// `/readyz`).
    pub async fn any_serving(&self, timeout: Duration) -> bool {
        let checks = self.replicas().into_iter().map(|replica| async move {
            serving(&replica.channel, self.inner.service, timeout).await
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .any(|serving| serving)
    }

    /// The next replica round robin, preferring healthy ones; with none healthy, any (a
    /// check may be stale, and failing fast beats refusing).
    fn pick(&self) -> Option<Arc<Replica>> {
        let replicas = self.inner.replicas.read().ok()?;
        if replicas.is_empty() {
            return None;
        }
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let count = replicas.len();
        (0..count)
            .map(|offset| &replicas[(start + offset) % count])
            .find(|replica| replica.healthy.load(Ordering::Relaxed))
            .or_else(|| replicas.get(start % count))
            .cloned()
    }

    /// Sends `request` to one replica. A connection failure takes that replica out until
    /// its next passing check, and comes back as [`NotSent`].
    pub async fn send(&self, request: Request<Body>) -> Result<Response<Body>, NotSent> {
        let Some(replica) = self.pick() else {
            return Err(NotSent(tonic::Status::unavailable(format!(
                "no replica of {} is known",
                self.inner.name
            ))));
        };
        replica.calls.fetch_add(1, Ordering::Relaxed);
        let mut channel = replica.channel.clone();
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let started = std::time::Instant::now();
        let answer = match ready_call(&mut channel, request).await {
            Ok(response) => {
                if unavailable(&response) {
                    // Stopping, or its store is down: no more calls until a check passes.
                    replica.healthy.store(false, Ordering::Relaxed);
                }
                Ok(response)
            }
            Err(error) => {
                replica.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(upstream = self.inner.name, addr = %replica.addr, %error, "replica unreachable");
                let status = tonic::Status::from_error(error.into());
                // A connection torn as the replica stops (an HTTP/2 error) reads as
                // INTERNAL or UNKNOWN: it is the replica going away, not a fault in it.
                Err(NotSent(
                    if matches!(status.code(), tonic::Code::Internal | tonic::Code::Unknown) {
                        tonic::Status::unavailable(format!(
                            "{} went away: {}",
                            self.inner.name,
                            status.message()
                        ))
                    } else {
                        status
                    },
                ))
            }
        };
        self.count(method, started.elapsed(), &answer);
        answer
    }

    /// `careers_gateway_upstream_requests_total` and `…_duration_seconds`. The code is the
    /// answer's header (an error before any message, as every unary error is) or OK; a
    /// method the service does not have (UNIMPLEMENTED: the gRPC proxy passes on what
    /// callers name) is counted as `unknown`, so no caller can mint series.
    fn count(&self, method: String, elapsed: Duration, answer: &Result<Response<Body>, NotSent>) {
        let code = match answer {
            Ok(response) => response
                .headers()
                .get("grpc-status")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<i32>().ok())
                .map_or(tonic::Code::Ok, tonic::Code::from_i32),
            Err(NotSent(status)) => status.code(),
        };
        let method = if code == tonic::Code::Unimplemented {
            "unknown".to_owned()
        } else {
            method
        };
        let service = self.inner.name;
        metrics::histogram!("careers_gateway_upstream_duration_seconds",
            "service" => service, "method" => method.clone())
        .record(elapsed.as_secs_f64());
        metrics::counter!("careers_gateway_upstream_requests_total",
            "service" => service, "method" => method, "code" => format!("{code:?}"))
        .increment(1);
    }
}

impl Replica {
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

/// UNAVAILABLE in a trailers-only answer (what a refusing or stopping server sends).
pub(crate) fn unavailable(response: &Response<Body>) -> bool {
    let unavailable = (tonic::Code::Unavailable as i32).to_string();
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == unavailable.as_bytes())
}

/// Waits for the channel to take a call, then makes it.
async fn ready_call(
    channel: &mut Channel,
    request: Request<Body>,
) -> Result<Response<Body>, tonic::transport::Error> {
    futures::future::poll_fn(|context| channel.poll_ready(context)).await?;
    channel.call(request).await
}

async fn serving(channel: &Channel, service: &str, timeout: Duration) -> bool {
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    let answer =
        tokio::time::timeout(timeout, HealthClient::new(channel.clone()).check(request)).await;
    matches!(answer, Ok(Ok(ref response))
        if response.get_ref().status() == health_check_response::ServingStatus::Serving)
}

/// Keeps every upstream's replicas current until `stop`: checks each replica every
/// `check_every`, resolves names again every `resolve_every`.
pub fn spawn_refresh(
    upstreams: Vec<Balanced>,
    check_every: Duration,
    resolve_every: Duration,
    timeout: Duration,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut last_resolve = tokio::time::Instant::now();
        loop {
            if last_resolve.elapsed() >= resolve_every {
                last_resolve = tokio::time::Instant::now();
                for upstream in &upstreams {
                    upstream.resolve().await;
                }
            }
            futures::future::join_all(upstreams.iter().map(|upstream| upstream.check(timeout)))
                .await;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(check_every) => {}
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn urls_are_parsed_and_literal_addresses_need_no_lookup() -> Result<(), BadUpstream> {
        let balanced = Balanced::new(
            "occupations",
            "careers.occupations.v1.OccupationsService",
            "http://127.0.0.1:50061, http://[::1]:50062",
            Duration::from_secs(1),
        )
        .await?;
        let addrs: Vec<String> = balanced
            .replicas()
            .iter()
            .map(|replica| replica.addr.to_string())
            .collect();
        assert_eq!(addrs, ["127.0.0.1:50061", "[::1]:50062"]);
        for bad in [
            "",
            "127.0.0.1:50061",
            "https://host:1",
            "http://host",
            "http://:1",
        ] {
            assert!(
                Balanced::new("lmi", "x", bad, Duration::from_secs(1))
                    .await
                    .is_err(),
                "{bad:?} is refused"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn calls_go_round_robin_and_skip_an_unhealthy_replica() -> Result<(), BadUpstream> {
        let balanced = Balanced::new(
            "occupations",
            "x",
            "http://127.0.0.1:1,http://127.0.0.1:2,http://127.0.0.1:3",
            Duration::from_secs(1),
        )
        .await?;
        let picks = |count: usize| -> Vec<u16> {
            (0..count)
                .filter_map(|_| balanced.pick().map(|replica| replica.addr.port()))
                .collect()
        };
        assert_eq!(picks(6), [1, 2, 3, 1, 2, 3]);
        balanced.replicas()[1]
            .healthy
            .store(false, Ordering::Relaxed);
        let seen = picks(6);
        assert!(!seen.contains(&2), "{seen:?}");
        assert!(seen.contains(&1) && seen.contains(&3), "{seen:?}");
        for replica in balanced.replicas() {
            replica.healthy.store(false, Ordering::Relaxed);
        }
        assert_eq!(picks(3).len(), 3, "with none healthy, still one to try");
        Ok(())
    }
}
