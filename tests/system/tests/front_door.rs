//! The gateway's front door on its own, in front of upstreams that are down or hang:
//! bearer tokens that must be refused, JWKS rotation, API keys, rate, size and
//! concurrency limits, deadlines, and what every response carries.

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine;
use careers_gateway::apikeys::KeyFile;
use careers_platform::identity::{self, Identity};
use careers_testkit::{eventually, free_port, http::Response, service::TestKeys};
use common::{RunningGateway, call, gateway_settings};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::sync::mpsc;

mod common;

/// Serves `router` as a gRPC server on a free port: a fake upstream.
async fn serve_grpc(router: axum::Router) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_routes(tonic::service::Routes::from(router))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    Ok(port)
}

/// A gRPC server that accepts every call and never answers, telling the test each
/// call's `grpc-timeout`.
async fn hanging_upstream() -> anyhow::Result<(u16, mpsc::UnboundedReceiver<Option<String>>)> {
    let (seen, calls) = mpsc::unbounded_channel();
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri, headers: HeaderMap| {
        let seen = seen.clone();
        async move {
            // The gateway's own health checks of its upstreams are not what is watched.
            if uri.path().starts_with("/grpc.health") {
                return "";
            }
            let timeout = headers
                .get("grpc-timeout")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            seen.send(timeout).ok();
            tokio::time::sleep(Duration::from_secs(60)).await;
            ""
        }
    });
    let port = serve_grpc(router).await?;
    Ok((port, calls))
}

struct Door {
    port: u16,
    bearer: TestKeys,
}

impl Door {
    fn token(&self, sub: &str, role: &str) -> anyhow::Result<String> {
        Ok(self.bearer.signer.sign_for(
            &Identity {
                sub: sub.to_owned(),
                roles: vec![role.to_owned()],
                org: Some("org-1".to_owned()),
                ssc: None,
            },
            "careers-dev",
            "careers",
            Duration::from_secs(600),
        )?)
    }

    async fn send(
        &self,
        method: &'static str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> anyhow::Result<Response> {
        let headers = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        call(self.port, method, path.to_owned(), headers, body.to_vec()).await
    }

    async fn get_as(&self, token: &str, path: &str) -> anyhow::Result<Response> {
        self.send(
            "GET",
            path,
            &[("Authorization", &format!("Bearer {token}"))],
            b"",
        )
        .await
    }
}

