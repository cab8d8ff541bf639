//! `careersctl lmi push FILE`: an SSC's file sent through the gateway as it is read, with
//! its progress in rows, then the outcome counted and the first findings listed.
//!
//! A dropped connection is sent again with the same submission key: lmi records a
//! submission only once its sealed end arrives, so a cut upload left nothing behind, and an
//! upload that was recorded before the answer was lost is answered from the record.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::progress::{Display, Progress, RecordCounter};

/// How many findings, and figures of a delta, the summary lists; `--json` has them all.
const SHOWN: usize = 10;

/// What to push where, and how to report it.
#[derive(Debug)]
pub struct Push {
    pub file: PathBuf,
    pub key: Option<String>,
    pub gateway: String,
    pub token: String,
    /// Ask for the delta and record nothing.
    pub dry_run: bool,
    /// Print the answer as one JSON document instead of a summary.
    pub json: bool,
    pub display: Display,
    /// Attempts after the first when the connection fails or the gateway is unavailable.
    pub retries: usize,
}

/// How a push ended, for the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every row was accepted (or suppressed, which is a kind of acceptance).
    AllAccepted,
    /// Some rows were rejected or held for review.
    NeedsAttention,
}

/// What the file holds: its default key and how many rows it has.
#[derive(Debug)]
struct Survey {
    key: String,
    rows: u64,
    size: u64,
}

/// One pass over the file: the key when none is given (the file's name and a digest of its
/// content, so sending the same file again is a replay and a changed file is a new
/// submission), and its rows, the total the progress counts towards.
fn survey(path: &Path, json: bool) -> anyhow::Result<Survey> {
    use std::io::Read;
    let reading = || format!("reading {}", path.display());
    let mut file = std::fs::File::open(path).with_context(reading)?;
    let (mut hasher, mut records, mut size) = (Sha256::new(), RecordCounter::default(), 0u64);
    // Read in pieces: a CSV extract has no size cap, and need not fit in memory.
    let mut buffer = vec![0; 256 * 1024];
    loop {
        let read = file.read(&mut buffer).with_context(reading)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        records.feed(&buffer[..read]);
        size += read as u64;
    }
    let rows = if json {
        // A JSON body is capped (8 MiB) by the gateway. One it will refuse counts as no
        // rows here; its answer says why.
        let reader = std::io::BufReader::new(std::fs::File::open(path).with_context(reading)?);
        serde_json::from_reader::<_, serde_json::Value>(reader)
            .ok()
            .and_then(|document| document["rows"].as_array().map(Vec::len))
            .unwrap_or_default() as u64
    } else {
        records.rows_total()
    };
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("submission");
    let hex: String = hasher
        .finalize()
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(Survey {
        key: format!("{stem}-{hex}"),
        rows,
        size,
    })
}

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}

/// A connection to `uri`'s host: TLS (the system's roots, ring) for https.
async fn connect(uri: &hyper::Uri) -> anyhow::Result<Box<dyn Connection>> {
    let host = uri
        .host()
        .context("the gateway URL has no host")?
        .to_owned();
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    tcp.set_nodelay(true)?;
    if !https {
        return Ok(Box::new(tcp));
    }
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(host.clone())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with {host}"))?;
    Ok(Box::new(tls))
}

/// Why an attempt failed, and whether sending again with the same key can help.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    /// The connection failed or was cut, or the gateway was briefly unavailable.
    #[error("{0:#}")]
    Transient(anyhow::Error),
    #[error("{0:#}")]
    Fatal(anyhow::Error),
}

impl AttemptError {
    fn transient(&self) -> bool {
        matches!(self, Self::Transient(_))
    }
}

/// The gateway's answer to one attempt.
#[derive(Debug)]
struct Answer {
    replayed: bool,
    body: serde_json::Value,
}

