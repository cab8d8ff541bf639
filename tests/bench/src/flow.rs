//! The first flow's goals, through the gateway over HTTP with occupations and lmi on
//! PostgreSQL and a real nats-server:
//!
//! - `first_flow`: single-row submissions, one at a time, from the POST to the figure
//!   showing on `GET /v1/occupations/{soc}`, beside the POST's own answer time.
//! - `tracing`: the submission path's throughput with tracing at 0.1 and 1.0 (spans
//!   exported over OTLP to a sink here that discards them), beside tracing off. Each mode
//!   runs in a child process of its own, since the trace pipeline is process-global.

use std::{
    io::BufRead,
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use careers_platform::{settings::TelemetrySettings, telemetry};
use careers_stack::Stack;
use careers_testkit::{http, postgres};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

use crate::{millis, percentile};

const SOC: &str = "2134";

/// One single-row submission body; `value` tells the revisions apart.
fn submission(key: &str, value: u64) -> Vec<u8> {
    format!(
        r#"{{"submission_key": "{key}", "rows": [{{"soc_code": "{SOC}", "region": "K02000001",
        "period": "2024", "measure": "median_annual_pay", "breakdown": "full_time",
        "value": {value}, "unit": "GBP", "source": "bench"}}]}}"#
    )
    .into_bytes()
}

fn post(port: u16, token: &str, body: &[u8]) -> anyhow::Result<()> {
    let authorization = format!("Bearer {token}");
    let response = http::request(
        port,
        "POST",
        "/v1/lmi/submissions",
        &[
            ("Authorization", authorization.as_str()),
            ("Content-Type", "application/json"),
        ],
        body,
    )?;
    anyhow::ensure!(
        response.status == 201,
        "submission answered {}: {}",
        response.status,
        response.body
    );
    Ok(())
}

pub async fn start_stack() -> anyhow::Result<(Stack, [postgres::TestDatabase; 2])> {
    let occupations = postgres::empty_database().await?;
    let lmi = postgres::empty_database().await?;
    let stack = Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    Ok((stack, [occupations, lmi]))
}

pub async fn first_flow() -> anyhow::Result<()> {
    const SUBMISSIONS: u64 = 1_000;
    let (stack, _databases) = start_stack().await?;
    let port = stack.gateway_port;
    let publisher = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let reader = stack.bearer(&["adviser"], None)?;
    let (answered, visible) = tokio::task::spawn_blocking(move || {
        let mut answered = Vec::new();
        let mut visible = Vec::new();
        let authorization = format!("Bearer {reader}");
        for index in 0..SUBMISSIONS {
            let value = 50_000 + index;
            let started = Instant::now();
            post(
                port,
                &publisher,
                &submission(&format!("flow-{index}"), value),
            )?;
            answered.push(started.elapsed().as_secs_f64());
            let needle = format!("\"value\":{value}.0");
            let deadline = started + Duration::from_secs(10);
            loop {
                let occupation = http::request(
                    port,
                    "GET",
                    &format!("/v1/occupations/{SOC}"),
                    &[("Authorization", authorization.as_str())],
                    &[],
                )?;
                if occupation.body.contains(&needle) {
                    visible.push(started.elapsed().as_secs_f64());
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "figure {value} not visible in 10 s"
                );
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        anyhow::Ok((answered, visible))
    })
    .await??;
    stack.stop().await?;
    let sorted = |mut samples: Vec<f64>| {
        samples.sort_by(f64::total_cmp);
        samples
    };
    let (answered, visible) = (sorted(answered), sorted(visible));
    let (v50, v99) = (percentile(&visible, 0.5), percentile(&visible, 0.99));
    let (a50, a99) = (percentile(&answered, 0.5), percentile(&answered, 0.99));
    println!(
        "first_flow (PostgreSQL, {SUBMISSIONS} single-row submissions through the gateway, one at a time): \
         submission to visible on the occupation p50 {}, p99 {} | the submission's own answer p50 {}, p99 {} \
         | ratio p50 {:.1}x, p99 {:.1}x | goal p99 < 1 s",
        millis(v50),
        millis(v99),
        millis(a50),
        millis(a99),
        v50 / a50,
        v99 / a99,
    );
    Ok(())
}

/// An OTLP trace receiver that counts spans and keeps none.
#[derive(Debug, Default, Clone)]
struct DiscardingSink {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for DiscardingSink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The modes compared, as (label, argument for the child).
const MODES: [(&str, &str); 3] = [
    ("tracing off", "off"),
    ("sampling 0.1", "0.1"),
    ("sampling 1.0", "1.0"),
];

pub async fn tracing(seconds: u64) -> anyhow::Result<()> {
    let sink = DiscardingSink::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(sink.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let seconds = seconds.min(20);
    let mut results = Vec::new();
    for (label, mode) in MODES {
        let before = sink.spans.load(Ordering::Relaxed);
        let child = Command::new(std::env::current_exe()?)
            .args(["tracing-phase", mode, &seconds.to_string()])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
        anyhow::ensure!(output.status.success(), "the {label} phase failed");
        let rate: f64 = output
            .stdout
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix("submissions/s ")?.parse().ok())
            .with_context(|| format!("the {label} phase printed no rate"))?;
        results.push((label, rate, sink.spans.load(Ordering::Relaxed) - before));
    }
    let off = results[0].1;
    let figures: Vec<String> = results
        .iter()
        .map(|(label, rate, spans)| {
            format!(
                "{label}: {rate:.0} submissions/s ({spans} spans exported), ratio {:.2}",
                rate / off
            )
        })
        .collect();
    println!(
        "tracing (PostgreSQL, 8 clients posting single-row submissions for {seconds} s per mode): {} | goal at 0.1: ratio >= 0.9",
        figures.join(" | ")
    );
    Ok(())
}

/// One mode of the tracing bench, in its own process: prints `submissions/s <rate>`.
pub async fn tracing_phase(mode: &str, seconds: u64) -> anyhow::Result<()> {
    const CLIENTS: usize = 8;
    let settings = TelemetrySettings {
        log_filter: "warn".into(),
        sampling_ratio: if mode == "off" { 0.0 } else { mode.parse()? },
        tracing: mode != "off",
    };
    let guard = telemetry::init("bench", &settings)?;
    let (stack, _databases) = start_stack().await?;
    let port = stack.gateway_port;
    let publisher = Arc::new(stack.bearer(&["ssc_publisher"], Some("ons"))?);
    let (measuring, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let done = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (publisher, measuring, stop, done) = (
            publisher.clone(),
            measuring.clone(),
            stop.clone(),
            done.clone(),
        );
        let mode = mode.to_owned();
        clients.push(tokio::task::spawn_blocking(move || {
            let mut index = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                index += 1;
                post(
                    port,
                    &publisher,
                    &submission(&format!("{mode}-{client}-{index}"), index),
                )?;
                if measuring.load(Ordering::Relaxed) {
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
            anyhow::Ok(())
        }));
    }
    // Warm up, then count.
    tokio::time::sleep(Duration::from_secs(3)).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await??;
    }
    println!("submissions/s {rate}");
    guard.flush();
    stack.stop().await
}
