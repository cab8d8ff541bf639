//! LMI outcomes and QA review through the gateway, on SQLite and on PostgreSQL: a dry run
//! reports outcomes and the delta and stores nothing; a held row stays off the occupation
//! until a reviewer approves it, and a rejected one for good; suppressed figures are
//! published without their number; the report comes back as CSV.

use std::time::Duration;

use anyhow::Context;
use careers_testkit::{eventually, postgres, sqlite::TestSqlite};
use common::{auth, call};
use serde_json::{Value, json};

mod common;

fn row(region: &str, period: &str, measure: &str, breakdown: &str, value: f64) -> Value {
    let unit = if measure == "employment" {
        "persons"
    } else {
        "GBP"
    };
    json!({"soc_code": "2134", "region": region, "period": period, "measure": measure,
           "breakdown": breakdown, "value": value, "unit": unit, "source": "review test"})
}

struct Caller {
    port: u16,
    token: String,
}

impl Caller {
    async fn send(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let response = call(
            self.port,
            method,
            path.to_owned(),
            auth(&self.token, "application/json"),
            body.map(|body| body.to_string().into_bytes())
                .unwrap_or_default(),
        )
        .await?;
        Ok((
            response.status,
            serde_json::from_str(&response.body).unwrap_or(Value::Null),
        ))
    }

    async fn submit(
        &self,
        key: &str,
        rows: Vec<Value>,
        dry_run: bool,
    ) -> anyhow::Result<(u16, Value)> {
        let path = format!(
            "/v1/lmi/submissions{}",
            if dry_run { "?dry_run=true" } else { "" }
        );
        self.send(
            "POST",
            &path,
            Some(json!({"submission_key": key, "rows": rows})),
        )
        .await
    }

    /// The occupation's figure for (measure, region, breakdown), if shown.
    async fn shown(
        &self,
        measure: &str,
        region: &str,
        breakdown: &str,
    ) -> anyhow::Result<Option<Value>> {
        let (_, occupation) = self.send("GET", "/v1/occupations/2134", None).await?;
        Ok(occupation["lmi"]["figures"]
            .as_array()
            .and_then(|figures| {
                figures.iter().find(|figure| {
                    figure["measure"] == measure
                        && figure["region"] == region
                        && figure["breakdown"] == breakdown
                })
            })
            .cloned())
    }
}

