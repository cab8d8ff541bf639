//! The first flow through the gateway, on SQLite and on PostgreSQL with a real
//! nats-server: an SSC submits one good and one bad row over HTTP/JSON, and the good
//! figure shows on the occupation; tokens, replays and bad input answer as CONTRACT.md says.

use std::time::{Duration, Instant};

use careers_eventbus::testing::count;
use careers_testkit::{eventually, postgres, sqlite::TestSqlite};
use common::{auth, call};

mod common;

const GOOD: &str = r#"{"soc_code": "2134", "region": "K02000001", "period": "2024", "measure": "median_annual_pay",
  "breakdown": "full_time", "value": 54669, "unit": "GBP", "source": "ONS ASHE 2024 provisional, table 14"}"#;

async fn first_flow(occupations_url: String, lmi_url: String) -> anyhow::Result<()> {
    let stack = common::Stack::start(occupations_url, lmi_url).await?;
    let port = stack.gateway_port;
    let lmi_db = &stack.lmi_db;

    let publisher = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let body = format!(
        r#"{{"submission_key": "ashe-2024", "rows": [{GOOD}, {}]}}"#,
        GOOD.replace("2134", "9999")
    );
    let submitted = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&publisher, "application/json"),
        body.clone().into_bytes(),
    )
    .await?;
    assert_eq!(submitted.status, 201, "{}", submitted.body);
    let answer: serde_json::Value = serde_json::from_str(&submitted.body)?;
    assert_eq!(answer["counts"]["accepted"], 1);
    assert_eq!(answer["counts"]["rejected"], 1);
    assert_eq!(answer["report"][0]["row"], 2);
    assert_eq!(answer["report"][0]["field"], "soc_code");
    let accepted_at = Instant::now();

    // The good figure shows on the occupation within a second.
    let reader = stack.bearer(&["adviser"], None)?;
    let shown = || async {
        let occupation = call(
            port,
            "GET",
            "/v1/occupations/2134".into(),
            auth(&reader, "application/json"),
            Vec::new(),
        )
        .await?;
        let json: serde_json::Value = serde_json::from_str(&occupation.body)?;
        Ok(json["lmi"]["figures"].as_array().is_some_and(|figures| {
            figures.iter().any(|figure| {
                figure["value"] == 54669.0
                    && figure["source"] == "ONS ASHE 2024 provisional, table 14"
            })
        }))
    };
    eventually(
        Duration::from_secs(1),
        "the figure on the occupation",
        shown,
    )
    .await?;
    println!(
        "submission to visible on the occupation: {:?}",
        accepted_at.elapsed()
    );

    // The same key again: the first answer, replayed, recorded once.
    let again = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&publisher, "application/json"),
        body.into_bytes(),
    )
    .await?;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&again.body)?["id"],
        answer["id"]
    );

    // Tokens and roles.
    let one_row = format!(r#"{{"submission_key": "k2", "rows": [{GOOD}]}}"#).into_bytes();
    let anonymous = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        vec![("Content-Type".into(), "application/json".into())],
        one_row.clone(),
    )
    .await?;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        anonymous.header("content-type"),
        Some("application/problem+json")
    );
    let adviser = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&reader, "application/json"),
        one_row.clone(),
    )
    .await?;
    assert_eq!(adviser.status, 403, "{}", adviser.body);
    let stranger = stack.bearer(&["ssc_publisher"], Some("nosuch"))?;
    let unknown = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&stranger, "application/json"),
        one_row.clone(),
    )
    .await?;
    assert_eq!(unknown.status, 403);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&unknown.body)?["code"],
        "unknown_ssc"
    );

    // Bad input: 400, 400, 415, 413, and nothing recorded.
    let malformed = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&publisher, "application/json"),
        b"{\"rows\": [".to_vec(),
    )
    .await?;
    assert_eq!(malformed.status, 400);
    let wrong_header = call(
        port,
        "POST",
        "/v1/lmi/submissions?submission_key=csv1".into(),
        auth(&publisher, "text/csv"),
        b"soc,region\n2134,K02000001\n".to_vec(),
    )
    .await?;
    assert_eq!(wrong_header.status, 400, "{}", wrong_header.body);
    let wrong_type = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&publisher, "text/plain"),
        one_row.clone(),
    )
    .await?;
    assert_eq!(wrong_type.status, 415);
    let oversized = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&publisher, "application/json"),
        vec![b' '; 9 * 1024 * 1024],
    )
    .await?;
    assert_eq!(oversized.status, 413);
    assert_eq!(count(lmi_db, "SELECT COUNT(*) FROM submissions").await?, 1);

    // The digital SSC may submit for programmers (minor group 213), not for doctors (2211).
    let digital = stack.bearer(&["ssc_publisher"], Some("digital"))?;
    let outside = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&digital, "application/json"),
        format!(
            r#"{{"submission_key": "footprint", "rows": [{GOOD}, {}]}}"#,
            GOOD.replace("2134", "2211")
        )
        .into_bytes(),
    )
    .await?;
    assert_eq!(outside.status, 201, "{}", outside.body);
    let answer: serde_json::Value = serde_json::from_str(&outside.body)?;
    assert_eq!(answer["counts"]["accepted"], 1);
    assert_eq!(
        (
            &answer["report"][0]["row"],
            &answer["report"][0]["field"],
            &answer["report"][0]["rule"]
        ),
        (&2.into(), &"soc_code".into(), &"footprint".into()),
        "{answer}"
    );

    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_flow_through_the_gateway_on_sqlite() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    first_flow(occupations.url.clone(), lmi.url.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_flow_through_the_gateway_on_postgres() -> anyhow::Result<()> {
    let (occupations, lmi) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    first_flow(occupations.url.clone(), lmi.url.clone()).await
}
