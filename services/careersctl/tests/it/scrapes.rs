//! What an operator's Prometheus would scrape from `make run`'s processes once traffic has
//! passed: every process's `/metrics` passes `promtool check metrics`, holds the families
//! the README documents (with counts where traffic passed), and holds every metric name
//! the alerts and dashboards in deploy/ use.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Stdio,
};

use tokio::{io::AsyncWriteExt, process::Command};

/// Families every process exports.
const EVERY_PROCESS: [&str; 6] = [
    "careers_build_info",
    "careers_grpc_server_requests_total",
    "careers_grpc_server_duration_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_open_fds",
];
/// Families every domain service exports besides.
const EVERY_SERVICE: [&str; 13] = [
    "careers_store_connections",
    "careers_store_connections_max",
    "careers_store_busy_total",
    "careers_events_applied_total",
    "careers_events_redelivered_total",
    "careers_events_dead_lettered_total",
    "careers_consumer_lag",
    "careers_event_propagation_seconds",
    "careers_events_published_total",
    "careers_outbox_republished_total",
    "careers_outbox_pending",
    "careers_outbox_oldest_age_seconds",
    "careers_nats_connected",
];
/// Families of the gateway besides.
const GATEWAY: [&str; 5] = [
    "careers_http_requests_total",
    "careers_http_request_duration_seconds",
    "careers_gateway_refused_total",
    "careers_gateway_upstream_requests_total",
    "careers_gateway_upstream_duration_seconds",
];

/// A scrape, parsed: family name to its samples (`name{labels}`, value).
struct Scrape {
    text: String,
    families: BTreeMap<String, Vec<(String, f64)>>,
}

