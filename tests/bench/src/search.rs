//! `search`: occupation search over the full seeded index (occupations on PostgreSQL), a
//! fixed mixed query set at concurrency 1 and 32, directly over gRPC and through the
//! gateway, beside PostgreSQL full-text search over the same rows in the same database: a
//! stored english `tsvector` over title, job titles, description and tasks, a GIN index,
//! `websearch_to_tsquery`, `ts_rank_cd`, LIMIT 10, warmed first. Each side's top-3 quality
//! on the committed quality set is printed beside its speed.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use careers_platform::identity::METADATA_KEY;
use careers_proto::careers::occupations::v1::{
    SearchOccupationsRequest, occupations_service_client::OccupationsServiceClient,
};
use careers_testkit::{eventually, grpc, http, repository_root};
use sea_orm::{ConnectOptions, ConnectionTrait, Database};

use crate::{millis, percentile};

const CONCURRENCY: [usize; 2] = [1, 32];

/// Quality set rows: (query, expected codes).
fn quality_set() -> anyhow::Result<Vec<(String, Vec<String>)>> {
    let path = repository_root().join("services/occupations/tests/data/search_quality.csv");
    let mut rows = Vec::new();
    for record in csv_records(&path)? {
        rows.push((
            record[0].clone(),
            record[2].split(' ').map(str::to_owned).collect(),
        ));
    }
    Ok(rows)
}

fn csv_records(path: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for line in text.lines().skip(1) {
        // The quality set quotes only its last column.
        let mut fields: Vec<String> = Vec::new();
        let mut rest = line;
        for _ in 0..3 {
            let (field, tail) = rest.split_once(',').unwrap_or((rest, ""));
            fields.push(field.to_owned());
            rest = tail;
        }
        fields.push(rest.trim_matches('"').to_owned());
        rows.push(fields);
    }
    Ok(rows)
}

/// The fixed mixed set: the quality set's queries, and every 150th coding index title.
fn query_set(quality: &[(String, Vec<String>)]) -> anyhow::Result<Vec<String>> {
    let index = std::fs::read_to_string(
        repository_root().join("seeds/occupations/soc2020_coding_index.csv"),
    )?;
    let mut queries: Vec<String> = quality.iter().map(|(query, _)| query.clone()).collect();
    queries.extend(
        index
            .lines()
            .skip(1)
            .step_by(150)
            .filter_map(|line| line.split(',').nth(2))
            .filter(|title| !title.is_empty() && !title.starts_with('"'))
            .map(str::to_owned),
    );
    Ok(queries)
}

