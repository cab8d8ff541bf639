//! CSV submissions streamed through the gateway, on SQLite and on PostgreSQL: a file over
//! the JSON cap goes through whole; broken input (unknown column, bad quoting, invalid
//! UTF-8 after thousands of good rows, an empty file, a body cut off mid-stream) is a clear
//! 400 with nothing recorded and nothing published.

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use careers_eventbus::testing::count;
use careers_testkit::{postgres, sqlite::TestSqlite};
use common::call;
use serde_json::Value;

mod common;

const HEADER: &str = "soc_code,region,period,measure,breakdown,value,unit,source\n";
const STATISTICS: [&str; 12] = [
    "median", "mean", "p10", "p20", "p25", "p30", "p40", "p60", "p70", "p75", "p80", "p90",
];
const BREAKDOWNS: [&str; 5] = ["all", "full_time", "part_time", "male", "female"];

/// `count` distinct valid rows over the first unit groups of the catalogue.
fn rows(codes: &[String], count: usize) -> String {
    let source = "Synthetic test figures, a long source text that makes each row longer, as real \
                  provenance notes are (release, table, revision, contact); it says which survey, \
                  which wave, which weighting and which revision policy apply, and whom to ask";
    let mut csv = String::from(HEADER);
    for index in 0..count {
        let soc = &codes[index % codes.len()];
        let statistic = STATISTICS[(index / codes.len()) % STATISTICS.len()];
        let breakdown = BREAKDOWNS[(index / (codes.len() * STATISTICS.len())) % BREAKDOWNS.len()];
        let year = 2023 + index / (codes.len() * STATISTICS.len() * BREAKDOWNS.len());
        csv.push_str(&format!(
            "{soc},K02000001,{year},{statistic}_annual_pay,{breakdown},{},GBP,\"{source}\"\n",
            30_000 + index % 1000
        ));
    }
    csv
}

async fn post_csv(
    port: u16,
    token: &str,
    key: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, Value)> {
    let response = call(
        port,
        "POST",
        format!("/v1/lmi/submissions?submission_key={key}"),
        vec![
            ("Authorization".into(), format!("Bearer {token}")),
            ("Content-Type".into(), "text/csv".into()),
        ],
        body,
    )
    .await?;
    Ok((
        response.status,
        serde_json::from_str(&response.body).unwrap_or(Value::Null),
    ))
}

async fn csv_input(occupations_url: String, lmi_url: String) -> anyhow::Result<()> {
    let stack = common::Stack::start(occupations_url, lmi_url).await?;
    let port = stack.gateway_port;
    let lmi_db = stack.lmi_db.clone();
    let token = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let codes = stack.catalogue_codes().await?;
    let recorded = || async {
        Ok::<_, anyhow::Error>((
            count(&lmi_db, "SELECT COUNT(*) FROM submissions").await?,
            count(&lmi_db, "SELECT COUNT(*) FROM figures").await?,
            count(&lmi_db, "SELECT COUNT(*) FROM outbox").await?,
            count(&lmi_db, "SELECT COUNT(*) FROM staging").await?,
        ))
    };

    // Over the 8 MiB JSON cap: streamed, all of it taken.
    let big = rows(&codes, 30_000);
    assert!(big.len() > 8 * 1024 * 1024, "{} bytes", big.len());
    let (status, answer) = post_csv(port, &token, "big", big.into_bytes()).await?;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        (&answer["counts"]["rows"], &answer["counts"]["accepted"]),
        (&30_000.into(), &30_000.into()),
        "{answer}"
    );
    assert_eq!(recorded().await?.1, 30_000);

    // A JSON body near the cap goes to lmi in chunks, under gRPC's message limit.
    let json_rows: Vec<Value> = rows(&codes, 20_000)
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.splitn(8, ',').collect();
            serde_json::json!({
                "soc_code": fields[0], "region": "E92000001", "period": fields[2],
                "measure": fields[3], "breakdown": fields[4],
                "value": fields[5].parse::<f64>().unwrap_or_default(),
                "unit": fields[6], "source": fields[7].trim_matches('"'),
            })
        })
        .collect();
    let body = serde_json::json!({"submission_key": "json", "rows": json_rows}).to_string();
    assert!(
        body.len() > 4 * 1024 * 1024 && body.len() < 8 * 1024 * 1024,
        "{} bytes",
        body.len()
    );
    let response = call(
        port,
        "POST",
        "/v1/lmi/submissions".into(),
        common::auth(&token, "application/json"),
        body.into_bytes(),
    )
    .await?;
    assert_eq!(response.status, 201, "{}", response.body);
    let before = recorded().await?;
    assert_eq!(before, (2, 50_000, before.2, 0));

    // Broken input: 400 naming the problem, nothing recorded, and what was staged before
    // the break (rows are staged 5,000 at a time) deleted again.
    let good = rows(&codes, 6_000);
    let mut invalid_utf8 = good.clone().into_bytes();
    invalid_utf8.extend_from_slice(b"2134,K02000001,2024,median_annual_pay,all,\xff\xfe,GBP,x\n");
    let mut bad_quoting = good.clone();
    // A quote that swallows a delimiter leaves the record a field short.
    bad_quoting.push_str("2134,\"K02000001,2024\",median_annual_pay,all,1,GBP,x\n");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        (
            "unknown column",
            format!("{}colour\n", HEADER.trim_end())
                .replace("source\ncolour", "source,colour")
                .into_bytes(),
            "colour",
        ),
        ("invalid utf-8", invalid_utf8, "6002"),
        ("bad quoting", bad_quoting.into_bytes(), "CSV"),
        ("empty", Vec::new(), "soc_code"),
    ];
    for (name, body, mentions) in cases {
        let (status, problem) =
            post_csv(port, &token, name.replace(' ', "-").as_str(), body).await?;
        assert_eq!(status, 400, "{name}: {problem}");
        assert_eq!(problem["code"], "malformed_csv", "{name}: {problem}");
        assert!(
            problem["message"]
                .as_str()
                .unwrap_or_default()
                .contains(mentions),
            "{name}: {problem}"
        );
        // lmi deletes what it staged once it sees the stream end badly, just after the 400
        // (seconds later on a loaded 2-core machine: one run here took over 5 s).
        let mut now = recorded().await?;
        for _ in 0..200 {
            if now == before {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            now = recorded().await?;
        }
        assert_eq!(now, before, "{name} left something behind");
    }

    // Cut off mid-stream: the client promises more than it sends, then goes away.
    let body = rows(&codes, 12_000);
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        write!(
            stream,
            "POST /v1/lmi/submissions?submission_key=cut HTTP/1.1\r\nHost: 127.0.0.1\r\n\
             Authorization: Bearer {token}\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
            body.len() * 2
        )?;
        stream.write_all(body.as_bytes())?;
        stream.shutdown(std::net::Shutdown::Write)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        Ok(())
    })
    .await??;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        recorded().await?,
        before,
        "a cut-off body recorded something"
    );

    stack.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_is_streamed_and_broken_input_records_nothing_on_sqlite() -> anyhow::Result<()> {
    let (occupations, lmi) = (TestSqlite::new()?, TestSqlite::new()?);
    csv_input(occupations.url.clone(), lmi.url.clone()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_is_streamed_and_broken_input_records_nothing_on_postgres() -> anyhow::Result<()> {
    let (occupations, lmi) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    csv_input(occupations.url.clone(), lmi.url.clone()).await
}
