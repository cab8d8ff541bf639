//! The SSC registry through the gateway, on SQLite and on PostgreSQL: operators list,
//! register and replace SSCs; a new SSC's footprint decides what it may submit.

use careers_testkit::{postgres, sqlite::TestSqlite};
use common::{auth, call};
use serde_json::{Value, json};

mod common;

async fn send(
    port: u16,
    token: &str,
    method: &'static str,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let response = call(
        port,
        method,
        path.to_owned(),
        auth(token, "application/json"),
        body.map(|body| body.to_string().into_bytes())
            .unwrap_or_default(),
    )
    .await?;
    Ok((
        response.status,
        serde_json::from_str(&response.body).unwrap_or(Value::Null),
    ))
}

fn pay_row(soc_code: &str) -> Value {
    json!({"soc_code": soc_code, "region": "K02000001", "period": "2024",
           "measure": "median_annual_pay", "value": 40000, "unit": "GBP", "source": "registry test"})
}

async fn registry(occupations_url: String, lmi_url: String) -> anyhow::Result<()> {
    let stack = common::Stack::start(occupations_url, lmi_url).await?;
    let port = stack.gateway_port;
    let operator = stack.bearer(&["operator"], None)?;
    let adviser = stack.bearer(&["adviser"], None)?;
    let energy = stack.bearer(&["ssc_publisher"], Some("energy"))?;

    let (status, _) = send(port, &adviser, "GET", "/v1/lmi/sscs", None).await?;
    assert_eq!(status, 403);
    let (status, first) = send(port, &operator, "GET", "/v1/lmi/sscs?limit=2", None).await?;
    assert_eq!(status, 200, "{first}");
    let ids: Vec<&str> = first["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str())
        .collect();
    assert_eq!(ids, ["dev", "digital"]);
    let cursor = first["next_cursor"].as_str().unwrap_or_default();
    let (_, second) = send(
        port,
        &operator,
        "GET",
        &format!("/v1/lmi/sscs?limit=2&cursor={cursor}"),
        None,
    )
    .await?;
    let ids: Vec<&str> = second["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item["id"].as_str())
        .collect();
    assert_eq!(ids, ["health", "ons"]);

    // Register: checked by field; an id taken is 409.
    let (status, bad) = send(
        port,
        &operator,
        "POST",
        "/v1/lmi/sscs",
        Some(json!({"id": "Energy", "name": "", "footprint": "minor:8"})),
    )
    .await?;
    let fields: Vec<&str> = bad["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error["field"].as_str())
        .collect();
    assert_eq!(
        (status, fields),
        (400, vec!["id", "name", "footprint"]),
        "{bad}"
    );
    let entry = json!({"id": "energy", "name": "Energy SSC", "footprint": "minor:812;unit:2129"});
    let (status, created) =
        send(port, &operator, "POST", "/v1/lmi/sscs", Some(entry.clone())).await?;
    assert_eq!(
        (status, &created["change_rule"]),
        (201, &json!(true)),
        "{created}"
    );
    let (status, taken) = send(port, &operator, "POST", "/v1/lmi/sscs", Some(entry)).await?;
    assert_eq!(
        (status, &taken["code"]),
        (409, &json!("already_exists")),
        "{taken}"
    );

    // Its footprint decides what it may submit.
    let submission =
        |key: &str| json!({"submission_key": key, "rows": [pay_row("2129"), pay_row("2134")]});
    let (status, answer) = send(
        port,
        &energy,
        "POST",
        "/v1/lmi/submissions",
        Some(submission("one")),
    )
    .await?;
    assert_eq!(
        (status, &answer["counts"]["accepted"]),
        (201, &json!(1)),
        "{answer}"
    );
    assert_eq!(answer["report"][0]["rule"], "footprint", "{answer}");

    // Replaced: the whole entry; the path names it.
    let (status, replaced) = send(
        port,
        &operator,
        "PUT",
        "/v1/lmi/sscs/energy",
        Some(json!({"name": "Energy and Utilities SSC", "footprint": "all"})),
    )
    .await?;
    assert_eq!(
        (status, &replaced["footprint"]),
        (200, &json!("all")),
        "{replaced}"
    );
    let (_, fetched) = send(port, &operator, "GET", "/v1/lmi/sscs/energy", None).await?;
    assert_eq!(fetched["name"], "Energy and Utilities SSC");
    let (status, answer) = send(
        port,
        &energy,
        "POST",
        "/v1/lmi/submissions",
        Some(submission("two")),
    )
    .await?;
    assert_eq!(
        (status, &answer["counts"]["rejected"]),
        (201, &json!(0)),
        "{answer}"
    );
    let (status, _) = send(
        port,
        &operator,
        "PUT",
        "/v1/lmi/sscs/nobody",
        Some(json!({"name": "Nobody", "footprint": "all"})),
    )
    .await?;
    assert_eq!(status, 404);
    let (status, mismatch) = send(
        port,
        &operator,
        "PUT",
        "/v1/lmi/sscs/energy",
        Some(json!({"id": "ons", "name": "x", "footprint": "all"})),
    )
    .await?;
    assert_eq!(
        (status, &mismatch["errors"][0]["field"]),
        (400, &json!("id")),
        "{mismatch}"
    );

    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_the_ssc_registry_on_sqlite() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    registry(occupations.url.clone(), lmi.url.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_the_ssc_registry_on_postgres() -> anyhow::Result<()> {
    let (occupations, lmi) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    registry(occupations.url.clone(), lmi.url.clone()).await
}
