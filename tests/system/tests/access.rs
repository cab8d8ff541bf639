//! The route-role matrix of `docs/access.md`, driven against the whole system: every
//! route with a token of every role, with no credentials and with an API key. A "yes"
//! must get past every role check, the gateway's and the service's (any status but 401
//! and 403, and never a 5xx); a blank must be 403; no credentials 401. Every other method
//! on each of these paths is 405 with the path's `Allow`, and logs no ERROR.

use std::{collections::HashMap, time::Duration};

use careers_ambassadors::Ambassadors;
use careers_casenotes::Casenotes;
use careers_gateway::apikeys::KeyFile;
use careers_lmi::Lmi;
use careers_occupations::Occupations;
use careers_platform::{Service, identity::Identity};
use careers_testkit::{
    service::{TestKeys, spawn_trusting},
    sqlite::TestSqlite,
};
use common::{RunningGateway, call, gateway_settings};
use serde_json::Value;

mod common;

/// The URN every token's `org` names, so school-scoped reads pass their own checks.
const SCHOOL: &str = "105574";
const SOME_ID: &str = "01934a4e-0000-7000-8000-000000000001";

/// One row of the document: `GET /v1/...`, then which columns say yes.
struct Row {
    method: String,
    path: String,
    allowed: HashMap<String, bool>,
}

