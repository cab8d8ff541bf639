//! The list routes through the gateway, on SQLite and on PostgreSQL: published figures
//! as the latest per series or in full, as of an instant, within a period window, page by
//! page with signed cursors; the catalogue page by page; bad queries answered 400.

use anyhow::Context;
use careers_testkit::{postgres, sqlite::TestSqlite};
use common::{auth, call};
use serde_json::Value;

mod common;

fn row(soc: &str, region: &str, period: &str, measure: &str, value: f64, unit: &str) -> String {
    format!(
        r#"{{"soc_code": "{soc}", "region": "{region}", "period": "{period}", "measure": "{measure}",
        "value": {value}, "unit": "{unit}", "source": "ONS ASHE (test)"}}"#
    )
}

struct Client {
    port: u16,
    token: String,
}

impl Client {
    async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        let response = call(
            self.port,
            "GET",
            path.to_owned(),
            auth(&self.token, "application/json"),
            Vec::new(),
        )
        .await?;
        let body = serde_json::from_str(&response.body).unwrap_or(Value::Null);
        Ok((response.status, body))
    }

    /// Every item of a listing, following `next_cursor`; also the number of pages.
    async fn walk(&self, path: &str) -> anyhow::Result<(Vec<Value>, usize)> {
        let (mut items, mut pages) = (Vec::new(), 0);
        let mut next = path.to_owned();
        loop {
            let (status, body) = self.get(&next).await?;
            assert_eq!(status, 200, "{next}: {body}");
            pages += 1;
            items.extend(body["items"].as_array().cloned().unwrap_or_default());
            match body["next_cursor"].as_str() {
                Some(cursor) => next = format!("{path}&cursor={cursor}"),
                None => return Ok((items, pages)),
            }
        }
    }

    async fn values(&self, path: &str) -> anyhow::Result<Vec<f64>> {
        let (items, _) = self.walk(path).await?;
        Ok(items
            .iter()
            .filter_map(|item| item["value"].as_f64())
            .collect())
    }
}