fn code(response: &Response) -> String {
    serde_json::from_str::<Value>(&response.body).unwrap_or(Value::Null)["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or_default()
}

fn claims() -> Value {
    let now = now();
    json!({"iss": "careers-dev", "aud": "careers", "sub": "forger", "iat": now, "nbf": now,
           "exp": now + 600, "roles": ["adviser"]})
}

fn es256(pem: &[u8], kid: &str, claims: &Value) -> anyhow::Result<String> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_owned());
    Ok(jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(pem)?,
    )?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_front_door_refuses_limits_and_times_out() -> anyhow::Result<()> {
    let (hanging, mut calls) = hanging_upstream().await?;
    let closed = free_port()?;
    let (bearer, internal) = (TestKeys::new()?, TestKeys::new()?);
    let keys_dir = tempfile::tempdir()?;
    let keys_path = keys_dir.path().join("api-keys.json");
    let mut key_file = KeyFile::default();
    let (entry, api_key) = key_file.create("open data partner", 2)?;
    key_file.write(&keys_path)?;
    let mut settings = gateway_settings(
        [
            ("occupations", closed),
            ("lmi", hanging),
            ("casenotes", closed),
            ("ambassadors", closed),
        ],
        &bearer,
        &internal,
    )?;
    settings.limits.rate_per_second = 1;
    settings.limits.rate_burst = 3;
    settings.limits.max_concurrent = 1;
    settings.limits.max_body_bytes = 1024;
    settings.limits.upstream_timeout = Duration::from_secs(2);
    settings.auth.api_keys_path = keys_path.clone();
    settings.auth.api_keys_reload = Duration::from_millis(100);
    let gateway = RunningGateway::start(settings).await?;
    let door = Door {
        port: gateway.http_port,
        bearer,
    };
    let occupation = "/v1/occupations/2134";

    // No credentials: 401 with WWW-Authenticate, a request id and the security headers.
    let anonymous = door
        .send("GET", occupation, &[("x-request-id", "trace-me-1")], b"")
        .await?;
    assert_eq!(
        (anonymous.status, code(&anonymous).as_str()),
        (401, "unauthenticated")
    );
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert_eq!(anonymous.header("x-request-id"), Some("trace-me-1"));
    assert_eq!(
        serde_json::from_str::<Value>(&anonymous.body)?["request_id"],
        "trace-me-1"
    );
    assert_eq!(anonymous.header("x-content-type-options"), Some("nosniff"));
    let generated = door.send("GET", "/healthz", &[], b"").await?;
    assert!(
        generated
            .header("x-request-id")
            .is_some_and(|id| id.len() == 36)
    );

    // A valid token passes the door; the upstream is down: 503, never a hang or a 500.
    let valid = door.token("reader", "adviser")?;
    let down = door.get_as(&valid, occupation).await?;
    assert_eq!(
        (down.status, code(&down).as_str()),
        (503, "upstream_unavailable"),
        "{}",
        down.body
    );

    // The issuer rotates: a token under a key id the gateway does not hold makes it
    // re-read the JWKS, and the new key is accepted alongside the old one.
    let (rotated_pem, rotated_jwks) = identity::generate_key_pair("rotated-1")?;
    let mut jwks: Value = serde_json::from_str(&std::fs::read_to_string(&door.bearer.jwks_path)?)?;
    let rotated: Value = serde_json::from_str(&rotated_jwks)?;
    if let (Some(keys), Some(new)) = (jwks["keys"].as_array_mut(), rotated["keys"].as_array()) {
        keys.extend(new.iter().cloned());
    }
    std::fs::write(&door.bearer.jwks_path, jwks.to_string())?;
    let rotated_token = es256(rotated_pem.as_bytes(), "rotated-1", &claims())?;
    assert_eq!(door.get_as(&rotated_token, occupation).await?.status, 503);
    assert_eq!(door.get_as(&valid, occupation).await?.status, 503);

    // Every forged, stale or misdirected token: 401.
    let pem = std::fs::read(&door.bearer.pem_path)?;
    let segment =
        |value: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    let mut bad_signature = valid.clone();
    let last = if bad_signature.ends_with('A') {
        "B"
    } else {
        "A"
    };
    bad_signature.replace_range(bad_signature.len() - 1.., last);
    bad_signature.replace_range(bad_signature.len() - 6..bad_signature.len() - 1, "AAAAA");
    let with = |name: &str, value: Value| {
        let mut claims = claims();
        claims[name] = value;
        claims
    };
    let without_exp = {
        let mut claims = claims();
        claims.as_object_mut().map(|claims| claims.remove("exp"));
        claims
    };
    let stranger = TestKeys::new()?;
    let stranger_pem = std::fs::read(&stranger.pem_path)?;
    let forged = [
        (
            "alg none",
            format!(
                "{}.{}.",
                segment(&json!({"alg": "none", "typ": "JWT", "kid": "test"})),
                segment(&claims())
            ),
        ),
        (
            "HS256 keyed with the public JWKS",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(),
                &EncodingKey::from_secret(&std::fs::read(&door.bearer.jwks_path)?),
            )?,
        ),
        (
            "wrong issuer",
            es256(&pem, "test", &with("iss", json!("someone-else")))?,
        ),
        (
            "wrong audience",
            es256(&pem, "test", &with("aud", json!("elsewhere")))?,
        ),
        (
            "expired",
            es256(&pem, "test", &with("exp", json!(now() - 120)))?,
        ),
        (
            "not yet valid",
            es256(&pem, "test", &with("nbf", json!(now() + 600)))?,
        ),
        (
            "exp as a string",
            es256(&pem, "test", &with("exp", json!((now() + 600).to_string())))?,
        ),
        ("exp missing", es256(&pem, "test", &without_exp)?),
        ("bad signature", bad_signature),
        (
            "another key under the known key id",
            es256(&stranger_pem, "test", &claims())?,
        ),
        (
            "unknown key id",
            es256(&stranger_pem, "nobody-knows", &claims())?,
        ),
        ("not a JWT", "not.a.jwt".to_owned()),
    ];
    for (what, token) in &forged {
        let refused = door.get_as(token, occupation).await?;
        assert_eq!(
            (refused.status, code(&refused).as_str()),
            (401, "invalid_token"),
            "{what}: {}",
            refused.body
        );
    }

    // A role the route does not take: 403, before any upstream is asked.
    let reviewer = door.token("reviewer", "qa_reviewer")?;
    let refused = door
        .send(
            "POST",
            "/v1/clients",
            &[("Authorization", &format!("Bearer {reviewer}"))],
            b"{}",
        )
        .await?;
    assert_eq!(
        (refused.status, code(&refused).as_str()),
        (403, "forbidden")
    );

    // API keys: open data only, their own rate (2 a minute here), revocable without a
    // restart.
    let with_key = [("X-API-Key", api_key.as_str())];
    assert_eq!(
        door.send("GET", occupation, &with_key, b"").await?.status,
        503
    );
    let not_open = door.send("GET", "/v1/clients", &with_key, b"").await?;
    assert_eq!(
        (not_open.status, code(&not_open).as_str()),
        (403, "api_key_not_allowed")
    );
    assert_eq!(
        door.send("GET", occupation, &with_key, b"").await?.status,
        503
    );
    let over = door.send("GET", occupation, &with_key, b"").await?;
    assert_eq!(
        (over.status, code(&over).as_str()),
        (429, "rate_limited"),
        "{}",
        over.body
    );
    assert!(
        over.header("retry-after")
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|s| s >= 1)
    );
    let unknown = door
        .send("GET", occupation, &[("X-API-Key", "ck_unknown")], b"")
        .await?;
    assert_eq!(
        (unknown.status, code(&unknown).as_str()),
        (401, "invalid_api_key")
    );
    let (second, second_key) = key_file.create("second partner", 100)?;
    key_file.revoke(&entry.id)?;
    key_file.write(&keys_path)?;
    eventually(
        Duration::from_secs(5),
        "the key file is re-read",
        || async {
            let second = door
                .send(
                    "GET",
                    occupation,
                    &[("X-API-Key", second_key.as_str())],
                    b"",
                )
                .await?;
            Ok(second.status == 503)
        },
    )
    .await?;
    let revoked = door.send("GET", occupation, &with_key, b"").await?;
    assert_eq!(
        (revoked.status, code(&revoked).as_str()),
        (401, "invalid_api_key"),
        "{}",
        second.id
    );

    // Per-subject rate: a burst of 3, then 429 with Retry-After; another subject is
    // unaffected.
    let hasty = door.token("hasty", "adviser")?;
    for _ in 0..3 {
        assert_eq!(door.get_as(&hasty, occupation).await?.status, 503);
    }
    let limited = door.get_as(&hasty, occupation).await?;
    assert_eq!(
        (limited.status, code(&limited).as_str()),
        (429, "rate_limited")
    );
    assert!(limited.header("retry-after").is_some());
    assert_eq!(
        door.get_as(&door.token("calm", "adviser")?, occupation)
            .await?
            .status,
        503
    );

    // A body over the cap: 413 as problem+json.
    let adviser = door.token("writer", "adviser")?;
    let large = door
        .send(
            "POST",
            "/v1/clients",
            &[
                ("Authorization", &format!("Bearer {adviser}")),
                ("Content-Type", "application/json"),
            ],
            &vec![b' '; 4096],
        )
        .await?;
    assert_eq!(
        (large.status, code(&large).as_str()),
        (413, "payload_too_large"),
        "{}",
        large.body
    );
    assert_eq!(
        large.header("content-type"),
        Some("application/problem+json")
    );

    // A hanging upstream: the deadline is passed on as grpc-timeout and the caller gets
    // 504 when it passes; while that request is in flight the only slot is taken, so
    // another caller is shed with 503 at once.
    let slow_token = door.token("patient", "adviser")?;
    let slow = {
        let port = door.port;
        tokio::spawn(async move {
            call(
                port,
                "GET",
                "/v1/lmi/figures?soc_code=2134".to_owned(),
                vec![("Authorization".to_owned(), format!("Bearer {slow_token}"))],
                Vec::new(),
            )
            .await
        })
    };
    let timeout = tokio::time::timeout(Duration::from_secs(5), calls.recv())
        .await?
        .flatten();
    assert!(
        timeout.is_some_and(|value| !value.is_empty()),
        "no grpc-timeout passed on"
    );
    let shed = door
        .get_as(&door.token("crowd", "adviser")?, occupation)
        .await?;
    assert_eq!(
        (shed.status, code(&shed).as_str()),
        (503, "overloaded"),
        "{}",
        shed.body
    );
    assert_eq!(shed.header("retry-after"), Some("1"));
    let started = std::time::Instant::now();
    let slow = slow.await??;
    assert_eq!(
        (slow.status, code(&slow).as_str()),
        (504, "upstream_timeout"),
        "{}",
        slow.body
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        door.get_as(&door.token("later", "adviser")?, occupation)
            .await?
            .status,
        503
    );

    gateway.stop().await?;
    Ok(())
}

