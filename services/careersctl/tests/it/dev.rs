//! `make run`'s entry point on free ports: it prints the ready line last, and the
//! README's walk-through then works as written (with the gateway's address swapped in).

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::Command,
};

fn repository() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The shell block under "A first walk through" in the README.
fn walk_through() -> anyhow::Result<String> {
    let readme = std::fs::read_to_string(repository().join("README.md"))?;
    let section = readme
        .split_once("### A first walk through")
        .map(|(_, rest)| rest)
        .ok_or_else(|| anyhow::anyhow!("the README has no walk-through"))?;
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(block, _)| block.to_owned())
        .ok_or_else(|| anyhow::anyhow!("the walk-through has no sh block"))?;
    Ok(block)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_runs_entry_point_gets_ready_and_the_readme_walk_through_works() -> anyhow::Result<()>
{
    let careersctl = Path::new(env!("CARGO_BIN_EXE_careersctl"));
    let binaries = careersctl
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no target directory"))?;
    for service in ["occupations", "lmi", "casenotes", "ambassadors", "gateway"] {
        anyhow::ensure!(
            binaries.join(service).exists(),
            "{service} is not built beside careersctl; make test builds every binary first"
        );
    }
    // A directory like a checkout: seeds/, bin/careersctl, and the data the stack keeps.
    let home = tempfile::tempdir()?;
    std::os::unix::fs::symlink(repository().join("seeds"), home.path().join("seeds"))?;
    std::fs::create_dir(home.path().join("bin"))?;
    std::os::unix::fs::symlink(careersctl, home.path().join("bin/careersctl"))?;
    let nats_server = careers_testkit::nats::binary()?;

    let mut stack = Command::new(careersctl)
        .args(["dev", "--data", "data", "--free-ports", "--nats-server"])
        .arg(&nats_server)
        .current_dir(home.path())
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = stack
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    // The first run loads the ONS figures (about 105,000 rows) before it is ready.
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut printed = Vec::new();
    let url = loop {
        let line = tokio::time::timeout_at(deadline.into(), lines.next_line())
            .await
            .map_err(|_| anyhow::anyhow!("no ready line within 600 s"))??
            .ok_or_else(|| anyhow::anyhow!("careersctl dev ended before it was ready"))?;
        if let Some(url) = line.strip_prefix("careers is ready at ") {
            break url.to_owned();
        }
        printed.push(line);
    };
    assert!(
        printed.iter().any(|line| line
            .starts_with("Browser pages from http://localhost:*,http://127.0.0.1:* may call it")),
        "make run does not say which origins may call it: {printed:?}"
    );
    // Nothing more is written to stdout after the ready line.
    let more = tokio::time::timeout(Duration::from_millis(500), lines.next_line()).await;
    assert!(
        more.is_err(),
        "careersctl dev wrote after the ready line: {more:?}"
    );

    // The real ONS pay is on the occupation, with its source; nothing waits for review.
    let port: u16 = url.rsplit(':').next().unwrap_or_default().parse()?;
    let token = |role: &'static str| {
        let home = home.path().to_owned();
        async move {
            let output = Command::new("bin/careersctl")
                .args(["token", "--role", role, "--org", "college-1"])
                .current_dir(home)
                .output()
                .await?;
            anyhow::ensure!(output.status.success(), "careersctl token failed");
            let printed = String::from_utf8(output.stdout)?;
            Ok::<_, anyhow::Error>(printed.lines().last().unwrap_or_default().to_owned())
        }
    };
    let get = |path: &'static str, token: String| async move {
        let authorization = format!("Bearer {token}");
        tokio::task::spawn_blocking(move || {
            careers_testkit::http::request(
                port,
                "GET",
                path,
                &[("Authorization", authorization.as_str())],
                b"",
            )
        })
        .await?
    };
    // A page from a dev server on any local port may call the gateway; another origin not.
    let preflight = |origin: &'static str| {
        tokio::task::spawn_blocking(move || {
            careers_testkit::http::request(
                port,
                "OPTIONS",
                "/v1/occupations/search?q=engineer",
                &[
                    ("Origin", origin),
                    ("Access-Control-Request-Method", "GET"),
                    ("Access-Control-Request-Headers", "authorization"),
                ],
                b"",
            )
        })
    };
    for (origin, allowed) in [
        ("http://localhost:5173", true),
        ("http://127.0.0.1:3000", true),
        ("https://elsewhere.example", false),
    ] {
        let answer = preflight(origin).await??;
        let header = answer.header("access-control-allow-origin");
        assert_eq!(
            header,
            allowed.then_some(origin),
            "{origin}: {:?}",
            answer.headers
        );
    }
    // A page from another origin, in a real browser, renders the gateway's search.
    crate::browser::search_page_renders(&url, &token("adviser").await?).await?;
    let occupation = get("/v1/occupations/2134", token("adviser").await?).await?;
    let occupation: serde_json::Value = serde_json::from_str(&occupation.body)?;
    let median = |breakdown: &str| {
        occupation["lmi"]["figures"]
            .as_array()
            .and_then(|figures| {
                figures.iter().find(|figure| {
                    figure["measure"] == "median_annual_pay"
                        && figure["region"] == "K02000001"
                        && figure["breakdown"] == breakdown
                })
            })
            .cloned()
            .unwrap_or_default()
    };
    for (breakdown, value) in [("full_time", 54669.0), ("all", 53501.0)] {
        let figure = median(breakdown);
        assert_eq!(figure["value"], value, "{breakdown}: {occupation}");
        assert_eq!(
            figure["source"], "ONS ASHE 2024 provisional, Table 14.7a",
            "{breakdown}: {figure}"
        );
    }
    // APS 2024: the reported sections add up to 552,293, five sections suppressed.
    let employment = &occupation["employment"];
    assert_eq!(
        (
            &employment["value"],
            &employment["lower_bound"],
            &employment["suppressed_sections"],
            &employment["period"]
        ),
        (
            &serde_json::json!(552293.0),
            &serde_json::json!(true),
            &serde_json::json!(5),
            &serde_json::json!("2024")
        ),
        "{employment}"
    );
    assert_eq!(occupation["sectors"][0]["section"], "J", "{occupation}");
    assert_eq!(
        occupation["sectors"][0]["employment"], 275177.0,
        "{occupation}"
    );
    let queue = get("/v1/lmi/review", token("qa_reviewer").await?).await?;
    assert_eq!(queue.status, 200, "{}", queue.body);
    let queue: serde_json::Value = serde_json::from_str(&queue.body)?;
    assert_eq!(queue["items"].as_array().map(Vec::len), Some(0), "{queue}");

    // An SSC pushes a file with careersctl: a dev token minted for --ssc, then the same
    // file again with a token from CAREERS_TOKEN is a replay.
    std::fs::write(
        home.path().join("figures.csv"),
        "soc_code,region,period,measure,breakdown,value,unit,source\n\
         2134,E92000001,2024,vacancies,all,1200,count,SSC survey 2024\n\
         9999,E92000001,2024,vacancies,all,10,count,SSC survey 2024\n",
    )?;
    let push = |token: Option<String>| {
        let (home, url) = (home.path().to_owned(), url.clone());
        async move {
            let mut command = Command::new("bin/careersctl");
            // One row is rejected on purpose: exit 2 unless --allow-rejected.
            command
                .args([
                    "lmi",
                    "push",
                    "figures.csv",
                    "--allow-rejected",
                    "--gateway",
                    &url,
                ])
                .current_dir(home);
            match token {
                Some(token) => command.env("CAREERS_TOKEN", token),
                None => command.args(["--ssc", "dev"]).env_remove("CAREERS_TOKEN"),
            };
            let output = command.output().await?;
            let printed = String::from_utf8(output.stdout)?;
            anyhow::ensure!(
                output.status.success(),
                "{printed}{}",
                String::from_utf8_lossy(&output.stderr)
            );
            Ok::<_, anyhow::Error>(printed)
        }
    };
    let pushed = push(None).await?;
    assert!(pushed.starts_with("Sent figures.csv"), "{pushed}");
    assert!(
        pushed.contains("2 rows, 1 accepted, 0 held for review, 0 suppressed, 1 rejected"),
        "{pushed}"
    );
    assert!(
        pushed.contains("row 2 (line 3) soc_code soc_code_known"),
        "{pushed}"
    );
    let publisher = {
        let output = Command::new("bin/careersctl")
            .args(["token", "--role", "ssc_publisher", "--ssc", "dev"])
            .current_dir(home.path())
            .output()
            .await?;
        String::from_utf8(output.stdout)?
            .lines()
            .last()
            .unwrap_or_default()
            .to_owned()
    };
    let again = push(Some(publisher)).await?;
    assert!(again.starts_with("Already sent figures.csv"), "{again}");

    let script = walk_through()?.replace("http://127.0.0.1:8080", &url);
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(home.path())
        .output()
        .await?;
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains(r#""accepted":1"#), "{printed}");
    assert!(printed.contains(r#""rule":"soc_code_known""#), "{printed}");
    // The second call shows the figure on the occupation (the first answered 201 moments before).
    assert!(printed.contains(r#""value":54669.0"#), "{printed}");
    // The adviser's note, sealed in the store, read back as written.
    assert!(
        printed.contains(r#""text":"Interested in electrical engineering apprenticeships.""#),
        "{printed}"
    );

    // An error's request id finds the gateway's access line and the service's line for
    // the same request.
    let adviser = token("adviser").await?;
    let missing = get("/v1/occupations/9999", adviser.clone()).await?;
    assert_eq!(missing.status, 404, "{}", missing.body);
    let problem: serde_json::Value = serde_json::from_str(&missing.body)?;
    let request_id = problem["request_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!request_id.is_empty(), "{problem}");
    let logs = home.path().join("data/logs");
    let lines_of = |process: &str| -> anyhow::Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(logs.join(format!("{process}.log")))?;
        Ok(text
            .lines()
            .filter(|line| line.contains(&request_id))
            .map(serde_json::from_str)
            .collect::<Result<_, _>>()?)
    };
    let mut found = (Vec::new(), Vec::new());
    for _ in 0..50 {
        found = (lines_of("gateway")?, lines_of("occupations")?);
        if !found.0.is_empty() && !found.1.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (gateway_lines, service_lines) = found;
    let access = gateway_lines
        .iter()
        .find(|line| line["target"] == "careers::access")
        .ok_or_else(|| anyhow::anyhow!("no access line for {request_id}: {gateway_lines:?}"))?;
    assert_eq!(access["http.route"], "/v1/occupations/{soc}", "{access}");
    assert_eq!(access["http.response.status_code"], 404, "{access}");
    assert_eq!(access["caller.sub"], "dev-user", "{access}");
    assert_eq!(access["caller.kind"], "token", "{access}");
    assert!(access["duration_ms"].as_f64().is_some(), "{access}");
    assert!(
        service_lines
            .iter()
            .any(|line| line["rpc.method"] == "GetOccupation"
                && line["message"] == "call answered with an error"
                && line["rpc.grpc.status_code"] == 5),
        "no occupations line for {request_id}: {service_lines:?}"
    );

    // Nothing secret reached a log: no bearer token, no client's name, no note's text.
    for entry in std::fs::read_dir(&logs)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        for secret in [
            adviser.as_str(),
            "Sam Patel",
            "Interested in electrical engineering apprenticeships",
        ] {
            assert!(
                !text.contains(secret),
                "{} holds {:.20}…",
                path.display(),
                secret
            );
        }
    }

    // What Prometheus would scrape from each process, and what the alerts and dashboards
    // in deploy/ ask of it.
    crate::scrapes::check(repository(), &home.path().join("data")).await?;

    let pid = stack.id().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await?;
    let status = tokio::time::timeout(Duration::from_secs(60), stack.wait()).await??;
    assert!(status.success(), "careersctl dev stopped with {status}");
    Ok(())
}