impl Scrape {
    fn parse(text: String) -> anyhow::Result<Self> {
        let mut families: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap_or_default();
                families.entry(name.to_owned()).or_default();
            }
        }
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = series.split('{').next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| families.contains_key(*base))
                })
                .unwrap_or(name);
            families
                .get_mut(family)
                .ok_or_else(|| anyhow::anyhow!("a sample of no declared family: {line}"))?
                .push((series.to_owned(), value.parse()?));
        }
        Ok(Self { text, families })
    }

    /// Sample names as a query would name them (histograms as `_bucket`, `_sum`, `_count`).
    fn sample_names(&self) -> BTreeSet<String> {
        self.families
            .values()
            .flatten()
            .map(|(series, _)| series.split('{').next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The sum of the samples named `sample` (a histogram's as `…_count`) whose series
    /// holds every one of `labels`.
    fn total(&self, sample: &str, labels: &[&str]) -> f64 {
        self.families
            .values()
            .flatten()
            .filter(|(series, _)| series.split('{').next() == Some(sample))
            .filter(|(series, _)| labels.iter().all(|label| series.contains(label)))
            .map(|(_, value)| value)
            .sum()
    }
}

async fn scrape(port: u16) -> anyhow::Result<Scrape> {
    let answer = tokio::task::spawn_blocking(move || {
        careers_testkit::http::request(port, "GET", "/metrics", &[], b"")
    })
    .await??;
    anyhow::ensure!(
        answer.status == 200,
        "/metrics on {port}: {}",
        answer.status
    );
    Scrape::parse(answer.body)
}

/// `promtool check metrics` on one scrape: its lint finds nothing.
async fn promtool_check(promtool: &Path, process: &str, scrape: &Scrape) -> anyhow::Result<()> {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?;
    stdin.write_all(scrape.text.as_bytes()).await?;
    drop(stdin);
    let output = child.wait_with_output().await?;
    anyhow::ensure!(
        output.status.success(),
        "promtool check metrics found problems in {process}'s scrape:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// The families the README's Metrics table lists.
fn documented(repository: &Path) -> anyhow::Result<BTreeSet<String>> {
    let readme = std::fs::read_to_string(repository.join("README.md"))?;
    Ok(readme
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`').map(|(name, _)| name))
        .filter(|name| name.starts_with("careers_") || name.starts_with("process_"))
        .map(str::to_owned)
        .collect())
}

/// Checks every process of the stack `careersctl dev` runs in `data` (its `ports.json`).
pub async fn check(repository: &Path, data: &Path) -> anyhow::Result<()> {
    let tools = repository.join(".tools/bin");
    let (promtool, deploy_check) = (tools.join("promtool"), tools.join("deploy-check"));
    for tool in [&promtool, &deploy_check] {
        anyhow::ensure!(
            tool.exists(),
            "no {}: run `scripts/tools.sh promtool deploy-check` (make test does)",
            tool.display()
        );
    }
    let ports: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("ports.json"))?)?;
    // A call on the gateway's own gRPC port (nothing else in the walk-through uses it).
    let gateway_grpc = ports["gateway"]["grpc"]
        .as_u64()
        .and_then(|port| u16::try_from(port).ok())
        .ok_or_else(|| anyhow::anyhow!("ports.json names no gRPC port for the gateway"))?;
    careers_testkit::grpc::health(gateway_grpc, "careers.gateway").await?;
    let mut scrapes = BTreeMap::new();
    for process in ["gateway", "occupations", "lmi", "casenotes", "ambassadors"] {
        let port = ports[process]["metrics"]
            .as_u64()
            .and_then(|port| u16::try_from(port).ok())
            .ok_or_else(|| anyhow::anyhow!("ports.json names no metrics port for {process}"))?;
        let scrape = scrape(port).await?;
        promtool_check(&promtool, process, &scrape).await?;
        let mut expected = EVERY_PROCESS.to_vec();
        expected.extend(if process == "gateway" {
            GATEWAY.as_slice()
        } else {
            EVERY_SERVICE.as_slice()
        });
        for family in expected {
            let samples = scrape.families.get(family);
            assert!(
                samples.is_some_and(|samples| !samples.is_empty()),
                "{process} exports no {family}:\n{}",
                scrape.text
            );
            assert!(
                scrape.text.contains(&format!("# HELP {family} ")),
                "{process}: {family} has no HELP text"
            );
        }
        // Counts where traffic passed: every process answered calls (health checks at
        // least) and holds memory (CPU time is counted in whole seconds: an idle gateway
        // may still be at 0).
        for (family, labels) in [
            ("careers_build_info", &[][..]),
            ("careers_grpc_server_requests_total", &[]),
            ("process_resident_memory_bytes", &[]),
        ] {
            assert!(
                scrape.total(family, labels) > 0.0,
                "{process}: {family} is 0"
            );
        }
        if process != "gateway" {
            assert!(
                scrape.total("careers_store_connections_max", &[]) > 0.0,
                "{process}: no store pool"
            );
            assert_eq!(
                scrape.total("careers_nats_connected", &[]),
                1.0,
                "{process} is not connected to NATS"
            );
        }
        scrapes.insert(process, scrape);
    }
    // The walk-through's traffic: its requests through the gateway, to each service, and
    // its events.
    let gateway = &scrapes["gateway"];
    for service in ["occupations", "lmi", "casenotes"] {
        let label = format!(r#"service="{service}""#);
        assert!(
            gateway.total("careers_gateway_upstream_requests_total", &[&label]) > 0.0,
            "the gateway counted no call to {service}"
        );
    }
    assert!(
        gateway.total(
            "careers_http_requests_total",
            &[r#"route="/v1/lmi/submissions""#, r#"status_class="2xx""#]
        ) > 0.0
    );
    assert!(scrapes["lmi"].total("careers_events_published_total", &[]) > 0.0);
    assert!(scrapes["casenotes"].total("careers_events_published_total", &[]) > 0.0);
    assert!(scrapes["occupations"].total("careers_events_applied_total", &[]) > 0.0);
    assert!(scrapes["occupations"].total("careers_event_propagation_seconds_count", &[]) > 0.0);

    // The README's table and the scrapes name the same families.
    let exported: BTreeSet<String> = scrapes
        .values()
        .flat_map(|scrape| scrape.families.keys().cloned())
        .filter(|name| name.starts_with("careers_"))
        .collect();
    let documented = documented(repository)?;
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "exported but not in the README's Metrics table: {undocumented:?}"
    );
    let missing: Vec<_> = documented
        .iter()
        .filter(|name| !scrapes.values().any(|s| s.families.contains_key(*name)))
        .collect();
    assert!(
        missing.is_empty(),
        "in the README's Metrics table but in no scrape: {missing:?}"
    );

    // Every name an alert or a dashboard uses, in a real scrape (the dashboard's own
    // workload's for a dashboard).
    let output = Command::new(&deploy_check)
        .arg("--metric-names")
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "deploy-check --metric-names: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let used: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let every: BTreeSet<String> = scrapes.values().flat_map(Scrape::sample_names).collect();
    let names = |value: &serde_json::Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|name| name.as_str().map(str::to_owned))
            .collect()
    };
    let rules = names(&used["rules"]);
    assert!(rules.len() >= 6, "the alerts use too few names: {used}");
    for name in rules {
        assert!(
            every.contains(&name),
            "an alert uses {name}, which no process exports"
        );
    }
    for (process, scrape) in &scrapes {
        let mine = scrape.sample_names();
        let board = names(&used["dashboards"][*process]);
        assert!(!board.is_empty(), "no dashboard for {process}: {used}");
        for name in board {
            assert!(
                mine.contains(&name),
                "the {process} dashboard uses {name}, which {process} does not export"
            );
        }
    }
    Ok(())
}