async fn review(occupations_url: String, lmi_url: String) -> anyhow::Result<()> {
    let stack = common::Stack::start(occupations_url, lmi_url).await?;
    let as_role = |roles: &[&str], ssc: Option<&str>| -> anyhow::Result<Caller> {
        Ok(Caller {
            port: stack.gateway_port,
            token: stack.bearer(roles, ssc)?,
        })
    };
    let dev = as_role(&["ssc_publisher"], Some("dev"))?;
    let ons = as_role(&["ssc_publisher"], Some("ons"))?;
    let reviewer = as_role(&["qa_reviewer"], None)?;
    let adviser = as_role(&["adviser"], None)?;
    let (uk, england, pay) = ("K02000001", "E92000001", "median_annual_pay");

    let (status, first) = dev
        .submit(
            "first",
            vec![
                row(uk, "2023", pay, "full_time", 50000.0),
                row(uk, "2023", "employment", "all", 300000.0),
            ],
            false,
        )
        .await?;
    assert_eq!(
        (status, &first["counts"]["accepted"]),
        (201, &json!(2)),
        "{first}"
    );

    let mut suppressed = row(uk, "2024", "mean_annual_pay", "all", 60000.0);
    suppressed["sample_size"] = json!(3);
    let second = vec![
        row(uk, "2023", pay, "full_time", 50000.0), // unchanged
        row(uk, "2023", "employment", "all", 310000.0), // changed, 3%
        row(england, "2024", pay, "full_time", 52000.0), // added
        row(uk, "2024", pay, "full_time", 90000.0), // 80% over 50,000: held
        suppressed,                                 // sample of 3
        row(england, "2024", pay, "full_time", 52000.0), // duplicate of row 3
    ];
    let expected_counts =
        json!({"rows": 6, "accepted": 3, "quarantined": 1, "rejected": 1, "suppressed": 1});

    // A dry run: outcomes and delta, nothing stored, not even the key.
    let (status, dry) = dev.submit("second", second.clone(), true).await?;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (&dry["id"], &dry["counts"]),
        (&Value::Null, &expected_counts),
        "{dry}"
    );
    let delta = &dry["delta"];
    assert_eq!(delta["unchanged"], 1, "{delta}");
    assert_eq!(delta["added"].as_array().map(Vec::len), Some(1), "{delta}");
    assert_eq!(
        (&delta["added"][0]["row"], &delta["added"][0]["region"]),
        (&json!(3), &json!(england))
    );
    assert_eq!(
        (
            &delta["changed"][0]["row"],
            &delta["changed"][0]["old_value"],
            &delta["changed"][0]["new_value"]
        ),
        (&json!(2), &json!(300000.0), &json!(310000.0)),
        "{delta}"
    );
    let rules: Vec<(&str, &str)> = dry["report"]
        .as_array()
        .context("report")?
        .iter()
        .filter_map(|entry| Some((entry["rule"].as_str()?, entry["severity"].as_str()?)))
        .collect();
    assert_eq!(
        rules,
        [
            ("change_limit", "warning"),
            ("disclosure_control", "info"),
            ("duplicate_key", "error")
        ]
    );
    let (_, history) = adviser
        .send("GET", "/v1/lmi/figures?view=history", None)
        .await?;
    assert_eq!(
        history["items"].as_array().map(Vec::len),
        Some(2),
        "a dry run stored figures"
    );

    // For real: the same answer, the delta kept, the report as CSV.
    let (status, stored) = dev.submit("second", second, false).await?;
    assert_eq!(
        (status, &stored["counts"]),
        (201, &expected_counts),
        "{stored}"
    );
    let id = stored["id"].as_str().context("id")?.to_owned();
    let (status, kept) = dev
        .send("GET", &format!("/v1/lmi/submissions/{id}/delta"), None)
        .await?;
    assert_eq!((status, &kept), (200, delta), "{kept}");
    let csv = call(
        stack.gateway_port,
        "GET",
        format!("/v1/lmi/submissions/{id}"),
        vec![
            ("Authorization".into(), format!("Bearer {}", dev.token)),
            ("Accept".into(), "text/csv".into()),
        ],
        Vec::new(),
    )
    .await?;
    assert_eq!(csv.status, 200, "{}", csv.body);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", csv.body);
    assert_eq!(lines[0], "row,line,field,rule,severity,message");
    assert!(
        lines[1].starts_with("4,0,value,change_limit,warning,"),
        "{}",
        lines[1]
    );
    // Another SSC's submission is not found.
    let (status, _) = ons
        .send("GET", &format!("/v1/lmi/submissions/{id}"), None)
        .await?;
    assert_eq!(status, 404);

    // The suppressed figure shows without its number; the held one does not show.
    eventually(
        Duration::from_secs(5),
        "the suppressed figure on the occupation",
        || async { Ok(dev.shown("mean_annual_pay", uk, "all").await?.is_some()) },
    )
    .await?;
    let mean = dev
        .shown("mean_annual_pay", uk, "all")
        .await?
        .context("mean")?;
    assert_eq!(
        (&mean["value"], &mean["suppressed"]),
        (&Value::Null, &json!(true)),
        "{mean}"
    );
    let median = dev.shown(pay, uk, "full_time").await?.context("median")?;
    assert_eq!(
        (&median["period"], &median["value"]),
        (&json!("2023"), &json!(50000.0)),
        "{median}"
    );

    // The review queue: reviewers only.
    let (status, _) = adviser.send("GET", "/v1/lmi/review", None).await?;
    assert_eq!(status, 403);
    let (status, queue) = reviewer.send("GET", "/v1/lmi/review", None).await?;
    assert_eq!(status, 200, "{queue}");
    let held = &queue["items"][0];
    assert_eq!(
        (&held["value"], &held["findings"][0]["rule"]),
        (&json!(90000.0), &json!("change_limit")),
        "{queue}"
    );
    let row_id = held["row_id"].as_str().context("row_id")?.to_owned();

    // Approved: published, once.
    let approve = format!("/v1/lmi/review/{row_id}/approve");
    let (status, approved) = reviewer
        .send(
            "POST",
            &approve,
            Some(json!({"reason": "confirmed with the SSC"})),
        )
        .await?;
    assert_eq!(
        (status, &approved["status"]),
        (200, &json!("published")),
        "{approved}"
    );
    let (status, again) = reviewer.send("POST", &approve, None).await?;
    assert_eq!(
        (status, &again["code"]),
        (409, &json!("already_decided")),
        "{again}"
    );
    eventually(
        Duration::from_secs(5),
        "the approved figure on the occupation",
        || async {
            Ok(dev
                .shown(pay, uk, "full_time")
                .await?
                .is_some_and(|figure| figure["value"] == 90000.0))
        },
    )
    .await?;

    // Rejected: a reason is required, and the figure stays out.
    let (status, third) = dev
        .submit(
            "third",
            vec![row(uk, "2025", pay, "full_time", 20000.0)],
            false,
        )
        .await?;
    assert_eq!(
        (status, &third["counts"]["quarantined"]),
        (201, &json!(1)),
        "{third}"
    );
    let (_, queue) = reviewer.send("GET", "/v1/lmi/review", None).await?;
    let row_id = queue["items"][0]["row_id"]
        .as_str()
        .context("row_id")?
        .to_owned();
    let reject = format!("/v1/lmi/review/{row_id}/reject");
    let (status, refused) = reviewer.send("POST", &reject, None).await?;
    assert_eq!(
        (status, &refused["code"]),
        (400, &json!("validation_failed")),
        "{refused}"
    );
    let (status, rejected) = reviewer
        .send("POST", &reject, Some(json!({"reason": "a typo"})))
        .await?;
    assert_eq!(
        (status, &rejected["status"]),
        (200, &json!("rejected")),
        "{rejected}"
    );
    let (_, queue) = reviewer.send("GET", "/v1/lmi/review", None).await?;
    assert_eq!(queue["items"].as_array().map(Vec::len), Some(0), "{queue}");
    let (_, latest) = adviser
        .send(
            "GET",
            "/v1/lmi/figures?measure=median_annual_pay&region=K02000001&breakdown=full_time",
            None,
        )
        .await?;
    assert_eq!(latest["items"][0]["value"], 90000.0, "{latest}");

    // ONS figures are already assured: the change rule is off for them.
    let (status, assured) = ons
        .submit(
            "ons",
            vec![row(uk, "2026", pay, "full_time", 200000.0)],
            false,
        )
        .await?;
    assert_eq!(
        (status, &assured["counts"]["accepted"]),
        (201, &json!(1)),
        "{assured}"
    );

    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_and_review_through_the_gateway_on_sqlite() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    review(occupations.url.clone(), lmi.url.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_and_review_through_the_gateway_on_postgres() -> anyhow::Result<()> {
    let (occupations, lmi) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    review(occupations.url.clone(), lmi.url.clone()).await
}
