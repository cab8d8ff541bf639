//! A property-based API fuzzer against `/openapi.json`: schemathesis (installed by
//! `scripts/tools.sh`, pinned) drives every documented operation of the whole system
//! with a token holding every role, on a bounded budget, and must find no 5xx and no
//! response that breaks the document. The document itself must pass
//! openapi-spec-validator.

use std::{path::PathBuf, process::Command};

use common::AllServices;

mod common;

/// `.tools/bin/<name>`, where `scripts/tools.sh schemathesis` links it.
fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/bin")
        .join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing: run scripts/tools.sh schemathesis (make test does)",
        path.display()
    );
    Ok(path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_survives_fuzzing_against_its_own_document() -> anyhow::Result<()> {
    let (schemathesis, validator) = (tool("schemathesis")?, tool("openapi-spec-validator")?);
    let system = AllServices::start().await?;
    let port = system.gateway.http_port;
    let token = system.every_role("fuzzer")?;

    let directory = tempfile::tempdir()?;
    let document = directory.path().join("openapi.json");
    let (status, body) =
        tokio::task::spawn_blocking(move || careers_testkit::http::get(port, "/openapi.json"))
            .await??;
    assert_eq!(status, 200);
    std::fs::write(&document, &body)?;
    let validated = tokio::task::spawn_blocking({
        let document = document.clone();
        move || Command::new(validator).arg(document).output()
    })
    .await??;
    assert!(
        validated.status.success(),
        "openapi-spec-validator: {}{}",
        String::from_utf8_lossy(&validated.stdout),
        String::from_utf8_lossy(&validated.stderr)
    );

    // /docs works offline: the page and its assets come from the gateway itself.
    let docs = tokio::task::spawn_blocking(move || {
        [
            "/docs",
            "/docs/swagger-ui-bundle.js",
            "/docs/swagger-ui.css",
            "/docs/init.js",
        ]
        .map(|path| careers_testkit::http::get(port, path))
    })
    .await?;
    let [page, script, style, init] = docs;
    let (page, script, style, init) = (page?, script?, style?, init?);
    assert_eq!(page.0, 200);
    assert!(page.1.contains("/docs/swagger-ui-bundle.js") && !page.1.contains("https://"));
    assert!(script.0 == 200 && script.1.len() > 1_000_000 && style.0 == 200);
    assert!(init.1.contains("/openapi.json"));

    let report = directory.path().join("report");
    let workdir = directory.path().to_owned();
    let fuzzed = tokio::task::spawn_blocking(move || {
        Command::new(schemathesis)
            // Its example cache goes to the working directory: a throwaway one, so every
            // run starts from the seed alone.
            .current_dir(&workdir)
            .args(["run", &format!("http://127.0.0.1:{port}/openapi.json")])
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,\
                 response_schema_conformance",
            ])
            .args([
                "--max-examples",
                "12",
                "--max-time",
                "150",
                "--seed",
                "20261205",
            ])
            .args(["--workers", "1", "--request-timeout", "20", "--no-color"])
            .arg("--report-dir")
            .arg(&report)
            .env("SCHEMATHESIS_HOOKS", "")
            .output()
    })
    .await??;
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&fuzzed.stdout),
        String::from_utf8_lossy(&fuzzed.stderr)
    );
    println!("{output}");
    assert!(
        fuzzed.status.success(),
        "schemathesis found problems:\n{output}"
    );

    system.stop().await
}