/// Runs `call` over `queries` round robin from `workers` tasks for `seconds`; returns
/// (queries a second, sorted latencies in seconds).
pub(crate) async fn drive<F, Fut>(
    queries: Arc<Vec<String>>,
    workers: usize,
    seconds: u64,
    call: F,
) -> anyhow::Result<(f64, Vec<f64>)>
where
    F: Fn(String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (queries, call) = (queries.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut next = worker * 7;
            while Instant::now() < deadline {
                let query = queries[next % queries.len()].clone();
                next += 1;
                let begun = Instant::now();
                call(query).await?;
                latencies.push(begun.elapsed().as_secs_f64());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((latencies.len() as f64 / elapsed, latencies))
}

pub(crate) fn line(label: &str, workers: usize, rate: f64, latencies: &[f64]) -> String {
    format!(
        "{label} c{workers}: {rate:.0} q/s, p50 {}, p99 {}",
        millis(percentile(latencies, 0.5)),
        millis(percentile(latencies, 0.99))
    )
}

pub async fn search(seconds: u64) -> anyhow::Result<()> {
    let seconds = seconds.min(10);
    let (stack, databases) = crate::flow::start_stack().await?;
    let reader = stack.bearer(&["adviser"], None)?;
    let gateway = stack.gateway_port;
    let bearer = format!("Bearer {reader}");
    eventually(
        Duration::from_secs(120),
        "the search index holds the catalogue",
        || {
            let bearer = bearer.clone();
            async move {
                let response = tokio::task::spawn_blocking(move || {
                    http::request(
                        gateway,
                        "GET",
                        "/v1/occupations/search?q=sparky",
                        &[("Authorization", bearer.as_str())],
                        &[],
                    )
                })
                .await??;
                Ok(response.status == 200 && response.body.contains("\"5241\""))
            }
        },
    )
    .await?;
    let quality = quality_set()?;
    let queries = Arc::new(query_set(&quality)?);

    // Ours, directly over gRPC.
    let channel = grpc::channel(stack.occupations_port())?;
    let identity: tonic::metadata::MetadataValue<_> =
        stack.occupations_identity(&["adviser"])?.parse()?;
    let direct = {
        let (channel, identity) = (channel.clone(), identity.clone());
        move |query: String| {
            let (channel, identity) = (channel.clone(), identity.clone());
            async move {
                let mut request = tonic::Request::new(SearchOccupationsRequest {
                    query,
                    limit: 10,
                    ..Default::default()
                });
                request.metadata_mut().insert(METADATA_KEY, identity);
                OccupationsServiceClient::new(channel)
                    .search_occupations(request)
                    .await?;
                anyhow::Ok(())
            }
        }
    };
    let mut ours_quality = 0;
    for (query, expected) in &quality {
        let mut request = tonic::Request::new(SearchOccupationsRequest {
            query: query.clone(),
            limit: 3,
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert(METADATA_KEY, identity.clone());
        let hits = OccupationsServiceClient::new(channel.clone())
            .search_occupations(request)
            .await?
            .into_inner()
            .items;
        if hits.iter().any(|hit| expected.contains(&hit.soc_code)) {
            ours_quality += 1;
        }
    }
    // Through the gateway, over HTTP.
    let through_gateway = {
        let bearer = bearer.clone();
        move |query: String| {
            let bearer = bearer.clone();
            async move {
                let path = format!("/v1/occupations/search?q={}&limit=10", encode(&query));
                let response = tokio::task::spawn_blocking(move || {
                    http::request(
                        gateway,
                        "GET",
                        &path,
                        &[("Authorization", bearer.as_str())],
                        &[],
                    )
                })
                .await??;
                anyhow::ensure!(response.status == 200, "{}", response.body);
                anyhow::Ok(())
            }
        }
    };

    // The baseline: PostgreSQL full-text search in the occupations database itself.
    let mut options = ConnectOptions::new(databases[0].url.clone());
    options.max_connections(33).sqlx_logging(false);
    let pg = Database::connect(options).await?;
    for sql in [
        "DROP TABLE IF EXISTS bench_fts",
        "CREATE TABLE bench_fts AS SELECT o.soc_code, to_tsvector('english', o.title || ' ' || \
         coalesce((SELECT string_agg(a.title, ' ') FROM alternative_titles a WHERE a.soc_code = o.soc_code), '') \
         || ' ' || o.description || ' ' || o.tasks) AS document FROM occupations o",
        "CREATE INDEX bench_fts_document ON bench_fts USING GIN (document)",
        "ANALYZE bench_fts",
    ] {
        pg.execute_unprepared(sql).await?;
    }
    let fts = |pg: sea_orm::DatabaseConnection, query: String| async move {
        let rows = pg
            .query_all_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DatabaseBackend::Postgres,
                "SELECT soc_code FROM bench_fts, websearch_to_tsquery('english', $1) query \
                 WHERE document @@ query ORDER BY ts_rank_cd(document, query) DESC, soc_code LIMIT 10",
                [query.into()],
            ))
            .await?;
        rows.iter()
            .map(|row| row.try_get_by_index::<String>(0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::from)
    };
    let mut pg_quality = 0;
    for (query, expected) in &quality {
        let found = fts(pg.clone(), query.clone()).await?;
        if found.iter().take(3).any(|code| expected.contains(code)) {
            pg_quality += 1;
        }
    }
    let baseline = {
        let pg = pg.clone();
        move |query: String| {
            let pg = pg.clone();
            async move { fts(pg, query).await.map(|_| ()) }
        }
    };

    let mut figures = Vec::new();
    for workers in CONCURRENCY {
        // Warm each path once over the whole set, then time it.
        drive(queries.clone(), 1, 1, baseline.clone()).await?;
        let (pg_rate, pg_latencies) =
            drive(queries.clone(), workers, seconds, baseline.clone()).await?;
        drive(queries.clone(), 1, 1, direct.clone()).await?;
        let (rate, latencies) = drive(queries.clone(), workers, seconds, direct.clone()).await?;
        let (gateway_rate, gateway_latencies) =
            drive(queries.clone(), workers, seconds, through_gateway.clone()).await?;
        figures.push(format!(
            "{} | {} | {} | ratio direct/PostgreSQL {:.1}x",
            line("direct gRPC", workers, rate, &latencies),
            line("gateway HTTP", workers, gateway_rate, &gateway_latencies),
            line("PostgreSQL FTS", workers, pg_rate, &pg_latencies),
            rate / pg_rate
        ));
    }
    let total = quality.len();
    println!(
        "search ({} queries: the quality set and every 150th index title; {seconds} s per run): {} \
         | top-3 quality ours {ours_quality}/{total}, PostgreSQL FTS {pg_quality}/{total} \
         | goal ≥ 5x PostgreSQL's throughput, p99 < 10 ms direct",
        queries.len(),
        figures.join(" || "),
    );
    pg.close().await?;
    stack.stop().await
}

/// Percent-encodes a query parameter value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
