//! A front end as a browser runs it: headless Chromium (Debian's package) loads a page
//! served from another origin than the gateway's; the page's script calls the gateway's
//! search with a bearer token, as a front end would, and renders the results. The
//! rendered DOM is what is checked, so CORS (the preflight for `Authorization`, the
//! answer's headers) has to work for anything to show.

use std::{path::PathBuf, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    process::Command,
};

/// The page: the gateway's address and the token are written into it when served.
const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Occupation search</title></head>
<body><ol id="results"></ol>
<script>
const gateway = "GATEWAY", token = "TOKEN";
fetch(`${gateway}/v1/occupations/search?q=engineer&limit=5`, {
  headers: { Authorization: `Bearer ${token}` },
})
  .then((answer) => answer.ok ? answer.json() : Promise.reject(answer.status))
  .then((page) => {
    for (const item of page.items) {
      const row = document.createElement("li");
      row.dataset.soc = item.soc_code;
      row.textContent = item.title;
      document.getElementById("results").append(row);
    }
    document.body.dataset.state = "rendered";
  })
  .catch((error) => { document.body.dataset.state = `failed: ${error}`; });
</script></body></html>"#;

/// Debian's Chromium, or `CAREERS_CHROMIUM`.
fn chromium() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("CAREERS_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    anyhow::ensure!(
        path.exists(),
        "no Chromium at {}: run `scripts/tools.sh chromium` (make test does) or set CAREERS_CHROMIUM",
        path.display()
    );
    Ok(path)
}

/// Serves the page on a port of its own (another origin than the gateway's) to every
/// request, until dropped.
async fn serve_page(page: String) -> anyhow::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let port = listener.local_addr()?.port();
    let serving = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let page = page.clone();
            tokio::spawn(async move {
                let mut request = [0; 4096];
                if stream.read(&mut request).await.is_err() {
                    return;
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                    page.len()
                );
                stream.write_all(answer.as_bytes()).await.ok();
            });
        }
    });
    Ok((port, serving))
}

/// Loads the page in headless Chromium against the gateway at `gateway_url` and checks
/// what it rendered.
pub async fn search_page_renders(gateway_url: &str, token: &str) -> anyhow::Result<()> {
    let browser = chromium()?;
    let page = PAGE.replace("GATEWAY", gateway_url).replace("TOKEN", token);
    let (port, serving) = serve_page(page).await?;
    let profile = tempfile::tempdir()?;
    // The virtual time budget lets the page's fetches finish before the DOM is dumped.
    // No sandbox: the tests run as root in a container, where Chromium's sandbox cannot
    // start; the page is the test's own.
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("http://127.0.0.1:{port}/search.html"))
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    serving.abort();
    let dom = String::from_utf8(output.stdout)?;
    anyhow::ensure!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        dom.contains(r#"data-state="rendered""#),
        "the page did not render the search (blocked by CORS?):\n{dom}"
    );
    let rows: Vec<&str> = dom.split("<li data-soc=\"").skip(1).collect();
    assert!(rows.len() >= 3, "too few results rendered:\n{dom}");
    for row in &rows {
        let soc = row.split('"').next().unwrap_or_default();
        assert!(
            soc.len() == 4 && soc.bytes().all(|byte| byte.is_ascii_digit()),
            "a row without a SOC code: {row}"
        );
    }
    assert!(
        rows.iter()
            .any(|row| row.to_ascii_lowercase().contains("engineer")),
        "no engineering occupation among the results:\n{dom}"
    );
    Ok(())
}
