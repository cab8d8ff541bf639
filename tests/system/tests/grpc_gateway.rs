//! The services' gRPC APIs on the gateway's gRPC port: native gRPC with a bearer token
//! or an API key, and gRPC-Web as a browser sends it (HTTP/1.1, a CORS preflight from an
//! allowed origin, `application/grpc-web-text` frames), then through Connect-ES itself
//! (`tests/grpc-web`, run by node).

use std::time::Duration;

use base64::Engine;
use careers_gateway::apikeys::KeyFile;
use careers_lmi::Lmi;
use careers_occupations::Occupations;
use careers_platform::identity::Identity;
use careers_proto::careers::{
    lmi::v1::{ListReviewRequest, lmi_service_client::LmiServiceClient},
    occupations::v1::{
        GetOccupationRequest, ListOccupationsRequest,
        occupations_service_client::OccupationsServiceClient,
    },
};
use careers_testkit::{
    free_port,
    service::{TestKeys, spawn_trusting},
    sqlite::TestSqlite,
};
use common::{RunningGateway, call, gateway_settings};
use tonic::{Code, Request, transport::Channel};
use tonic_types::StatusExt;

mod common;

const ORIGIN: &str = "https://advisers.example.org";

fn with<T>(header: &str, value: &str, message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request.metadata_mut().insert(
        tonic::metadata::MetadataKey::from_bytes(header.as_bytes())?,
        value.parse()?,
    );
    Ok(request)
}