/// Sends the file, retrying a dropped connection with the same key, and prints the outcome.
pub async fn push(push: Push) -> anyhow::Result<Verdict> {
    let content_type = match push
        .file
        .extension()
        .and_then(|extension| extension.to_str())
    {
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        _ => bail!("{}: send a .csv or a .json file", push.file.display()),
    };
    let survey = survey(&push.file, content_type == "application/json")?;
    let key = push.key.clone().unwrap_or_else(|| survey.key.clone());
    // JSON carries its own key; CSV takes it from the query.
    let mut query = Vec::new();
    if content_type == "text/csv" {
        query.push(format!("submission_key={}", percent_encode(&key)));
    }
    if push.dry_run {
        query.push("dry_run=true".to_owned());
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let uri: hyper::Uri = format!(
        "{}/v1/lmi/submissions{query}",
        push.gateway.trim_end_matches('/')
    )
    .parse()
    .context("the gateway URL")?;

    let policy = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(push.retries)
        .with_jitter();
    let answer = (|| send_once(&push, &uri, content_type, &survey))
        .retry(policy)
        .sleep(tokio::time::sleep)
        .when(AttemptError::transient)
        .notify(|error, wait| {
            eprintln!(
                "careersctl: {error}; sending again with the same key in {:.1} s",
                wait.as_secs_f64()
            );
        })
        .await
        .map_err(|error| match error {
            AttemptError::Transient(error) => error.context(format!(
                "giving up after {} attempts; run the same command again to resume (the key \
                 is {key})",
                push.retries + 1
            )),
            AttemptError::Fatal(error) => error,
        })?;
    let verdict = verdict(&answer.body["counts"]);
    if push.json {
        let mut document = answer.body;
        document["file"] = push.file.display().to_string().into();
        document["replayed"] = answer.replayed.into();
        document["dry_run"] = push.dry_run.into();
        println!("{document:#}");
    } else {
        print_summary(&push, &key, &answer);
    }
    Ok(verdict)
}

/// One attempt: the file read and sent as hyper asks for it, so the rows counted are the rows
/// the connection took.
async fn send_once(
    push: &Push,
    uri: &hyper::Uri,
    content_type: &'static str,
    survey: &Survey,
) -> Result<Answer, AttemptError> {
    let transient = |error: anyhow::Error| AttemptError::Transient(error);
    let fatal = |error: anyhow::Error| AttemptError::Fatal(error);
    let host = uri
        .authority()
        .context("the gateway URL has no host")
        .map_err(fatal)?
        .to_string();
    let file = tokio::fs::File::open(&push.file)
        .await
        .with_context(|| format!("reading {}", push.file.display()))
        .map_err(fatal)?;
    let progress = Arc::new(Progress::start(survey.rows, push.display));
    let counted = progress.clone();
    let (mut records, mut bytes) = (RecordCounter::default(), 0u64);
    let (total_rows, size, csv) = (survey.rows, survey.size.max(1), content_type == "text/csv");
    let chunks = tokio_util::io::ReaderStream::new(file).map(move |chunk| {
        chunk.map(|chunk| {
            bytes += chunk.len() as u64;
            let sent = if csv {
                records.feed(&chunk);
                records.rows_complete()
            } else {
                total_rows * bytes / size
            };
            counted.sent(sent);
            if bytes == size {
                counted.all_sent();
            }
            Frame::data(chunk)
        })
    });
    let request = hyper::Request::post(uri.clone())
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", push.token),
        )
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header(hyper::header::CONTENT_LENGTH, survey.size)
        .body(StreamBody::new(chunks))
        .map_err(|error| fatal(error.into()))?;

    let connection = connect(request.uri()).await.map_err(transient)?;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(connection))
        .await
        .map_err(|error| transient(error.into()))?;
    // Aborted on every way out, which also ends the progress it holds.
    let _driving = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(driver));
    let response = sender
        .send_request(request)
        .await
        .context("the connection to the gateway was lost while sending")
        .map_err(transient)?;
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = response
        .into_body()
        .collect()
        .await
        .context("the connection to the gateway was lost before its answer was read")
        .map_err(transient)?
        .to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body)
        .with_context(|| {
            format!(
                "the gateway answered {status}: {}",
                String::from_utf8_lossy(&body)
            )
        })
        .map_err(|error| {
            // A proxy in front of the gateway answers its own pages when it is unavailable.
            if unavailable(status) {
                transient(error)
            } else {
                fatal(error)
            }
        })?;
    if !status.is_success() {
        let refused = anyhow::anyhow!(
            "the gateway refused the file ({status} {}): {}",
            body["code"].as_str().unwrap_or_default(),
            body["message"].as_str().unwrap_or_default()
        );
        return Err(if unavailable(status) {
            transient(refused)
        } else {
            fatal(refused)
        });
    }
    Ok(Answer { replayed, body })
}

/// Answers that say "not now" rather than "not this".
fn unavailable(status: hyper::StatusCode) -> bool {
    use hyper::StatusCode;
    [
        StatusCode::TOO_MANY_REQUESTS,
        StatusCode::BAD_GATEWAY,
        StatusCode::SERVICE_UNAVAILABLE,
        StatusCode::GATEWAY_TIMEOUT,
    ]
    .contains(&status)
}

