//! The composed occupation profile through the gateway: occupation, LMI and nearby
//! ambassadors at once; with lmi or ambassadors down the rest still comes back, the
//! missing part marked; with occupations down, 503.

use std::time::Duration;

use careers_ambassadors::{Ambassadors, Migrator as AmbassadorsMigrator, store};
use careers_lmi::Lmi;
use careers_occupations::Occupations;
use careers_platform::{Service, identity::Identity};
use careers_testkit::{
    free_port,
    service::{TestKeys, spawn_trusting},
    sqlite::TestSqlite,
};
use common::{RunningGateway, call, gateway_settings};
use sea_orm::Database;
use sea_orm_migration::MigratorTrait;
use serde_json::{Value, json};

mod common;

fn day(offset: u64) -> String {
    chrono::Utc::now()
        .date_naive()
        .checked_add_days(chrono::Days::new(offset))
        .map(|date| date.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_composes_and_degrades_part_by_part() -> anyhow::Result<()> {
    let internal = std::sync::Arc::new(TestKeys::new()?);
    let stores = [TestSqlite::new()?, TestSqlite::new()?, TestSqlite::new()?];
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
    let occupations = spawn_trusting::<Occupations>(&stores[0].url, &[], &internal).await?;
    Occupations::seed(&Database::connect(stores[0].url.as_str()).await?, &seeds).await?;
    let lmi = spawn_trusting::<Lmi>(&stores[1].url, &[], &internal).await?;
    let ambassadors_db = Database::connect(stores[2].url.as_str()).await?;
    AmbassadorsMigrator::up(&ambassadors_db, None).await?;
    store::apply_occupation(&ambassadors_db, "2134", 1, "21", "computing").await?;
    let ambassadors = spawn_trusting::<Ambassadors>(&stores[2].url, &[], &internal).await?;
    let bearer = TestKeys::new()?;
    let gateway = RunningGateway::start(gateway_settings(
        [
            ("occupations", occupations.port),
            ("lmi", lmi.port),
            ("casenotes", free_port()?),
            ("ambassadors", ambassadors.port),
        ],
        &bearer,
        &internal,
    )?)
    .await?;
    let port = gateway.http_port;
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
    let send = |token: String, method: &'static str, path: &str, body: Option<Value>| {
        let path = path.to_owned();
        async move {
            let response = call(
                port,
                method,
                path,
                vec![
                    ("Authorization".to_owned(), format!("Bearer {token}")),
                    ("Content-Type".to_owned(), "application/json".to_owned()),
                ],
                body.map(|body| body.to_string().into_bytes())
                    .unwrap_or_default(),
            )
            .await?;
            anyhow::Ok((
                response.status,
                serde_json::from_str::<Value>(&response.body).unwrap_or(Value::Null),
            ))
        }
    };

    // One ambassador in 2134 based in M1 who travels 25 km.
    let registration = json!({
        "name": "Ada Example", "employer": "Example Software Ltd", "soc_code": "2134",
        "subjects": ["computing"], "postcode_district": "M1", "travel_radius_km": 25.0,
        "availability": {"weekdays": ["tuesday"], "ranges": [{"from": day(0), "to": day(90)}]},
        "monthly_capacity": 1, "dbs_checked_on": day(0), "training": ["safeguarding"]
    });
    let (status, created) = send(
        token("ambassador_coordinator")?,
        "POST",
        "/v1/ambassadors",
        Some(registration),
    )
    .await?;
    assert_eq!(status, 201, "{created}");

    let adviser = token("adviser")?;
    let (status, profile) = send(
        adviser.clone(),
        "GET",
        "/v1/occupations/2134/profile?postcode_district=m21",
        None,
    )
    .await?;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["occupation"]["soc_code"], "2134");
    assert!(profile["lmi"]["latest"].is_array() && profile["lmi"]["trend"].is_array());
    assert_eq!(
        profile["ambassadors"],
        json!({"available_nearby": 1, "postcode_district": "M21"})
    );
    assert_eq!(profile["unavailable"], json!([]));
    // Far away, nobody; an unknown district is the caller's mistake.
    let (_, far) = send(
        adviser.clone(),
        "GET",
        "/v1/occupations/2134/profile?postcode_district=AB10",
        None,
    )
    .await?;
    assert_eq!(far["ambassadors"]["available_nearby"], 0);
    let (status, problem) = send(
        adviser.clone(),
        "GET",
        "/v1/occupations/2134/profile?postcode_district=ZZ99",
        None,
    )
    .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("unknown_postcode_district"))
    );
    let (status, _) = send(adviser.clone(), "GET", "/v1/occupations/9999/profile", None).await?;
    assert_eq!(status, 404);
    let (status, problem) = send(
        adviser.clone(),
        "GET",
        "/v1/occupations/2134/profile?near=M1",
        None,
    )
    .await?;
    assert_eq!(status, 400, "{problem}");

    ambassadors.shutdown().await?;
    let (status, profile) = send(
        adviser.clone(),
        "GET",
        "/v1/occupations/2134/profile?postcode_district=M21",
        None,
    )
    .await?;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["ambassadors"], Value::Null);
    assert_eq!(profile["unavailable"], json!(["ambassadors"]));
    assert!(profile["lmi"].is_object());

    lmi.shutdown().await?;
    let (status, profile) =
        send(adviser.clone(), "GET", "/v1/occupations/2134/profile", None).await?;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["unavailable"], json!(["lmi", "ambassadors"]));
    assert_eq!(
        profile["occupation"]["title"].as_str().map(str::is_empty),
        Some(false)
    );

    occupations.shutdown().await?;
    let (status, problem) = send(adviser, "GET", "/v1/occupations/2134/profile", None).await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("upstream_unavailable"))
    );

    gateway.stop().await?;
    Ok(())
}
