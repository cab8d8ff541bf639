//! The front door of `/v1`: who is calling and whether the route is theirs
//! ([`crate::access`]), how often (per principal), and how many at once (load shedding);
//! plus what every response carries (`x-request-id`, security headers).
//!
//! Limits are per replica: with N replicas a principal may get up to N times its rate.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    extract::{MatchedPath, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use careers_platform::identity::Identity;
use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use tokio::sync::Semaphore;

use crate::{
    access::{self, Allowed},
    apikeys::ApiKeys,
    bearer::Bearer,
    problem::{Problem, with_request_id},
};

/// The header an API key comes in.
pub const API_KEY_HEADER: &str = "x-api-key";
const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The caller the front door admitted, for the handler it runs.
    static CALLER: Identity;
}

/// The admitted caller, when running under [`guard`].
pub(crate) fn admitted_caller() -> Option<Identity> {
    CALLER.try_with(Identity::clone).ok()
}

/// What the front door shares between requests.
#[derive(Debug, Clone)]
pub struct Front {
    pub bearer: Arc<Bearer>,
    pub api_keys: Arc<ApiKeys>,
    pub principals: Arc<DefaultKeyedRateLimiter<String>>,
    pub in_flight: Arc<Semaphore>,
    pub per_caller: Arc<PerCaller>,
}

/// Requests in flight per principal, at most `limits.max_concurrent_per_caller`: one
/// caller holding slow requests open cannot take every slot of `limits.max_concurrent`.
#[derive(Debug)]
pub struct PerCaller {
    limit: usize,
    held: Mutex<HashMap<String, usize>>,
}

/// One request's place in its caller's share; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    owner: Arc<PerCaller>,
    key: String,
}

impl PerCaller {
    fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            held: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for `sub`, or 429 `too_many_in_flight` when it holds its limit already.
    pub(crate) fn take(self: &Arc<Self>, sub: &str) -> Result<Slot, Problem> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = held.entry(sub.to_owned()).or_insert(0);
        if *count >= self.limit {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_in_flight",
                format!(
                    "this caller already has {} requests in flight; wait for one to finish",
                    self.limit
                ),
            )
            .retry_after(1));
        }
        *count += 1;
        Ok(Slot {
            owner: self.clone(),
            key: sub.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self
            .owner
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = held.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.key);
            }
        }
    }
}

impl Front {
    pub fn new(bearer: Bearer, api_keys: ApiKeys, limits: &crate::Limits) -> Self {
        let per_second = NonZeroU32::new(limits.rate_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.rate_burst).unwrap_or(per_second);
        Self {
            bearer: Arc::new(bearer),
            api_keys: Arc::new(api_keys),
            principals: Arc::new(RateLimiter::keyed(
                Quota::per_second(per_second).allow_burst(burst),
            )),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            per_caller: Arc::new(PerCaller::new(limits.max_concurrent_per_caller)),
        }
    }

    /// Re-reads the API keys when their file changes and forgets idle principals, every
    /// `every`, until the gateway stops.
    pub fn spawn_upkeep(&self, every: Duration, stop: tokio_util::sync::CancellationToken) {
        let (keys, principals) = (self.api_keys.clone(), self.principals.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                keys.refresh();
                principals.retain_recent();
                principals.shrink_to_fit();
            }
        });
    }
}

/// Admits a `/v1` request or answers for it: 401 without valid credentials, 403 for a
/// role or API key the route does not take, 429 over the caller's rate.
pub(crate) async fn guard(State(front): State<Front>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| access::lookup(request.method(), matched.as_str()));
    let Some(route) = route else {
        let matched = request
            .extensions()
            .get::<MatchedPath>()
            .and_then(|matched| access::methods_of(matched.as_str()));
        if let Some((path, methods)) = matched {
            // A caller's mistake: the path is served, not with this method.
            return method_not_allowed(request.method(), path, &methods);
        }
        // Fail closed: a route missing from the table is a bug, not an open door.
        tracing::error!(path = %request.uri().path(), "route missing from the access table");
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this route is not open to anyone yet",
        )
        .into_response();
    };
    let what = format!("{} {}", route.method, route.path);
    let span = tracing::Span::current();
    span.record("http.route", route.path);
    let (mut response, caller_kind) = match admit(
        &front,
        route.allowed,
        route.api_key,
        &what,
        request.headers(),
    ) {
        Ok(caller) => {
            // For the access line (and every line of this request): who.
            let caller_kind = if caller.sub.starts_with("apikey:") {
                "api_key"
            } else {
                "token"
            };
            span.record("caller.sub", caller.sub.as_str());
            span.record("caller.kind", caller_kind);
            let response = match front.per_caller.take(&caller.sub) {
                Ok(_slot) => CALLER.scope(caller, next.run(request)).await,
                Err(problem) => {
                    metrics::counter!("careers_gateway_refused_total", "reason" => "too_many_in_flight")
                        .increment(1);
                    problem.into_response()
                }
            };
            (response, caller_kind)
        }
        Err(problem) => {
            let response = problem.into_response();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                metrics::counter!("careers_gateway_refused_total", "reason" => "rate_limited")
                    .increment(1);
            }
            (response, "none")
        }
    };
    response.extensions_mut().insert(RouteLabels {
        route: route.path,
        caller_kind,
    });
    response
}

