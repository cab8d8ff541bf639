//! One trace from the gateway request through lmi to the occupations event handler,
//! seen in an in-memory span exporter.

use std::time::Duration;

use careers_platform::{settings::TelemetrySettings, telemetry};
use careers_testkit::{eventually, spans::SpanCollector, sqlite::TestSqlite};
use common::{Stack, auth, call};
use opentelemetry::{KeyValue, trace::TraceId};

mod common;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn has(attributes: &[KeyValue], key: &str, value: &str) -> bool {
    attributes
        .iter()
        .any(|attribute| attribute.key.as_str() == key && attribute.value.as_str() == value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_the_gateway_through_lmi_to_the_occupations_handler()
-> anyhow::Result<()> {
    let collector = SpanCollector::default();
    let settings = TelemetrySettings {
        log_filter: "warn".into(),
        sampling_ratio: 1.0,
        tracing: true,
    };
    let guard = telemetry::init_with_exporter("system-test", &settings, Some(collector.clone()))?;
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let publisher = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let row = r#"{"soc_code": "2134", "region": "K02000001", "period": "2024", "measure": "median_annual_pay",
      "value": 54669, "unit": "GBP", "source": "ONS ASHE 2024 provisional, table 14"}"#;
    let mut headers = auth(&publisher, "application/json");
    headers.push((
        "traceparent".into(),
        format!("00-{TRACE_ID}-00f067aa0ba902b7-01"),
    ));
    let body = format!(r#"{{"submission_key": "traced", "rows": [{row}]}}"#);
    let submitted = call(
        stack.gateway_port,
        "POST",
        "/v1/lmi/submissions".into(),
        headers,
        body.into_bytes(),
    )
    .await?;
    assert_eq!(submitted.status, 201, "{}", submitted.body);

    let trace = TraceId::from_hex(TRACE_ID)?;
    let found = eventually(
        Duration::from_secs(10),
        "the occupations handler's span",
        || async {
            guard.flush();
            Ok(collector.spans().iter().any(|span| {
                span.name == "event.handle"
                    && span.span_context.trace_id() == trace
                    && has(&span.attributes, "durable", "occupations_lmi")
            }))
        },
    )
    .await;
    if found.is_err() {
        for span in collector.spans() {
            eprintln!(
                "span {} in trace {}",
                span.name,
                span.span_context.trace_id()
            );
        }
    }
    found?;
    let spans = collector.spans();
    let in_trace = |name: &'static str| -> Vec<_> {
        spans
            .iter()
            .filter(|span| span.name == name && span.span_context.trace_id() == trace)
            .collect()
    };
    assert_eq!(
        in_trace("http.request").len(),
        1,
        "the gateway's request span"
    );
    assert!(
        in_trace("grpc.server").iter().any(|span| has(
            &span.attributes,
            "rpc.service",
            "careers.lmi.v1.LmiService"
        )),
        "lmi's server span"
    );
    stack.stop().await
}
