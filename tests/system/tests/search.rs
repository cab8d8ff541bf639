//! Occupation search through the gateway on the seeded catalogue: hits with what matched,
//! facets and filters against the store, pagination, LMI filters fed by real
//! `FiguresPublished` events, bad input, and an edit found through another replica.

use std::{
    collections::{BTreeMap, HashSet},
    time::Duration,
};

use careers_testkit::{eventually, sqlite::TestSqlite};
use common::{auth, call};
use serde_json::Value;

mod common;

async fn get(stack: &common::Stack, token: &str, path: String) -> anyhow::Result<(u16, Value)> {
    let response = call(
        stack.gateway_port,
        "GET",
        path,
        auth(token, "application/json"),
        Vec::new(),
    )
    .await?;
    let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
    Ok((response.status, body))
}

/// The index fills from the seeder's events, in SOC code order: wait until the last unit
/// group (9269) is found by its title, and a synonym by its group.
async fn wait_for_index(stack: &common::Stack, token: &str) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(60),
        "search holds the whole catalogue",
        || async {
            let (status, last) = get(
                stack,
                token,
                "/v1/occupations/search?q=other%20elementary%20services%20occupations%20n.e.c."
                    .into(),
            )
            .await?;
            let (_, synonym) = get(stack, token, "/v1/occupations/search?q=sparky".into()).await?;
            Ok(status == 200
                && last["items"][0]["soc_code"] == "9269"
                && synonym["items"][0]["soc_code"] == "5241")
        },
    )
    .await
}