/// 405 with `Allow`, counted under the route's template.
fn method_not_allowed(
    method: &axum::http::Method,
    path: &'static str,
    methods: &[&str],
) -> Response {
    let allow = methods.join(", ");
    let mut response = Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{path} is not served with {method}; it takes {allow}"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&allow) {
        response.headers_mut().insert(header::ALLOW, value);
    }
    response.extensions_mut().insert(RouteLabels {
        route: path,
        caller_kind: "none",
    });
    response
}

/// The labels of a request's metrics, known once the route matched and the caller was
/// admitted: both bounded (a route template, a kind).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteLabels {
    pub route: &'static str,
    pub caller_kind: &'static str,
}

/// The caller, if its credentials are valid, `allowed` takes its roles (or `api_key` its
/// key) and it is within its rate; `what` names the operation in refusals.
pub(crate) fn admit(
    front: &Front,
    allowed: Allowed,
    api_key: bool,
    what: &str,
    headers: &HeaderMap,
) -> Result<Identity, Problem> {
    if let Some(token) = headers.get(header::AUTHORIZATION) {
        let token = token
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_token",
                    "Authorization must be `Bearer <token>`",
                )
            })?;
        let caller = front.bearer.verify(token).map_err(|error| {
            tracing::debug!(%error, "bearer token refused");
            Problem::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the bearer token is not valid",
            )
        })?;
        if !allowed.admits(&caller.roles) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{what} is not open to the roles in this token"),
            ));
        }
        limit(
            front.principals.check_key(&format!("sub:{}", caller.sub)),
            "this caller",
        )?;
        return Ok(caller);
    }
    if let Some(key) = headers.get(API_KEY_HEADER) {
        let key = key
            .to_str()
            .ok()
            .and_then(|key| front.api_keys.find(key))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::UNAUTHORIZED,
                    "invalid_api_key",
                    "the API key is not known or has been revoked",
                )
            })?;
        if !api_key {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "api_key_not_allowed",
                format!("API keys read open data only; {what} needs a bearer token"),
            ));
        }
        limit(key.limiter.check(), "this API key")?;
        return Ok(Identity {
            sub: format!("apikey:{}", key.id),
            roles: Vec::new(),
            org: None,
            ssc: None,
        });
    }
    Err(Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "a bearer token (Authorization: Bearer …) or an X-API-Key is required",
    ))
}

/// 429 with `Retry-After` when the limiter says no.
fn limit<T>(
    decision: Result<T, governor::NotUntil<<DefaultClock as Clock>::Instant>>,
    whom: &str,
) -> Result<(), Problem> {
    decision.map(|_| ()).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests from {whom}; retry in {} s",
                seconds.max(1)
            ),
        )
        .retry_after(seconds.max(1))
    })
}

/// 503 `overloaded` when `limits.max_concurrent` requests are already in flight: a quick
/// refusal the caller can retry beats a queue that makes everyone wait.
pub(crate) async fn shed(State(front): State<Front>, request: Request, next: Next) -> Response {
    let Ok(_permit) = front.in_flight.clone().try_acquire_owned() else {
        metrics::counter!("careers_gateway_refused_total", "reason" => "overloaded").increment(1);
        return Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "the gateway is at its limit of concurrent requests; retry shortly",
        )
        .retry_after(1)
        .into_response();
    };
    next.run(request).await
}

/// Gives every request an id (the caller's `x-request-id` when it is sane) and every
/// response that id and the security headers.
pub(crate) async fn request_id(request: Request, next: Next) -> Response {
    let id = crate::problem::request_id_or_new(request.headers());
    let mut response = with_request_id(id.clone(), async {
        as_problem(next.run(request).await).await
    })
    .await;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&id) {
        headers.insert(REQUEST_ID, value);
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
        (
            "strict-transport-security",
            "max-age=31536000; includeSubDomains",
        ),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// An error the router or an extractor wrote as plain text or without a body (413 for a
/// body over the cap, 405, 415, a path that matches nothing) rewritten as problem+json
/// like every other error.
async fn as_problem(response: Response) -> Response {
    let status = response.status();
    // Only plain text or no body: JSON answers (problems, `/readyz`) are already shaped.
    let plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|value| value.as_bytes().starts_with(b"text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    };
    let detail = if status.is_server_error() {
        "internal error".to_owned()
    } else {
        let body = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&body).trim().to_owned();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text
        }
    };
    Problem::new(status, code, detail).into_response()
}
