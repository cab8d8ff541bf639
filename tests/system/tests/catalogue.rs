//! The catalogue through the gateway: typed entry routes, the STEM flag with its rule, and
//! the ONS attribution on real unit groups.

use careers_testkit::sqlite::TestSqlite;
use common::{auth, call};
use serde_json::Value;

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn occupations_carry_typed_routes_and_the_stem_flag() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = common::Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let reader = stack.bearer(&["adviser"], None)?;
    let get = |soc: &'static str| {
        let headers = auth(&reader, "application/json");
        async move {
            let response = call(
                stack.gateway_port,
                "GET",
                format!("/v1/occupations/{soc}"),
                headers,
                Vec::new(),
            )
            .await?;
            anyhow::ensure!(response.status == 200, "{soc}: {}", response.body);
            Ok::<Value, anyhow::Error>(serde_json::from_str(&response.body)?)
        }
    };
    let routes = |occupation: &Value| -> Vec<(String, Value)> {
        occupation["entry_routes"]
            .as_array()
            .map(|routes| {
                routes
                    .iter()
                    .map(|route| {
                        (
                            route["type"].as_str().unwrap_or_default().to_owned(),
                            route["level"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };

    let developers = get("2134").await?;
    assert_eq!(developers["stem"]["is_stem"], true, "{developers}");
    assert_eq!(developers["stem"]["discipline"], "technology");
    assert!(
        developers["stem"]["rule"]
            .as_str()
            .is_some_and(|rule| rule.contains("213")),
        "{}",
        developers["stem"]
    );
    assert!(
        developers["attribution"]
            .as_str()
            .is_some_and(|text| text.contains("Open Government Licence")),
        "{developers}"
    );
    assert_eq!(developers["skills"], serde_json::json!([]));

    let pipe_fitters = get("5214").await?;
    assert_eq!(
        routes(&pipe_fitters),
        [
            ("direct_entry".to_owned(), Value::Null),
            ("apprenticeship".to_owned(), Value::Null),
            ("college".to_owned(), 2.into()),
        ],
        "{}",
        pipe_fitters["entry_routes"]
    );
    assert_eq!(pipe_fitters["open_to_career_changers"], false);
    assert!(
        pipe_fitters["entry_routes"][1]["text"]
            .as_str()
            .is_some_and(|text| text.contains("apprenticeship")),
        "the route keeps its sentence: {}",
        pipe_fitters["entry_routes"]
    );

    let marketing_directors = get("1132").await?;
    assert_eq!(marketing_directors["open_to_career_changers"], true);
    assert_eq!(marketing_directors["stem"]["is_stem"], false);
    assert_eq!(marketing_directors["stem"]["discipline"], Value::Null);

    stack.stop().await
}