fn codes(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["soc_code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every hit of a search, page by page; each page's facets and total must agree.
async fn all_hits(
    stack: &common::Stack,
    token: &str,
    query: &str,
) -> anyhow::Result<(Vec<String>, Value)> {
    let mut hits = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, body) = get(
            stack,
            token,
            format!("/v1/occupations/search?{query}&limit=7&cursor={cursor}"),
        )
        .await?;
        anyhow::ensure!(status == 200, "{body}");
        hits.extend(codes(&body));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => {
                anyhow::ensure!(body["total"].as_u64() == Some(hits.len() as u64), "{body}");
                return Ok((hits, body["facets"].clone()));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_through_the_gateway_agrees_with_the_store() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = common::Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let reader = stack.bearer(&["adviser"], None)?;
    wait_for_index(&stack, &reader).await?;

    // What matched is reported; a misspelling is corrected and says so.
    let (_, body) = get(&stack, &reader, "/v1/occupations/search?q=sparky".into()).await?;
    assert_eq!(body["items"][0]["matched"]["field"], "synonym", "{body}");
    let (_, body) = get(
        &stack,
        &reader,
        "/v1/occupations/search?q=electrican".into(),
    )
    .await?;
    assert_eq!(body["items"][0]["soc_code"], "5241", "{body}");
    assert_eq!(body["corrected_query"], "electrician", "{body}");
    let (status, body) = get(
        &stack,
        &reader,
        "/v1/occupations/suggest?q=software%20dev".into(),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty()
                && items.iter().all(|item| {
                    item["label"]
                        .as_str()
                        .is_some_and(|label| label.to_lowercase().contains("software dev"))
                })),
        "{body}"
    );
    assert!(codes(&body).contains(&"2134".to_owned()), "{body}");

    // Pagination returns every hit once; facets count what the store says of each hit.
    let (hits, facets) = all_hits(&stack, &reader, "q=engineer").await?;
    let unique: HashSet<&String> = hits.iter().collect();
    assert_eq!(unique.len(), hits.len(), "a hit came twice");
    assert!(hits.len() > 20, "{hits:?}");
    let mut counted: [BTreeMap<String, u64>; 3] = Default::default();
    let mut stem_codes = HashSet::new();
    let mut apprenticeship_codes = HashSet::new();
    for code in &hits {
        let (status, occupation) = get(&stack, &reader, format!("/v1/occupations/{code}")).await?;
        assert_eq!(status, 200);
        let major = occupation["major_group"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        *counted[0].entry(major).or_default() += 1;
        let is_stem = occupation["stem"]["is_stem"].as_bool().unwrap_or_default();
        *counted[1].entry(is_stem.to_string()).or_default() += 1;
        if is_stem {
            stem_codes.insert(code.clone());
        }
        let mut types: Vec<&str> = occupation["entry_routes"]
            .as_array()
            .map(|routes| {
                routes
                    .iter()
                    .filter_map(|route| route["type"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        types.sort_unstable();
        types.dedup();
        for kind in types {
            *counted[2].entry(kind.to_owned()).or_default() += 1;
            if kind == "apprenticeship" {
                apprenticeship_codes.insert(code.clone());
            }
        }
    }
    for (position, facet) in ["major_group", "stem", "route"].into_iter().enumerate() {
        let reported: BTreeMap<String, u64> = serde_json::from_value(facets[facet].clone())?;
        assert_eq!(reported, counted[position], "facet {facet}");
    }
    // A filter keeps exactly the hits the store says pass it.
    let (stem_hits, _) = all_hits(&stack, &reader, "q=engineer&stem=true").await?;
    assert_eq!(
        stem_hits.iter().cloned().collect::<HashSet<_>>(),
        stem_codes
    );
    let (route_hits, _) = all_hits(&stack, &reader, "q=engineer&route=apprenticeship").await?;
    assert_eq!(
        route_hits.iter().cloned().collect::<HashSet<_>>(),
        apprenticeship_codes
    );

    // LMI filters from figures published as real events.
    let publisher = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let row = |soc: &str, value: u32| {
        format!(
            r#"{{"soc_code": "{soc}", "region": "K02000001", "period": "2030", "measure": "median_annual_pay",
            "breakdown": "all", "value": {value}, "unit": "GBP", "source": "test figures"}}"#
        )
    };
    let projection = |soc: &str, change: f64| {
        format!(
            r#"{{"soc_code": "{soc}", "region": "K02000001", "period": "2025", "measure": "projected_employment_change",
            "breakdown": "all", "horizon": "2035", "value": {change}, "unit": "percent", "source": "test projections"}}"#
        )
    };
    let submitted = call(
        stack.gateway_port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&publisher, "application/json"),
        format!(
            r#"{{"submission_key": "pay-filter", "rows": [{}, {}, {}, {}]}}"#,
            row("2122", 91_000),
            row("2121", 31_000),
            projection("2122", 4.5),
            projection("2121", -3.0)
        )
        .into_bytes(),
    )
    .await?;
    assert_eq!(submitted.status, 201, "{}", submitted.body);
    eventually(
        Duration::from_secs(30),
        "the pay filter sees the figures",
        || async {
            let (_, body) = get(
                &stack,
                &reader,
                "/v1/occupations/search?q=engineer&min_median_pay=90000".into(),
            )
            .await?;
            Ok(codes(&body) == ["2122"])
        },
    )
    .await?;
    let (_, listed) = get(
        &stack,
        &reader,
        "/v1/occupations?min_median_pay=90000".into(),
    )
    .await?;
    assert_eq!(codes(&listed), ["2122"], "{listed}");

    // Bad input: a clear 400 naming the problem.
    let long = "a".repeat(201);
    for path in [
        "/v1/occupations/search?q=".to_owned(),
        "/v1/occupations/search?q=%20%20".to_owned(),
        format!("/v1/occupations/search?q={long}"),
        "/v1/occupations/search?q=nurse%01".to_owned(),
        "/v1/occupations/search?q=nurse&cursor=forged".to_owned(),
        "/v1/occupations/search?q=nurse&outlook=booming".to_owned(),
        "/v1/occupations/search?q=nurse&route=gap_year".to_owned(),
        "/v1/occupations/search?q=nurse&limit=101".to_owned(),
        "/v1/occupations/search?q=nurse&min_median_pay=-1".to_owned(),
        "/v1/occupations/suggest?q=".to_owned(),
        "/v1/occupations?q=nurse".to_owned(),
    ] {
        let (status, body) = get(&stack, &reader, path.clone()).await?;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|detail| !detail.is_empty()),
            "{path}: {body}"
        );
    }
    let (status, _) = get(
        &stack,
        "not-a-token",
        "/v1/occupations/search?q=nurse".into(),
    )
    .await?;
    assert_eq!(status, 401);
    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_through_one_replica_is_found_through_another() -> anyhow::Result<()> {
    use careers_proto::careers::occupations::v1::{
        SearchOccupationsRequest, occupations_service_client::OccupationsServiceClient,
    };

    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = common::Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let reader = stack.bearer(&["adviser"], None)?;
    wait_for_index(&stack, &reader).await?;
    let nats_url = stack.nats.url();
    let second = careers_testkit::service::spawn_trusting::<careers_occupations::Occupations>(
        &stack.occupations_url,
        &[("nats.url", nats_url.as_str())],
        &stack.internal,
    )
    .await?;

    // The gateway talks to the first replica; the edit goes there.
    let editor = stack.bearer(&["catalogue_editor"], None)?;
    let (_, current) = get(&stack, &editor, "/v1/occupations/2122".into()).await?;
    let version = current["version"].as_u64().unwrap_or_default();
    let mut headers = auth(&editor, "application/merge-patch+json");
    headers.push(("If-Match".to_owned(), format!("\"{version}\"")));
    let patched = call(
        stack.gateway_port,
        "PATCH",
        "/v1/occupations/2122".into(),
        headers,
        br#"{"description": "Designs wind turbines and quasarotronic drivetrains."}"#.to_vec(),
    )
    .await?;
    assert_eq!(patched.status, 200, "{}", patched.body);

    // The second replica's index hears of it.
    let token = second.token(&["adviser"], None)?;
    let channel = careers_testkit::grpc::channel(second.port)?;
    eventually(
        Duration::from_secs(30),
        "the other replica finds the edit",
        || {
            let (channel, token) = (channel.clone(), token.clone());
            async move {
                let mut request = tonic::Request::new(SearchOccupationsRequest {
                    query: "quasarotronic".into(),
                    ..Default::default()
                });
                request
                    .metadata_mut()
                    .insert(careers_platform::identity::METADATA_KEY, token.parse()?);
                let found = OccupationsServiceClient::new(channel)
                    .search_occupations(request)
                    .await?
                    .into_inner();
                Ok(found.items.first().is_some_and(|hit| {
                    hit.soc_code == "2122"
                        && hit
                            .matched
                            .as_ref()
                            .is_some_and(|matched| matched.field == "description")
                }))
            }
        },
    )
    .await?;
    second.shutdown().await?;
    stack.stop().await
}
