//! `careersctl lmi push` as an SSC's scheduled job runs it: no terminal, exit codes as a
//! gate, `--json`, a dry run, and a connection cut mid-upload, against occupations and lmi
//! (SQLite) behind a real gateway.

use std::{
    path::Path,
    process::Output,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use careers_eventbus::testing::count;
use careers_stack::Stack;
use careers_testkit::{eventually, sqlite::TestSqlite};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const HEADER: &str = "soc_code,region,period,measure,breakdown,value,unit,source\n";
const STATISTICS: [&str; 12] = [
    "median", "mean", "p10", "p20", "p25", "p30", "p40", "p60", "p70", "p75", "p80", "p90",
];
const BREAKDOWNS: [&str; 5] = ["all", "full_time", "part_time", "male", "female"];

/// `count` distinct rows over the catalogue, every `reject_every`th in a region no one
/// knows (rejected by lmi's `region_known` rule).
fn rows(codes: &[String], count: usize, reject_every: Option<usize>) -> String {
    let mut csv = String::from(HEADER);
    for index in 0..count {
        let soc = &codes[index % codes.len()];
        let statistic = STATISTICS[(index / codes.len()) % STATISTICS.len()];
        let breakdown = BREAKDOWNS[(index / (codes.len() * STATISTICS.len())) % BREAKDOWNS.len()];
        let year = 2021 + index / (codes.len() * STATISTICS.len() * BREAKDOWNS.len());
        let region = match reject_every {
            Some(every) if index % every == every - 1 => "X99999999",
            _ => "K02000001",
        };
        csv.push_str(&format!(
            "{soc},{region},{year},{statistic}_annual_pay,{breakdown},{},GBP,\"ONS ASHE, \
             synthetic test figures\"\n",
            30_000 + index % 1000
        ));
    }
    csv
}

/// careersctl with a token, its output captured (so stderr is no terminal).
async fn push(token: &str, args: &[&str]) -> anyhow::Result<Output> {
    Ok(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_careersctl"))
            .env_clear()
            .env("CAREERS_TOKEN", token)
            .args(["lmi", "push"])
            .args(args)
            .output()
            .await?,
    )
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn published(stack: &Stack, token: &str, soc: &str) -> anyhow::Result<usize> {
    let response = careers_stack::call(
        stack.gateway_port,
        "GET",
        format!(
            "/v1/lmi/figures?soc_code={soc}&region=K02000001&measure=median_annual_pay&breakdown=all"
        ),
        vec![("Authorization".into(), format!("Bearer {token}"))],
        Vec::new(),
    )
    .await?;
    anyhow::ensure!(response.status == 200, "{}", response.body);
    Ok(response.body.matches("\"figure_id\"").count())
}

fn write(dir: &Path, name: &str, content: &str) -> anyhow::Result<String> {
    let path = dir.join(name);
    std::fs::write(&path, content)?;
    Ok(path.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_push_reports_rows_and_gates_on_rejected_rows() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let token = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let reader = stack.bearer(&["adviser"], None)?;
    let gateway = format!("http://127.0.0.1:{}", stack.gateway_port);
    let codes = stack.catalogue_codes().await?;
    let dir = tempfile::tempdir()?;
    let file = write(dir.path(), "ashe.csv", &rows(&codes, 50_000, Some(2_000)))?;
    let common = ["--gateway", &gateway, "--progress-every", "200ms"];

    // A dry run shows the delta and records nothing.
    let dry = push(
        &token,
        &[&[file.as_str(), "--dry-run"][..], &common].concat(),
    )
    .await?;
    let (stdout, stderr) = text(&dry);
    assert_eq!(dry.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.starts_with("Dry run of "), "{stdout}");
    assert!(
        stdout.contains("Delta: 49975 added, 0 changed, 0 unchanged"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Nothing was recorded (dry run)."),
        "{stdout}"
    );
    assert_eq!(published(&stack, &reader, &codes[0]).await?, 0);
    assert_eq!(
        count(&stack.lmi_db, "SELECT COUNT(*) FROM submissions").await?,
        0
    );

    // The push itself: progress lines by rows without a terminal, the summary, exit 2.
    let sent = push(&token, &[&[file.as_str()][..], &common].concat()).await?;
    let (stdout, stderr) = text(&sent);
    assert_eq!(sent.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        stderr.contains("careersctl: sending 50000 rows"),
        "{stderr}"
    );
    assert!(
        stderr.contains("careersctl: sent all 50000 rows in "),
        "{stderr}"
    );
    assert!(
        stderr.contains("--allow-rejected exits 0"),
        "the exit code is explained: {stderr}"
    );
    let summary = stdout.lines().next().unwrap_or_default();
    assert!(
        summary.starts_with("Sent ")
            && summary.ends_with(
                "50000 rows, 49975 accepted, 0 held for review, 0 suppressed, 25 rejected"
            ),
        "{stdout}"
    );
    assert!(stdout.contains("region_known"), "{stdout}");
    eventually(Duration::from_secs(30), "the figures are published", || {
        let (stack, reader, soc) = (&stack, &reader, &codes[0]);
        async move { Ok(published(stack, reader, soc).await? > 0) }
    })
    .await?;

    // The same file again, accepting rejected rows: a replay, exit 0.
    let again = push(
        &token,
        &[&[file.as_str(), "--allow-rejected"][..], &common].concat(),
    )
    .await?;
    let (stdout, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("Already sent "), "{stdout}");

    // --json: one document that parses, with the counts and the replay flag.
    let json = push(&token, &[&[file.as_str(), "--json"][..], &common].concat()).await?;
    let (stdout, stderr) = text(&json);
    assert_eq!(json.status.code(), Some(2), "{stdout}{stderr}");
    let document: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(document["counts"]["rejected"], 25, "{document}");
    assert_eq!(document["replayed"], true, "{document}");
    assert_eq!(document["report"].as_array().map(Vec::len), Some(25));
    assert_eq!(
        count(&stack.lmi_db, "SELECT COUNT(*) FROM submissions").await?,
        1
    );

    // A refusal is exit 1 with the gateway's reason, and is not retried. A small file: the
    // gateway refuses before reading a body, and a large one still being written when the
    // refusal comes may meet a closed connection first (then it is sent once more and
    // refused again; the outcome is the same, but that is not what is tested here).
    let small = write(dir.path(), "small.csv", &rows(&codes, 10, None))?;
    let refused = push(
        &stack.bearer(&["adviser"], None)?,
        &[&[small.as_str(), "--key", "other"][..], &common].concat(),
    )
    .await?;
    let (stdout, stderr) = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stderr.contains("the gateway refused the file (403"),
        "{stderr}"
    );
    assert!(!stderr.contains("sending again"), "{stderr}");
    stack.stop().await
}

/// Forwards connections to `target`; the first is cut once `cut_after` bytes of the request
/// have passed, as a flaky network or a restarting load balancer would.
async fn cutting_proxy(target: u16, cut_after: usize) -> anyhow::Result<(u16, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
            tokio::spawn(async move {
                let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                if !first {
                    tokio::io::copy_bidirectional(&mut client, &mut server)
                        .await
                        .ok();
                    return;
                }
                let mut passed = 0;
                let mut buffer = vec![0; 64 * 1024];
                while passed < cut_after {
                    match client.read(&mut buffer).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            if server.write_all(&buffer[..read]).await.is_err() {
                                break;
                            }
                            passed += read;
                        }
                    }
                }
                // Both sides see the connection drop.
            });
        }
    });
    Ok((port, connections))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_cut_off_mid_way_resumes_and_records_once() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    let stack = Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let token = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let codes = stack.catalogue_codes().await?;
    let dir = tempfile::tempdir()?;
    let body = rows(&codes, 30_000, None);
    let file = write(dir.path(), "cut.csv", &body)?;
    let (port, connections) = cutting_proxy(stack.gateway_port, body.len() / 3).await?;
    let gateway = format!("http://127.0.0.1:{port}");

    let output = push(&token, &[&file, "--gateway", &gateway, "--key", "resume-1"]).await?;
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stderr.contains("sending again with the same key"),
        "{stderr}"
    );
    assert!(connections.load(Ordering::SeqCst) >= 2);
    assert!(stdout.contains("30000 rows, 30000 accepted"), "{stdout}");
    let recorded = || {
        count(
            &stack.lmi_db,
            "SELECT COUNT(*) FROM submissions WHERE submission_key = 'resume-1'",
        )
    };
    assert_eq!(recorded().await?, 1);
    assert_eq!(
        count(&stack.lmi_db, "SELECT COUNT(*) FROM figures").await?,
        30_000
    );

    // Run again after the fact: the recorded answer, nothing sent twice.
    let again = push(&token, &[&file, "--gateway", &gateway, "--key", "resume-1"]).await?;
    let (stdout, stderr) = text(&again);
    assert_eq!(again.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("Already sent "), "{stdout}");
    assert_eq!(recorded().await?, 1);
    stack.stop().await
}
