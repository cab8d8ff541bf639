//! The Prometheus scrape after the first flow (an SSC's figure through the gateway, to lmi,
//! as an event to occupations, onto the occupation): every family the README lists is
//! there, with HELP text, histograms as buckets, counts where traffic passed, and labels
//! that are route templates and method names, never raw paths.
//!
//! Occupations, lmi and the gateway run in this process, so one scrape holds all three.

use std::time::Duration;

use careers_platform::settings::MetricsSettings;
use careers_testkit::{eventually, free_port, sqlite::TestSqlite};
use common::{auth, call};
use serde_json::json;

mod common;

/// `name{labels} value` lines of `family` (its buckets, sums and counts included).
fn samples<'a>(scrape: &'a str, family: &str) -> Vec<&'a str> {
    scrape
        .lines()
        .filter(|line| {
            line.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with(['{', ' ', '_']))
        })
        .collect()
}

fn value(sample: &str) -> f64 {
    sample
        .rsplit(' ')
        .next()
        .and_then(|value| value.parse().ok())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_flow_shows_in_every_documented_family() -> anyhow::Result<()> {
    let port = free_port()?;
    careers_platform::telemetry::serve_metrics(&MetricsSettings {
        enabled: true,
        listen: ([127, 0, 0, 1], port).into(),
    })?;
    careers_gateway::describe_metrics();
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = common::Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let publisher = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let row = json!({"soc_code": "2134", "region": "K02000001", "period": "2024",
        "measure": "median_annual_pay", "breakdown": "all", "value": 41000, "unit": "GBP",
        "source": "metrics test"});
    let body = json!({"submission_key": "metrics-1", "rows": [row]}).to_string();
    let posted = call(
        stack.gateway_port,
        "POST",
        "/v1/lmi/submissions".into(),
        auth(&publisher, "application/json"),
        body.into_bytes(),
    )
    .await?;
    assert_eq!(posted.status, 201, "{}", posted.body);
    eventually(
        Duration::from_secs(30),
        "the figure is on the occupation",
        || {
            let (port, token) = (stack.gateway_port, publisher.clone());
            async move {
                let read = call(
                    port,
                    "GET",
                    "/v1/occupations/2134".into(),
                    auth(&token, "application/json"),
                    Vec::new(),
                )
                .await?;
                Ok(read.body.contains("metrics test"))
            }
        },
    )
    .await?;
    let missing = call(
        stack.gateway_port,
        "GET",
        "/v1/occupations/9999".into(),
        auth(&publisher, "application/json"),
        Vec::new(),
    )
    .await?;
    assert_eq!(missing.status, 404, "{}", missing.body);

    let scrape = tokio::task::spawn_blocking(move || {
        careers_testkit::http::request(port, "GET", "/metrics", &[], b"")
    })
    .await??;
    assert_eq!(scrape.status, 200);
    let scrape = scrape.body;
    // Every family: HELP, a TYPE (histograms as buckets), and samples.
    let families = [
        ("careers_build_info", "gauge"),
        ("careers_http_requests_total", "counter"),
        ("careers_http_request_duration_seconds", "histogram"),
        ("careers_grpc_server_requests_total", "counter"),
        ("careers_grpc_server_duration_seconds", "histogram"),
        ("careers_events_published_total", "counter"),
        ("careers_events_applied_total", "counter"),
        ("careers_event_propagation_seconds", "histogram"),
        ("careers_outbox_pending", "gauge"),
        ("careers_outbox_oldest_age_seconds", "gauge"),
        ("careers_consumer_lag", "gauge"),
        ("careers_nats_connected", "gauge"),
    ];
    for (family, kind) in families {
        assert!(
            scrape.contains(&format!("# HELP {family} ")),
            "{family} has no HELP:\n{scrape}"
        );
        assert!(
            scrape.contains(&format!("# TYPE {family} {kind}")),
            "{family} is not a {kind}:\n{scrape}"
        );
        assert!(!samples(&scrape, family).is_empty(), "{family}: no samples");
    }
    let counted = |family: &str, labels: &[&str]| {
        samples(&scrape, family)
            .into_iter()
            .filter(|sample| labels.iter().all(|label| sample.contains(label)))
            .map(value)
            .sum::<f64>()
    };
    let route = r#"route="/v1/occupations/{soc}""#;
    assert!(
        counted(
            "careers_http_requests_total",
            &[route, r#"status_class="4xx""#]
        ) >= 1.0
    );
    assert!(
        counted(
            "careers_http_requests_total",
            &[route, r#"status_class="2xx""#]
        ) >= 1.0
    );
    assert!(
        counted(
            "careers_http_requests_total",
            &[
                r#"route="/v1/lmi/submissions""#,
                r#"method="POST""#,
                r#"caller_kind="token""#
            ]
        ) >= 1.0
    );
    assert!(
        counted(
            "careers_http_request_duration_seconds_bucket",
            &[route, r#"le="+Inf""#]
        ) >= 2.0
    );
    assert!(
        counted(
            "careers_grpc_server_requests_total",
            &["GetOccupation\"", r#"code="NotFound""#]
        ) >= 1.0
    );
    assert!(counted("careers_events_applied_total", &[]) >= 1.0);
    assert!(counted("careers_events_published_total", &[]) >= 1.0);
    assert!(counted("careers_event_propagation_seconds_count", &[]) >= 1.0);
    assert_eq!(counted("careers_build_info", &[]), 1.0);
    // No raw path or id as a label.
    assert!(
        !scrape.contains("occupations/9999"),
        "a raw path became a label:\n{scrape}"
    );
    stack.stop().await
}