fn verdict(counts: &serde_json::Value) -> Verdict {
    let count = |name: &str| counts[name].as_u64().unwrap_or_default();
    if count("rejected") + count("quarantined") > 0 {
        Verdict::NeedsAttention
    } else {
        Verdict::AllAccepted
    }
}

/// The counts, the first findings and, for a dry run, the delta, for a person to read.
fn print_summary(push: &Push, key: &str, answer: &Answer) {
    let body = &answer.body;
    let counts = &body["counts"];
    let sent = match (push.dry_run, answer.replayed) {
        (true, _) => "Dry run of",
        (false, true) => "Already sent",
        (false, false) => "Sent",
    };
    println!(
        "{sent} {} as {}: {} rows, {} accepted, {} held for review, {} suppressed, {} rejected",
        push.file.display(),
        body["submission_key"].as_str().unwrap_or(key),
        counts["rows"],
        counts["accepted"],
        counts["quarantined"],
        counts["suppressed"],
        counts["rejected"],
    );
    let report = body["report"].as_array().cloned().unwrap_or_default();
    for finding in report.iter().take(SHOWN) {
        println!(
            "  row {} (line {}) {} {}: {}",
            finding["row"],
            finding["line"],
            finding["field"].as_str().unwrap_or_default(),
            finding["rule"].as_str().unwrap_or_default(),
            finding["message"].as_str().unwrap_or_default(),
        );
    }
    if report.len() > SHOWN {
        match body["id"].as_str() {
            Some(id) => println!(
                "  … {} more: GET /v1/lmi/submissions/{id} with Accept: text/csv",
                report.len() - SHOWN
            ),
            None => println!("  … {} more: --json lists them all", report.len() - SHOWN),
        }
    }
    if push.dry_run {
        print_delta(&body["delta"]);
        println!("Nothing was recorded (dry run).");
    }
}

/// The delta of a dry run as a table: what would be added, what would change from what to
/// what, and how many figures would stay as they are.
fn print_delta(delta: &serde_json::Value) {
    let added = delta["added"].as_array().cloned().unwrap_or_default();
    let changed = delta["changed"].as_array().cloned().unwrap_or_default();
    println!(
        "Delta: {} added, {} changed, {} unchanged",
        added.len(),
        changed.len(),
        delta["unchanged"]
    );
    let figure = |figure: &serde_json::Value| {
        format!(
            "{:<8} {:<10} {:<8} {:<28} {:<10}",
            figure["soc_code"].as_str().unwrap_or_default(),
            figure["region"].as_str().unwrap_or_default(),
            figure["period"].as_str().unwrap_or_default(),
            figure["measure"].as_str().unwrap_or_default(),
            figure["breakdown"].as_str().unwrap_or_default(),
        )
    };
    let heading = format!(
        "{:<8} {:<10} {:<8} {:<28} {:<10}",
        "soc", "region", "period", "measure", "breakdown"
    );
    if !changed.is_empty() {
        println!("  changed:\n  {heading} {:>12} {:>12}", "old", "new");
        for item in changed.iter().take(SHOWN) {
            println!(
                "  {} {:>12} {:>12}",
                figure(item),
                item["old_value"],
                item["new_value"]
            );
        }
        if changed.len() > SHOWN {
            println!(
                "  … {} more changed: --json lists them all",
                changed.len() - SHOWN
            );
        }
    }
    if !added.is_empty() {
        println!("  added:\n  {heading} {:>12}", "value");
        for item in added.iter().take(SHOWN) {
            println!("  {} {:>12}", figure(item), item["value"]);
        }
        if added.len() > SHOWN {
            println!(
                "  … {} more added: --json lists them all",
                added.len() - SHOWN
            );
        }
    }
}

/// Percent-encodes a query value (keys are usually plain, but need not be).
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_key_follows_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ashe 2024.csv");
        std::fs::write(&path, "soc_code\n2134\n").unwrap();
        let default_key = |path: &Path| survey(path, false).map(|survey| survey.key);
        let first = default_key(&path).unwrap();
        assert!(
            first.starts_with("ashe 2024-") && first.len() == "ashe 2024-".len() + 16,
            "{first}"
        );
        assert_eq!(default_key(&path).unwrap(), first);
        std::fs::write(&path, "soc_code\n2135\n").unwrap();
        assert_ne!(default_key(&path).unwrap(), first);
        assert_eq!(percent_encode("ashe 2024-ab"), "ashe%202024-ab");
    }
}