fn matrix() -> anyhow::Result<(Vec<String>, Vec<Row>)> {
    let document = include_str!("../../../docs/access.md");
    let cells = |line: &str| -> Vec<String> {
        line.trim()
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_owned())
            .collect()
    };
    let header = document
        .lines()
        .find(|line| line.starts_with("| Route |"))
        .ok_or_else(|| anyhow::anyhow!("docs/access.md has no table"))?;
    let columns: Vec<String> = cells(header).into_iter().skip(1).collect();
    let mut rows = Vec::new();
    for line in document.lines().filter(|line| line.starts_with("| `")) {
        let cells = cells(line);
        let route = cells[0].trim_matches('`');
        let (method, path) = route
            .split_once(' ')
            .ok_or_else(|| anyhow::anyhow!("bad route cell {route}"))?;
        let allowed = columns
            .iter()
            .zip(cells.iter().skip(1))
            .map(|(column, cell)| (column.clone(), cell == "yes"))
            .collect();
        rows.push(Row {
            method: method.to_owned(),
            path: path
                .replace("{soc}", "2134")
                .replace("{urn}", SCHOOL)
                .replace("{decision}", "approve")
                .replace("{id}", SOME_ID)
                .replace("{note_id}", SOME_ID)
                .replace("{row_id}", SOME_ID),
            allowed,
        });
    }
    anyhow::ensure!(
        rows.len() > 50,
        "only {} routes in docs/access.md",
        rows.len()
    );
    Ok((columns, rows))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_every_role_as_documented() -> anyhow::Result<()> {
    let logs = careers_testkit::logs::capture()?;
    let (columns, rows) = matrix()?;
    let internal = std::sync::Arc::new(TestKeys::new()?);
    let stores = [
        TestSqlite::new()?,
        TestSqlite::new()?,
        TestSqlite::new()?,
        TestSqlite::new()?,
    ];
    let occupations = spawn_trusting::<Occupations>(&stores[0].url, &[], &internal).await?;
    let lmi = spawn_trusting::<Lmi>(&stores[1].url, &[], &internal).await?;
    let casenotes = spawn_trusting::<Casenotes>(&stores[2].url, &[], &internal).await?;
    let ambassadors = spawn_trusting::<Ambassadors>(&stores[3].url, &[], &internal).await?;
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
    Lmi::seed(
        &sea_orm::Database::connect(stores[1].url.as_str()).await?,
        &seeds,
    )
    .await?;

    let bearer = TestKeys::new()?;
    let keys_dir = tempfile::tempdir()?;
    let mut key_file = KeyFile::default();
    let (_, api_key) = key_file.create("matrix", 100_000)?;
    key_file.write(&keys_dir.path().join("keys.json"))?;
    let mut settings = gateway_settings(
        [
            ("occupations", occupations.port),
            ("lmi", lmi.port),
            ("casenotes", casenotes.port),
            ("ambassadors", ambassadors.port),
        ],
        &bearer,
        &internal,
    )?;
    settings.auth.api_keys_path = keys_dir.path().join("keys.json");
    let gateway = RunningGateway::start(settings).await?;
    let port = gateway.http_port;

    let mut credentials: Vec<(String, Option<(String, String)>)> = Vec::new();
    for column in &columns {
        let header = if column == "API key" {
            ("X-API-Key".to_owned(), api_key.clone())
        } else {
            let token = bearer.signer.sign_for(
                &Identity {
                    sub: format!("matrix-{column}"),
                    roles: vec![column.clone()],
                    org: Some(SCHOOL.to_owned()),
                    ssc: Some("dev".to_owned()),
                },
                "careers-dev",
                "careers",
                Duration::from_secs(600),
            )?;
            ("Authorization".to_owned(), format!("Bearer {token}"))
        };
        credentials.push((column.clone(), Some(header)));
    }
    credentials.push(("no credentials".to_owned(), None));

    let mut wrong = Vec::new();
    for row in &rows {
        for (who, header) in &credentials {
            let mut headers = vec![("Content-Type".to_owned(), "application/json".to_owned())];
            headers.extend(header.clone());
            let method: &'static str = match row.method.as_str() {
                "GET" => "GET",
                "POST" => "POST",
                "PUT" => "PUT",
                "PATCH" => "PATCH",
                "DELETE" => "DELETE",
                other => anyhow::bail!("unexpected method {other}"),
            };
            let body = match (method, row.path.as_str()) {
                ("GET" | "DELETE", _) => String::new(),
                // A school contact asks for its own school: name it, so the request
                // reaches validation.
                ("POST", "/v1/activity-requests") => format!(r#"{{"school_urn":"{SCHOOL}"}}"#),
                _ => "{}".to_owned(),
            }
            .into_bytes();
            let response = call(port, method, row.path.clone(), headers, body).await?;
            let status = response.status;
            let (expected, fits) = match row.allowed.get(who) {
                None => ("401", status == 401),
                Some(true) => ("allowed", !matches!(status, 401 | 403) && status < 500),
                Some(false) => ("403", status == 403),
            };
            if !fits {
                wrong.push(format!(
                    "{} {} as {who}: expected {expected}, got {status} {}",
                    row.method, row.path, response.body
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} calls broke the matrix:\n{}",
        wrong.len(),
        rows.len() * credentials.len(),
        wrong.join("\n")
    );

    // Every other method on every path: 405 with the path's methods in `Allow`, with
    // credentials or without.
    let mut served: Vec<(String, Vec<String>)> = Vec::new();
    for row in &rows {
        match served.iter_mut().find(|(path, _)| *path == row.path) {
            Some((_, methods)) => methods.push(row.method.clone()),
            None => served.push((row.path.clone(), vec![row.method.clone()])),
        }
    }
    let adviser = credentials
        .iter()
        .find(|(who, _)| who == "adviser")
        .and_then(|(_, header)| header.clone())
        .ok_or_else(|| anyhow::anyhow!("no adviser column"))?;
    let mut wrong = Vec::new();
    for (path, methods) in &served {
        let mut allow = methods.clone();
        if allow.iter().any(|method| method == "GET") {
            allow.push("HEAD".into());
        }
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if methods.iter().any(|served| served == method) {
                continue;
            }
            for header in [Some(adviser.clone()), None] {
                let response = call(
                    port,
                    method,
                    path.clone(),
                    header.into_iter().collect(),
                    Vec::new(),
                )
                .await?;
                let allowed = response
                    .headers
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case("allow"))
                    .map(|(_, value)| value.split(", ").map(str::to_owned).collect::<Vec<_>>());
                if response.status != 405
                    || allowed.as_ref() != Some(&allow)
                    || !response.body.contains("method_not_allowed")
                {
                    wrong.push(format!(
                        "{method} {path}: {} Allow {allowed:?} {}",
                        response.status, response.body
                    ));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "wrong answers to a wrong method:\n{}",
        wrong.join("\n")
    );
    let errors: Vec<_> = logs
        .text()
        .lines()
        .filter(|line| {
            serde_json::from_str::<Value>(line).is_ok_and(|entry| entry["level"] == "ERROR")
        })
        .map(str::to_owned)
        .collect();
    assert!(
        errors.is_empty(),
        "ERROR lines logged:\n{}",
        errors.join("\n")
    );

    gateway.stop().await?;
    for service in [occupations, lmi, casenotes, ambassadors] {
        service.shutdown().await?;
    }
    Ok(())
}