/// A body sent with `Transfer-Encoding: chunked`, joined.
fn unchunk(body: &str) -> String {
    let mut rest = body;
    let mut joined = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        joined.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    joined
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_grpc_apis_are_served_on_the_gateway() -> anyhow::Result<()> {
    let internal = std::sync::Arc::new(TestKeys::new()?);
    let stores = [TestSqlite::new()?, TestSqlite::new()?];
    let occupations = spawn_trusting::<Occupations>(&stores[0].url, &[], &internal).await?;
    let lmi = spawn_trusting::<Lmi>(&stores[1].url, &[], &internal).await?;
    let bearer = TestKeys::new()?;
    let keys_dir = tempfile::tempdir()?;
    let mut key_file = KeyFile::default();
    let (_, api_key) = key_file.create("grpc partner", 1_000)?;
    key_file.write(&keys_dir.path().join("keys.json"))?;
    let closed = free_port()?;
    let mut settings = gateway_settings(
        [
            ("occupations", occupations.port),
            ("lmi", lmi.port),
            ("casenotes", closed),
            ("ambassadors", closed),
        ],
        &bearer,
        &internal,
    )?;
    settings.auth.api_keys_path = keys_dir.path().join("keys.json");
    settings.cors.allowed_origins = vec![ORIGIN.to_owned()];
    let gateway = RunningGateway::start(settings).await?;
    let (grpc_port, http_port) = (gateway.grpc_port, gateway.http_port);
    let token = |role: &str| {
        bearer.signer.sign_for(
            &Identity {
                sub: format!("{role}-1"),
                roles: vec![role.to_owned()],
                org: None,
                ssc: None,
            },
            "careers-dev",
            "careers",
            Duration::from_secs(600),
        )
    };
    let adviser = format!("Bearer {}", token("adviser")?);
    let channel = Channel::from_shared(format!("http://127.0.0.1:{grpc_port}"))?
        .connect()
        .await?;
    let mut catalogue = OccupationsServiceClient::new(channel.clone());

    // A bearer token: the call reaches occupations and its answer comes back.
    let listed = catalogue
        .list_occupations(with(
            "authorization",
            &adviser,
            ListOccupationsRequest::default(),
        )?)
        .await?;
    assert!(listed.get_ref().items.is_empty(), "an empty catalogue");
    // occupations' own validation, with its contract code.
    let malformed = catalogue
        .get_occupation(with(
            "authorization",
            &adviser,
            GetOccupationRequest {
                soc_code: "abc".into(),
            },
        )?)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("a malformed SOC code was accepted"))?;
    assert_eq!(malformed.code(), Code::InvalidArgument, "{malformed:?}");
    // No credentials, or an internal token forged by the caller: refused here.
    let anonymous = catalogue
        .list_occupations(ListOccupationsRequest::default())
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(anonymous, Some(Code::Unauthenticated));
    let forged = internal.signer.sign(&Identity {
        sub: "forger".into(),
        roles: vec!["qa_reviewer".into()],
        org: None,
        ssc: None,
    })?;
    let spoofed = LmiServiceClient::new(channel.clone())
        .list_review(with(
            "x-careers-identity",
            &forged,
            ListReviewRequest::default(),
        )?)
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(spoofed, Some(Code::Unauthenticated));
    // The service checks the role: an adviser may not read the review queue.
    let review = LmiServiceClient::new(channel.clone())
        .list_review(with(
            "authorization",
            &adviser,
            ListReviewRequest::default(),
        )?)
        .await
        .err()
        .map(|status| status.code());
    assert_eq!(review, Some(Code::PermissionDenied));
    // An API key reads open data, and nothing else.
    catalogue
        .list_occupations(with(
            "x-api-key",
            &api_key,
            ListOccupationsRequest::default(),
        )?)
        .await?;
    let closed_to_keys = LmiServiceClient::new(channel)
        .list_review(with("x-api-key", &api_key, ListReviewRequest::default())?)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an API key read the review queue"))?;
    assert_eq!(closed_to_keys.code(), Code::PermissionDenied);
    assert_eq!(
        closed_to_keys
            .get_details_error_info()
            .map(|info| info.reason),
        Some("api_key_not_allowed".to_owned())
    );

    // gRPC-Web from a browser: the preflight, then the call.
    let path = "/careers.occupations.v1.OccupationsService/GetOccupation";
    let preflight = |origin: &'static str| {
        call(
            grpc_port,
            "OPTIONS",
            path.to_owned(),
            vec![
                ("Origin".into(), origin.into()),
                ("Access-Control-Request-Method".into(), "POST".into()),
                (
                    "Access-Control-Request-Headers".into(),
                    "authorization,content-type,x-grpc-web".into(),
                ),
            ],
            Vec::new(),
        )
    };
    let allowed = preflight(ORIGIN).await?;
    assert_eq!(allowed.header("access-control-allow-origin"), Some(ORIGIN));
    let foreign = preflight("https://elsewhere.example.com").await?;
    assert_eq!(foreign.header("access-control-allow-origin"), None);
    // The HTTP API shares the allow-list.
    let http_preflight = call(
        http_port,
        "OPTIONS",
        "/v1/occupations".to_owned(),
        vec![
            ("Origin".into(), ORIGIN.into()),
            ("Access-Control-Request-Method".into(), "GET".into()),
        ],
        Vec::new(),
    )
    .await?;
    assert_eq!(
        http_preflight.header("access-control-allow-origin"),
        Some(ORIGIN)
    );

    let frame = |message: &[u8]| {
        let mut frame = vec![0_u8];
        frame.extend_from_slice(&u32::try_from(message.len()).unwrap_or(0).to_be_bytes());
        frame.extend_from_slice(message);
        base64::engine::general_purpose::STANDARD.encode(frame)
    };
    let web_call = |message: Vec<u8>| {
        let adviser = adviser.clone();
        let body = frame(&message).into_bytes();
        async move {
            call(
                grpc_port,
                "POST",
                path.to_owned(),
                vec![
                    ("Origin".into(), ORIGIN.into()),
                    ("Content-Type".into(), "application/grpc-web-text".into()),
                    ("Accept".into(), "application/grpc-web-text".into()),
                    ("X-Grpc-Web".into(), "1".into()),
                    ("Authorization".into(), adviser),
                ],
                body,
            )
            .await
        }
    };
    // GetOccupationRequest { soc_code: "abc" }: field 1, length 3.
    let bad = web_call(b"\x0a\x03abc".to_vec()).await?;
    assert_eq!(bad.status, 200, "{bad:?}");
    assert_eq!(bad.header("access-control-allow-origin"), Some(ORIGIN));
    let trailers = if let Some(status) = bad.header("grpc-status") {
        format!("grpc-status:{status}")
    } else {
        let text = unchunk(&bad.body);
        let bytes = base64::engine::general_purpose::STANDARD.decode(text.trim())?;
        String::from_utf8_lossy(&bytes).into_owned()
    };
    assert!(
        trailers.contains("grpc-status:3"),
        "INVALID_ARGUMENT expected: {trailers:?} {bad:?}"
    );

    // The same through Connect-ES, the gRPC-Web client browsers use (over fetch), reading
    // the service from the descriptor set: a list answers, a bad SOC code is
    // INVALID_ARGUMENT.
    let descriptors = keys_dir.path().join("careers.binpb");
    std::fs::write(&descriptors, careers_proto::FILE_DESCRIPTOR_SET)?;
    let client = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../grpc-web");
    anyhow::ensure!(
        client.join("node_modules").exists(),
        "Connect-ES is missing: run scripts/tools.sh connect-es (make test does)"
    );
    let bare_token = adviser.trim_start_matches("Bearer ").to_owned();
    let connect = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(client.join("client.mjs"))
            .arg(descriptors)
            .arg(format!("http://127.0.0.1:{grpc_port}"))
            .arg(bare_token)
            .output()
    })
    .await??;
    let printed = String::from_utf8_lossy(&connect.stdout).into_owned();
    assert!(
        connect.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&connect.stderr)
    );
    let outcome: serde_json::Value = serde_json::from_str(printed.trim())?;
    assert_eq!(outcome["list"], "ok", "{outcome}");
    assert_eq!(outcome["items"], 0, "{outcome}");
    assert_eq!(outcome["malformed"], "InvalidArgument", "{outcome}");

    // A re-served service's health name on the gateway's port follows its upstream.
    careers_testkit::grpc::wait_for_health(
        grpc_port,
        careers_proto::service_names::OCCUPATIONS,
        tonic_health::pb::health_check_response::ServingStatus::Serving,
        Duration::from_secs(10),
    )
    .await?;
    careers_testkit::grpc::wait_for_health(
        grpc_port,
        careers_proto::service_names::CASENOTES,
        tonic_health::pb::health_check_response::ServingStatus::NotServing,
        Duration::from_secs(10),
    )
    .await?;

    gateway.stop().await?;
    occupations.shutdown().await?;
    lmi.shutdown().await
}