/// A gRPC server that answers UNAVAILABLE to its first `failures` calls of each method,
/// then NOT_FOUND, counting calls per method.
async fn flaky_upstream(
    failures: usize,
) -> anyhow::Result<(u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>)> {
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = calls.clone();
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let seen = seen.clone();
        async move {
            let method = uri.path().rsplit('/').next().unwrap_or_default().to_owned();
            let earlier = {
                let mut calls = seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let earlier = calls.iter().filter(|call| **call == method).count();
                if !uri.path().starts_with("/grpc.health") {
                    calls.push(method);
                }
                earlier
            };
            let status = if earlier < failures { "14" } else { "5" };
            (
                [
                    ("content-type", "application/grpc"),
                    ("grpc-status", status),
                ],
                "",
            )
        }
    });
    let port = serve_grpc(router).await?;
    Ok((port, calls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_retried_with_backoff_and_writes_are_not() -> anyhow::Result<()> {
    let (flaky, calls) = flaky_upstream(2).await?;
    let closed = free_port()?;
    let (bearer, internal) = (TestKeys::new()?, TestKeys::new()?);
    let gateway = RunningGateway::start(gateway_settings(
        [
            ("occupations", flaky),
            ("lmi", closed),
            ("casenotes", closed),
            ("ambassadors", closed),
        ],
        &bearer,
        &internal,
    )?)
    .await?;
    let door = Door {
        port: gateway.http_port,
        bearer,
    };
    let count = |method: &str| {
        calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|call| *call == method)
            .count()
    };

    // A read: UNAVAILABLE twice, then the service's own answer (404) comes through.
    let read = door
        .get_as(&door.token("reader", "adviser")?, "/v1/occupations/2134")
        .await?;
    assert_eq!(read.status, 404, "{}", read.body);
    assert_eq!(count("GetOccupation"), 3);

    // A write is sent once: UNAVAILABLE is the caller's to act on.
    let editor = door.token("editor", "catalogue_editor")?;
    let write = door
        .send(
            "PATCH",
            "/v1/occupations/2134",
            &[
                ("Authorization", &format!("Bearer {editor}")),
                ("Content-Type", "application/merge-patch+json"),
                ("If-Match", "\"1\""),
            ],
            br#"{"title":"Programmers"}"#,
        )
        .await?;
    assert_eq!(
        (write.status, code(&write).as_str()),
        (503, "upstream_unavailable"),
        "{}",
        write.body
    );
    assert_eq!(count("UpdateOccupation"), 1);

    gateway.stop().await?;
    Ok(())
}

/// One caller holding slow requests open (headers sent, the body never) gets at most
/// `limits.max_concurrent_per_caller` of them admitted; its next request is 429
/// `too_many_in_flight` at once, while another caller is served as usual. When the slow
/// requests go, the caller's slots come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_caller_holding_slow_requests_cannot_lock_out_another() -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let internal = std::sync::Arc::new(TestKeys::new()?);
    let store = careers_testkit::sqlite::TestSqlite::new()?;
    let occupations = careers_testkit::service::spawn_trusting::<careers_occupations::Occupations>(
        &store.url,
        &[],
        &internal,
    )
    .await?;
    let closed = free_port()?;
    let bearer = TestKeys::new()?;
    let mut settings = gateway_settings(
        [
            ("occupations", occupations.port),
            ("lmi", closed),
            ("casenotes", closed),
            ("ambassadors", closed),
        ],
        &bearer,
        &internal,
    )?;
    // Room for six at once in all: without a share per caller, six slow requests from
    // one caller would leave nothing for anyone else.
    settings.limits.max_concurrent = 6;
    settings.limits.max_concurrent_per_caller = 4;
    let gateway = RunningGateway::start(settings).await?;
    let door = Door {
        port: gateway.http_port,
        bearer,
    };
    let (hog, other) = (
        door.token("hog", "adviser")?,
        door.token("other", "adviser")?,
    );

    let mut slow = Vec::new();
    for _ in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", door.port)).await?;
        let head = format!(
            "POST /v1/clients HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {hog}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await?;
        slow.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = door.get_as(&hog, "/v1/occupations").await?;
    assert_eq!(
        (refused.status, code(&refused).as_str()),
        (429, "too_many_in_flight"),
        "{}",
        refused.body
    );
    assert_eq!(refused.header("retry-after"), Some("1"));
    for _ in 0..3 {
        let served = door.get_as(&other, "/v1/occupations").await?;
        assert_eq!(served.status, 200, "{}", served.body);
    }

    drop(slow);
    let dropped = std::time::Instant::now();
    eventually(Duration::from_secs(5), "the slots given back", || {
        let hog = hog.clone();
        let door = &door;
        async move { Ok(door.get_as(&hog, "/v1/occupations").await?.status == 200) }
    })
    .await?;
    println!(
        "slots back {:?} after the slow requests went",
        dropped.elapsed()
    );
    gateway.stop().await?;
    occupations.shutdown().await
}

/// Reads from `stream` until the gateway closes it; what it sent, and when it closed.
async fn until_closed(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
) -> (String, std::time::Instant) {
    use tokio::io::AsyncReadExt;
    let mut received = Vec::new();
    let mut buffer = [0; 4096];
    loop {
        match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => {
                return (
                    String::from_utf8_lossy(&received).into_owned(),
                    std::time::Instant::now(),
                );
            }
            Ok(read) => received.extend_from_slice(&buffer[..read]),
        }
    }
}

