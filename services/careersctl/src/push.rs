//! `careersctl lmi push FILE`: an SSC's file sent through the gateway as it is read, with
//! a progress bar, then the outcome counted and the first findings listed.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context, bail};
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};

/// How many findings the summary lists; the rest are in the stored report.
const SHOWN_FINDINGS: usize = 10;

/// What to push where.
#[derive(Debug)]
pub struct Push {
    pub file: PathBuf,
    pub key: Option<String>,
    pub gateway: String,
    pub token: String,
}

/// The key when none is given: the file's name and a digest of its content, so sending
/// the same file again is a replay and a changed file is a new submission.
fn default_key(path: &Path) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    let mut file =
        std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    std::io::copy(&mut file, &mut hasher)?;
    let digest = hasher.finalize();
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("submission");
    let hex: String = digest
        .iter()
        .take(8)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    Ok(format!("{stem}-{hex}"))
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

/// Sends the file and prints the outcome; fails when the gateway refuses it.
pub async fn push(push: Push) -> anyhow::Result<()> {
    let content_type = match push
        .file
        .extension()
        .and_then(|extension| extension.to_str())
    {
        Some("csv") => "text/csv",
        Some("json") => "application/json",
        _ => bail!("{}: send a .csv or a .json file", push.file.display()),
    };
    let key = match push.key {
        Some(key) => key,
        None => default_key(&push.file)?,
    };
    let size = std::fs::metadata(&push.file)
        .with_context(|| format!("reading {}", push.file.display()))?
        .len();
    // JSON carries its own key; CSV takes it from the query.
    let query = if content_type == "text/csv" {
        format!("?submission_key={}", percent_encode(&key))
    } else {
        String::new()
    };
    let uri: hyper::Uri = format!(
        "{}/v1/lmi/submissions{query}",
        push.gateway.trim_end_matches('/')
    )
    .parse()
    .context("the gateway URL")?;
    let host = uri
        .authority()
        .context("the gateway URL has no host")?
        .to_string();

    let progress = indicatif::ProgressBar::new(size).with_style(
        indicatif::ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {eta} left")?,
    );
    let file = tokio::fs::File::open(&push.file).await?;
    let counted = progress.clone();
    let chunks = tokio_util::io::ReaderStream::new(file).map(move |chunk| {
        chunk.map(|bytes| {
            counted.inc(bytes.len() as u64);
            Frame::data(bytes)
        })
    });
    let request = hyper::Request::post(uri)
        .header(hyper::header::HOST, host)
        .header(
            hyper::header::AUTHORIZATION,
            format!("Bearer {}", push.token),
        )
        .header(hyper::header::CONTENT_TYPE, content_type)
        .header(hyper::header::CONTENT_LENGTH, size)
        .body(StreamBody::new(chunks))?;

    let connection = connect(request.uri()).await?;
    let (mut sender, driver) =
        hyper::client::conn::http1::handshake(TokioIo::new(connection)).await?;
    let driving = tokio::spawn(driver);
    let response = sender
        .send_request(request)
        .await
        .context("sending the file")?;
    progress.finish_and_clear();
    let status = response.status();
    let replayed = response.headers().contains_key("idempotent-replayed");
    let body = response.into_body().collect().await?.to_bytes();
    driving.abort();
    let answer: serde_json::Value = serde_json::from_slice(&body).with_context(|| {
        format!(
            "the gateway answered {status}: {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    if !status.is_success() {
        bail!(
            "the gateway refused the file ({status}): {}",
            answer["message"].as_str().unwrap_or_default()
        );
    }
    let counts = &answer["counts"];
    println!(
        "{} {} as {}: {} rows, {} accepted, {} held for review, {} suppressed, {} rejected",
        if replayed { "Already sent" } else { "Sent" },
        push.file.display(),
        answer["submission_key"].as_str().unwrap_or(&key),
        counts["rows"],
        counts["accepted"],
        counts["quarantined"],
        counts["suppressed"],
        counts["rejected"],
    );
    let report = answer["report"].as_array().cloned().unwrap_or_default();
    for finding in report.iter().take(SHOWN_FINDINGS) {
        println!(
            "  row {} (line {}) {} {}: {}",
            finding["row"],
            finding["line"],
            finding["field"].as_str().unwrap_or_default(),
            finding["rule"].as_str().unwrap_or_default(),
            finding["message"].as_str().unwrap_or_default(),
        );
    }
    if let Some(id) = answer["id"].as_str()
        && report.len() > SHOWN_FINDINGS
    {
        println!(
            "  … {} more: GET /v1/lmi/submissions/{id} with Accept: text/csv",
            report.len() - SHOWN_FINDINGS
        );
    }
    Ok(())
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