async fn listings(occupations_url: String, lmi_url: String) -> anyhow::Result<()> {
    let stack = common::Stack::start(occupations_url, lmi_url).await?;
    let publisher = Client {
        port: stack.gateway_port,
        token: stack.bearer(&["ssc_publisher"], Some("ons"))?,
    };
    let reader = Client {
        port: stack.gateway_port,
        token: stack.bearer(&["adviser"], None)?,
    };
    let submit = |key: &str, rows: Vec<String>| {
        let body = format!(
            r#"{{"submission_key": "{key}", "rows": [{}]}}"#,
            rows.join(",")
        );
        call(
            publisher.port,
            "POST",
            "/v1/lmi/submissions".into(),
            auth(&publisher.token, "application/json"),
            body.into_bytes(),
        )
    };
    let pay = "median_annual_pay";
    let first = submit(
        "first",
        vec![
            row("2134", "K02000001", "2023", pay, 50000.0, "GBP"),
            row("2134", "K02000001", "2024-Q1", pay, 52000.0, "GBP"),
            row("2134", "E92000001", "2024", "employment", 1000.0, "persons"),
            row("2136", "K02000001", "2024", pay, 60000.0, "GBP"),
        ],
    )
    .await?;
    assert_eq!(first.status, 201, "{}", first.body);
    let (_, before) = reader
        .get("/v1/lmi/figures?soc_code=2134&view=history")
        .await?;
    let first_received = before["items"][0]["received_at"]
        .as_str()
        .context("received_at")?
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    // A revision of 2024-Q1.
    let second = submit(
        "second",
        vec![row("2134", "K02000001", "2024-Q1", pay, 53000.0, "GBP")],
    )
    .await?;
    assert_eq!(second.status, 201, "{}", second.body);

    // Latest: per series, the latest period ("2024-Q1" ends after "2023"), latest revision.
    let (status, latest) = reader.get("/v1/lmi/figures?soc_code=2134").await?;
    assert_eq!(status, 200, "{latest}");
    let items = latest["items"].as_array().context("items")?;
    assert_eq!(items.len(), 2, "{latest}");
    assert_eq!(
        (items[0]["measure"].as_str(), items[0]["region"].as_str()),
        (Some("employment"), Some("E92000001"))
    );
    assert_eq!(
        (items[1]["period"].as_str(), items[1]["value"].as_f64()),
        (Some("2024-Q1"), Some(53000.0))
    );
    assert_eq!(items[1]["ssc"], "ons");
    assert_eq!(items[1]["breakdown"], "all");
    assert!(latest["next_cursor"].is_null());

    // History: every revision, in series then time order.
    assert_eq!(
        reader
            .values("/v1/lmi/figures?soc_code=2134&view=history&measure=median_annual_pay")
            .await?,
        [50000.0, 52000.0, 53000.0]
    );
    // As of the first submission, the revision had not happened.
    assert_eq!(
        reader
            .values(&format!(
                "/v1/lmi/figures?soc_code=2134&measure=median_annual_pay&as_of={}",
                first_received.replace('+', "%2B")
            ))
            .await?,
        [52000.0]
    );
    // A date means the end of that day; nothing was published before 2000.
    assert!(
        reader
            .values("/v1/lmi/figures?as_of=2000-01-01")
            .await?
            .is_empty()
    );
    // Period windows: periods wholly inside them.
    assert_eq!(
        reader
            .values("/v1/lmi/figures?soc_code=2134&measure=median_annual_pay&period_to=2023")
            .await?,
        [50000.0]
    );
    assert_eq!(
        reader
            .values("/v1/lmi/figures?measure=median_annual_pay&period_from=2024&view=history")
            .await?,
        [52000.0, 53000.0, 60000.0]
    );

    // Pages of two walk all five figures once, in order.
    let (all, pages) = reader.walk("/v1/lmi/figures?view=history&limit=2").await?;
    assert_eq!((all.len(), pages), (5, 3));
    let ids: std::collections::HashSet<_> =
        all.iter().map(|item| item["figure_id"].clone()).collect();
    assert_eq!(ids.len(), 5);

    // A cursor is good only for the listing that issued it, and only unedited.
    let (_, page) = reader.get("/v1/lmi/figures?view=history&limit=2").await?;
    let cursor = page["next_cursor"]
        .as_str()
        .context("a next page")?
        .to_owned();
    let mut edited = cursor.clone().into_bytes();
    edited[3] = if edited[3] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited)?;
    for path in [
        format!("/v1/lmi/figures?view=history&limit=2&cursor={edited}"),
        format!("/v1/lmi/figures?view=latest&limit=2&cursor={cursor}"),
        format!("/v1/occupations?cursor={cursor}"),
    ] {
        let (status, body) = reader.get(&path).await?;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_cursor")),
            "{path}: {body}"
        );
    }

    // Bad queries name their fields.
    let (status, body) = reader
        .get("/v1/lmi/figures?soc_code=21&region=XX&period_from=2024-Q5&limit=101")
        .await?;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("validation_failed")),
        "{body}"
    );
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .context("errors")?
        .iter()
        .filter_map(|error| error["field"].as_str())
        .collect();
    assert_eq!(
        fields,
        ["soc_code", "region", "period_from", "limit"],
        "{body}"
    );
    for (path, field) in [
        ("/v1/lmi/figures?view=newest", Some("view")),
        ("/v1/lmi/figures?as_of=yesterday", Some("as_of")),
        ("/v1/lmi/figures?colour=red", None),
    ] {
        let (status, body) = reader.get(path).await?;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["errors"][0]["field"].as_str(), field, "{path}: {body}");
    }
    let anonymous = call(
        stack.gateway_port,
        "GET",
        "/v1/lmi/figures".into(),
        Vec::new(),
        Vec::new(),
    )
    .await?;
    assert_eq!(anonymous.status, 401);

    // The catalogue, page by page: all 412 unit groups once, in code order.
    let (occupations, pages) = reader.walk("/v1/occupations?limit=100").await?;
    let codes: Vec<&str> = occupations
        .iter()
        .filter_map(|item| item["soc_code"].as_str())
        .collect();
    assert_eq!((codes.len(), pages), (412, 5));
    assert!(codes.windows(2).all(|pair| pair[0] < pair[1]));
    let (group, _) = reader
        .walk("/v1/occupations?major_group=2&limit=100")
        .await?;
    assert!(!group.is_empty() && group.iter().all(|item| item["major_group"] == "2"));

    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_and_occupations_list_page_by_page_on_sqlite() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    listings(occupations.url.clone(), lmi.url.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn figures_and_occupations_list_page_by_page_on_postgres() -> anyhow::Result<()> {
    let (occupations, lmi) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    listings(occupations.url.clone(), lmi.url.clone()).await
}