/// Slow clients are cut off within the configured times: one that never finishes its
/// headers, one that opens a connection and says nothing, and one whose body trickles in
/// below the minimum rate (408, connection closed). A body sent slowly but above the
/// minimum rate still gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_a_slow_but_steady_upload_is_not() -> anyhow::Result<()> {
    use std::time::Instant;
    use tokio::io::AsyncWriteExt;
    let internal = TestKeys::new()?;
    let closed = free_port()?;
    let bearer = TestKeys::new()?;
    let mut settings = gateway_settings(
        [
            ("occupations", closed),
            ("lmi", closed),
            ("casenotes", closed),
            ("ambassadors", closed),
        ],
        &bearer,
        &internal,
    )?;
    settings.limits.header_read_timeout = Duration::from_secs(1);
    settings.limits.body_grace = Duration::from_secs(1);
    settings.limits.body_min_bytes_per_second = 200;
    let gateway = RunningGateway::start(settings).await?;
    let door = Door {
        port: gateway.http_port,
        bearer,
    };
    let token = door.token("trickler", "adviser")?;
    let within = |started: Instant, closed: Instant, low: f64, high: f64, what: &str| {
        let took = closed.duration_since(started).as_secs_f64();
        assert!(
            (low..high).contains(&took),
            "{what}: cut after {took:.2} s, not within {low}–{high} s"
        );
    };

    // Headers begun, never finished.
    let mut half_head = tokio::net::TcpStream::connect(("127.0.0.1", door.port)).await?;
    let started = Instant::now();
    half_head
        .write_all(b"GET /v1/occupations HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await?;
    let (_, cut) = until_closed(&mut half_head).await;
    within(started, cut, 0.9, 3.0, "unfinished headers");

    // A connection that says nothing at all.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", door.port)).await?;
    let started = Instant::now();
    let (_, cut) = until_closed(&mut silent).await;
    within(started, cut, 0.9, 3.0, "a silent connection");

    // A body of 1000 bytes, one byte every 200 ms (5 bytes a second against 200): allowed
    // 1 s of grace plus 5 ms per byte sent, so cut about 1 s in.
    let mut trickle = tokio::net::TcpStream::connect(("127.0.0.1", door.port)).await?;
    let head = format!(
        "POST /v1/clients HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    );
    trickle.write_all(head.as_bytes()).await?;
    let started = Instant::now();
    let (mut reader, mut writer) = trickle.into_split();
    let dripping = tokio::spawn(async move {
        for _ in 0..1000 {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let (answer, cut) = until_closed(&mut reader).await;
    within(started, cut, 0.9, 4.0, "a trickling body");
    dripping.abort();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );

    // 3,000 bytes at about 1,000 a second (five times the minimum): slow, but it gets
    // through to the (closed) upstream: 503, not 408.
    let body = format!(r#"{{"display_name": "{}"}}"#, "x".repeat(2975));
    let mut steady = tokio::net::TcpStream::connect(("127.0.0.1", door.port)).await?;
    let head = format!(
        "POST /v1/clients HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    steady.write_all(head.as_bytes()).await?;
    for chunk in body.as_bytes().chunks(100) {
        steady.write_all(chunk).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answer, _) = until_closed(&mut steady).await;
    assert!(!answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
    gateway.stop().await
}
