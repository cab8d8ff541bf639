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
    // The coding index's 127 entries for 2134, its sub-unit groups and crosswalks.
    let titles = developers["alternative_titles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(titles.len(), 127);
    assert!(
        titles
            .iter()
            .any(|title| title["title"] == "Software engineer"),
        "{titles:?}"
    );
    let sub_unit_groups = developers["sub_unit_groups"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !sub_unit_groups.is_empty()
            && sub_unit_groups.iter().all(|group| group["code"]
                .as_str()
                .is_some_and(|code| code.starts_with("2134/"))),
        "{sub_unit_groups:?}"
    );
    let crosswalks = &developers["crosswalks"];
    assert_eq!(crosswalks["soc2010"][0]["code"], "2136", "{crosswalks}");
    assert_eq!(crosswalks["isco08"][0]["code"], "2512", "{crosswalks}");
    assert!(
        crosswalks["derivation"]
            .as_str()
            .is_some_and(|text| text.contains("coding index")),
        "{crosswalks}"
    );

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

    // The filters: every page walked, each occupation once, the same set as the rules
    // give over the seeded unit groups.
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
    let groups = careers_occupations::seed::read_unit_groups(
        &seeds.join(careers_occupations::seed::STRUCTURE_FILE),
    )?;
    for (filter, expected) in [
        (
            "stem=true",
            groups
                .iter()
                .filter(|group| careers_occupations::classify::stem(&group.soc_code).is_stem)
                .map(|group| group.soc_code.clone())
                .collect::<Vec<_>>(),
        ),
        (
            "route=apprenticeship&stem=false",
            groups
                .iter()
                .filter(|group| {
                    !careers_occupations::classify::stem(&group.soc_code).is_stem
                        && careers_occupations::classify::entry_routes(&group.entry_routes_text)
                            .routes
                            .iter()
                            .any(|route| route.kind == "apprenticeship")
                })
                .map(|group| group.soc_code.clone())
                .collect(),
        ),
    ] {
        let mut listed = Vec::new();
        let mut cursor = String::new();
        loop {
            let response = call(
                stack.gateway_port,
                "GET",
                format!("/v1/occupations?{filter}&limit=25&cursor={cursor}"),
                auth(&reader, "application/json"),
                Vec::new(),
            )
            .await?;
            anyhow::ensure!(response.status == 200, "{filter}: {}", response.body);
            let page: Value = serde_json::from_str(&response.body)?;
            for item in page["items"].as_array().into_iter().flatten() {
                listed.push(item["soc_code"].as_str().unwrap_or_default().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) if !next.is_empty() => cursor = next.to_owned(),
                _ => break,
            }
        }
        assert!(
            expected.len() > 25,
            "{filter}: only {} expected",
            expected.len()
        );
        assert_eq!(listed, expected, "{filter}");
    }
    for bad in ["route=university_challenge", "stem=maybe"] {
        let response = call(
            stack.gateway_port,
            "GET",
            format!("/v1/occupations?{bad}"),
            auth(&reader, "application/json"),
            Vec::new(),
        )
        .await?;
        assert_eq!(response.status, 400, "{bad}: {}", response.body);
    }

    stack.stop().await
}
