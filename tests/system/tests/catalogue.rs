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

/// Editors change an occupation with a merge patch under `If-Match`; each change is a
/// version in its history and an `OccupationUpserted` that lmi's projection applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editors_patch_occupations_under_if_match() -> anyhow::Result<()> {
    use careers_testkit::eventually;

    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = common::Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let port = stack.gateway_port;
    let editor = stack.bearer(&["catalogue_editor"], None)?;
    let adviser = stack.bearer(&["adviser"], None)?;
    let patch = |token: &str, soc: &str, if_match: Option<&str>, body: &str| {
        let mut headers = auth(token, "application/merge-patch+json");
        if let Some(version) = if_match {
            headers.push(("If-Match".to_owned(), version.to_owned()));
        }
        call(
            port,
            "PATCH",
            format!("/v1/occupations/{soc}"),
            headers,
            body.as_bytes().to_vec(),
        )
    };
    let problem = |body: &str| serde_json::from_str::<Value>(body).unwrap_or(Value::Null);
    let title = r#"{"title": "Software developers and programmers", "tasks": ["designs software", "writes code"]}"#;

    let read = call(
        port,
        "GET",
        "/v1/occupations/2134".into(),
        auth(&adviser, "application/json"),
        Vec::new(),
    )
    .await?;
    assert_eq!(read.header("etag"), Some("\"1\""));

    let missing = patch(&editor, "2134", None, title).await?;
    assert_eq!(missing.status, 428, "{}", missing.body);
    assert_eq!(problem(&missing.body)["code"], "if_match_required");
    let forbidden = patch(&adviser, "2134", Some("\"1\""), title).await?;
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    let mut wrong_type = auth(&editor, "application/json");
    wrong_type.push(("If-Match".to_owned(), "\"1\"".to_owned()));
    let wrong_type = call(
        port,
        "PATCH",
        "/v1/occupations/2134".into(),
        wrong_type,
        title.into(),
    )
    .await?;
    assert_eq!(wrong_type.status, 415, "{}", wrong_type.body);
    let read_only = patch(
        &editor,
        "2134",
        Some("\"1\""),
        r#"{"soc_code": "9999", "title": null}"#,
    )
    .await?;
    assert_eq!(read_only.status, 400, "{}", read_only.body);
    let fields: Vec<Value> = problem(&read_only.body)["errors"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|error| error["field"].clone())
        .collect();
    assert_eq!(fields, ["soc_code", "title"], "{}", read_only.body);
    let empty = patch(&editor, "2134", Some("\"1\""), r#"{"title": "  "}"#).await?;
    assert_eq!(empty.status, 400, "{}", empty.body);
    assert_eq!(
        patch(&editor, "9999", Some("\"1\""), title).await?.status,
        404
    );
    assert_eq!(
        patch(&editor, "21x4", Some("\"1\""), title).await?.status,
        400
    );

    let changed = patch(&editor, "2134", Some("\"1\""), title).await?;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.header("etag"), Some("\"2\""));
    let occupation = problem(&changed.body);
    assert_eq!(occupation["title"], "Software developers and programmers");
    assert_eq!(occupation["tasks"][1], "writes code");
    assert_eq!(occupation["version"], 2);
    assert!(
        occupation["description"]
            .as_str()
            .is_some_and(|text| !text.is_empty())
    );

    let stale = patch(&editor, "2134", Some("\"1\""), r#"{"title": "Coders"}"#).await?;
    assert_eq!(stale.status, 409, "{}", stale.body);
    assert_eq!(problem(&stale.body)["code"], "version_conflict");

    let history = call(
        port,
        "GET",
        "/v1/occupations/2134/history".into(),
        auth(&adviser, "application/json"),
        Vec::new(),
    )
    .await?;
    assert_eq!(history.status, 200, "{}", history.body);
    let items = problem(&history.body)["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 2, "{}", history.body);
    assert_eq!(items[0]["version"], 2);
    assert!(
        items[0]["changed_by"]
            .as_str()
            .is_some_and(|who| !who.is_empty() && who != "seed")
    );
    let changed_fields: Vec<&Value> = items[0]["changes"]
        .as_array()
        .map(|changes| changes.iter().map(|change| &change["field"]).collect())
        .unwrap_or_default();
    assert_eq!(changed_fields, ["title", "tasks"]);
    assert_eq!(
        items[0]["changes"][0]["old"],
        "Programmers and software development professionals"
    );
    assert_eq!(
        (&items[1]["version"], &items[1]["changed_by"]),
        (&1.into(), &"seed".into())
    );

    // Published: lmi's projection of the catalogue takes the new title.
    let lmi_db = stack.lmi_db.clone();
    eventually(
        std::time::Duration::from_secs(10),
        "lmi's projection has the new title",
        || async {
            use sea_orm::ConnectionTrait;
            let row = lmi_db
                .query_one_raw(sea_orm::Statement::from_string(
                    lmi_db.get_database_backend(),
                    "SELECT title FROM known_occupations WHERE soc_code = '2134'",
                ))
                .await?;
            Ok(row
                .map(|row| row.try_get_by_index::<String>(0))
                .transpose()?
                .as_deref()
                == Some("Software developers and programmers"))
        },
    )
    .await?;

    // A re-seed leaves the edit standing.
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
    let (_, reseeded) = careers_occupations::seed::seed(&stack.occupations_db, &seeds).await?;
    assert_eq!(reseeded, 0);

    stack.stop().await
}
