//! `ingest`: a 222,480-row CSV submission through the gateway on PostgreSQL (streamed,
//! validated, stored with its outbox rows, published and applied to the occupation
//! summaries), beside PostgreSQL `COPY` of the same CSV into an equivalent table.

use std::time::{Duration, Instant};

use anyhow::Context;
use careers_testkit::{http, postgres};
use sea_orm::{ConnectionTrait, Database};
use sqlx::postgres::PgPoolCopyExt;

const STATISTICS: [&str; 12] = [
    "median", "mean", "p10", "p20", "p25", "p30", "p40", "p60", "p70", "p75", "p80", "p90",
];
const BREAKDOWNS: [&str; 5] = ["all", "full_time", "part_time", "male", "female"];
/// (pay period, a value in range for it).
const PAY: [(&str, u32); 3] = [("annual", 30_000), ("weekly", 600), ("hourly", 15)];
const YEARS: [&str; 3] = ["2022", "2023", "2024"];
/// Every unit group × year × pay period × statistic × breakdown: at least 200,000 rows,
/// and every series of every occupation ends in the latest year.
const ROWS: usize = 412 * YEARS.len() * PAY.len() * STATISTICS.len() * BREAKDOWNS.len();

/// `ROWS` distinct template rows over every unit group, as CSV with its header.
fn csv(codes: &[String]) -> String {
    let mut csv = String::from("soc_code,region,period,measure,breakdown,value,unit,source\n");
    let mut index = 0;
    for year in YEARS {
        for (pay, base) in PAY {
            for statistic in STATISTICS {
                for breakdown in BREAKDOWNS {
                    for soc in codes {
                        let value = base + (index % 100) as u32;
                        csv.push_str(&format!(
                            "{soc},K02000001,{year},{statistic}_{pay}_pay,{breakdown},{value},GBP,ONS ASHE (bench)\n"
                        ));
                        index += 1;
                    }
                }
            }
        }
    }
    csv
}

/// A memory figure of the bench process (lmi, occupations and the gateway run in it):
/// `VmHWM` is the peak resident memory, `VmRSS` the current.
fn memory_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Starts the peak over from the current resident memory (Linux `clear_refs`).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub async fn ingest() -> anyhow::Result<()> {
    let (stack, _databases) = crate::flow::start_stack().await?;
    let codes = stack.catalogue_codes().await?;
    anyhow::ensure!(
        codes.len() == 412,
        "lmi knows {} unit groups, not 412",
        codes.len()
    );
    let body = csv(&codes);
    let last_soc = codes.last().context("no occupations")?.clone();

    // Baseline: COPY of the same CSV into an equivalent table, through sea-orm's pool.
    let baseline = postgres::empty_database().await?;
    let db = Database::connect(baseline.url.as_str()).await?;
    db.execute_unprepared(
        "CREATE TABLE copied (soc_code TEXT NOT NULL, region TEXT NOT NULL, period TEXT NOT NULL, \
         measure TEXT NOT NULL, breakdown TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, \
         unit TEXT NOT NULL, source TEXT NOT NULL)",
    )
    .await?;
    let started = Instant::now();
    let mut copy = db
        .get_postgres_connection_pool()
        .copy_in_raw("COPY copied FROM STDIN (FORMAT csv, HEADER true)")
        .await?;
    copy.send(body.as_bytes()).await?;
    let copied = copy.finish().await?;
    let copy_rate = copied as f64 / started.elapsed().as_secs_f64();

    // Ours: the CSV streamed through the gateway as the ons SSC. The peak is measured
    // from here, with the CSV already in memory.
    let peak_reset = reset_peak();
    let resident_before = memory_mib("VmRSS:");
    let port = stack.gateway_port;
    let token = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let reader = stack.bearer(&["adviser"], None)?;
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        let authorization = format!("Bearer {token}");
        http::request(
            port,
            "POST",
            "/v1/lmi/submissions?submission_key=bench-ingest",
            &[
                ("Authorization", authorization.as_str()),
                ("Content-Type", "text/csv"),
            ],
            body.as_bytes(),
        )
    })
    .await??;
    let answered = started.elapsed();
    anyhow::ensure!(
        answer.status == 201,
        "ingest answered {}: {}",
        answer.status,
        answer.body
    );
    let accepted = serde_json::from_str::<serde_json::Value>(&answer.body)?["counts"]["accepted"]
        .as_u64()
        .unwrap_or_default();
    anyhow::ensure!(
        accepted == ROWS as u64,
        "accepted {accepted} of {ROWS}: {}",
        answer.body
    );

    // Events go out in SOC code order: the last code's summary is updated last. It is
    // complete when it holds every series of the latest year.
    let series = STATISTICS.len() * BREAKDOWNS.len() * PAY.len();
    let deadline = Instant::now() + Duration::from_secs(600);
    let applied = loop {
        let authorization = format!("Bearer {reader}");
        let path = format!("/v1/occupations/{last_soc}");
        let occupation = tokio::task::spawn_blocking(move || {
            http::request(
                port,
                "GET",
                &path,
                &[("Authorization", authorization.as_str())],
                &[],
            )
        })
        .await??;
        let json: serde_json::Value = serde_json::from_str(&occupation.body)?;
        let latest = json["lmi"]["figures"]
            .as_array()
            .map(|figures| {
                figures
                    .iter()
                    .filter(|figure| figure["period"] == YEARS[2])
                    .count()
            })
            .unwrap_or_default();
        if latest >= series {
            break started.elapsed();
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "summaries not updated within 600 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let memory = match (peak_reset, memory_mib("VmHWM:"), resident_before) {
        (true, Some(peak), Some(before)) => {
            format!("{peak:.0} MiB, {:.0} MiB above the start", peak - before)
        }
        _ => "unknown".to_owned(),
    };
    stack.stop().await?;

    let rate = ROWS as f64 / answered.as_secs_f64();
    println!(
        "ingest (PostgreSQL, {ROWS}-row CSV through the gateway): {rate:.0} rows/s validated and stored with \
         outbox rows ({:.1} s) | last summary updated {:.1} s after the last accepted row | \
         COPY of the same rows {copy_rate:.0} rows/s | ratio {:.2} | goal >= 0.5 | peak resident \
         memory of the bench process (gateway, lmi and occupations together, the CSV held in \
         memory) from the upload to the last summary: {memory}",
        answered.as_secs_f64(),
        (applied - answered).as_secs_f64(),
        rate / copy_rate,
    );
    Ok(())
}
