//! Services as Kubernetes runs them: the real binaries, as processes, on PostgreSQL and
//! nats-server.
//!
//! Scale-out: two occupations replicas share the `occupations_lmi` durable while lmi publishes
//! FiguresPublished events. One replica gets SIGTERM in the middle of the stream; the
//! other carries on. Every event is applied exactly once across the two (the counts each
//! logs when it stops add up to the events published, and the inbox holds each once).
//! lmi gets SIGTERM in the middle of a streamed submission: the call completes, then the
//! process exits 0.
//!
//! Start: a database that is down, then not yet migrated, leaves a pod alive (liveness
//! SERVING, so it is never restarted) and unready until both are fixed.
//!
//! Balancing: one gateway spreads reads over two occupations replicas, and when one is
//! killed (`kill -9`) reads go on and the dead replica is dropped within seconds.

use std::time::Duration;

use careers_eventbus::{Event, testing::count};
use careers_proto::careers::lmi::{
    events::v1::FiguresPublished,
    v1::{
        FigureRow, FigureRows, SubmissionHeader, SubmitFiguresRequest,
        lmi_service_client::LmiServiceClient, submit_figures_request::Part,
    },
};
use careers_testkit::{
    eventually, free_port, grpc,
    nats::NatsServer,
    postgres,
    postgres::PgCluster,
    process::{self, ServiceProcess},
    service::TestKeys,
};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tonic_health::pb::health_check_response::ServingStatus;

const WAIT: Duration = Duration::from_secs(120);
/// The longest a process may take to drain and exit after SIGTERM.
const STOP: Duration = Duration::from_secs(60);
/// Periods submitted before, during and after the first replica stops; the last one is
/// the submission lmi is stopped in the middle of.
const PERIODS: [&str; 6] = ["2020", "2021", "2022", "2023", "2024", "2025"];

/// The environment of a service process: `CAREERS_<SERVICE>__<KEY>` for each setting.
fn environment(service: &str, settings: &[(&str, String)]) -> Vec<(String, String)> {
    let prefix = format!("CAREERS_{}", service.to_ascii_uppercase());
    settings
        .iter()
        .map(|(key, value)| {
            (
                format!("{prefix}__{}", key.replace('.', "__").to_ascii_uppercase()),
                value.clone(),
            )
        })
        .collect()
}

/// Settings shared by every process: the stores are migrated by a `seed` run first, as
/// the migration Job does, and the replicas start with `migrate_on_start` off.
fn replica(
    service: &str,
    database_url: &str,
    nats_url: &str,
    port: u16,
    keys: &TestKeys,
) -> Vec<(String, String)> {
    environment(
        service,
        &[
            ("database.url", database_url.to_owned()),
            ("database.migrate_on_start", "false".into()),
            ("nats.url", nats_url.to_owned()),
            ("grpc.listen", format!("127.0.0.1:{port}")),
            ("metrics.enabled", "false".into()),
            ("identity.jwks_path", keys.jwks_path.display().to_string()),
            ("shutdown.drain_delay", "500ms".into()),
            // Small batches spread the stream over both replicas; a short ack wait
            // hands what the stopped one had pulled to the other soon.
            ("inbox.batch_size", "5".into()),
            ("inbox.ack_wait", "3s".into()),
        ],
    )
}

async fn seed(service: &str, database_url: &str) -> anyhow::Result<()> {
    let seeds = careers_testkit::repository_root().join("seeds");
    let seeds = seeds.display().to_string();
    process::run(
        service,
        &["seed", "--dir", &seeds],
        &environment(service, &[("database.url", database_url.to_owned())]),
    )
    .await
}

/// One row per code and measure (`<statistic>_<annual|weekly|hourly>_pay`).
fn rows(codes: &[String], period: &str, measures: &[&str]) -> Vec<FigureRow> {
    let mut rows = Vec::with_capacity(codes.len() * measures.len());
    for measure in measures {
        let base = match measure.rsplit('_').nth(1) {
            Some("weekly") => 600.0,
            Some("hourly") => 15.0,
            _ => 30_000.0,
        };
        for (index, soc) in codes.iter().enumerate() {
            rows.push(FigureRow {
                soc_code: soc.clone(),
                region: "K02000001".into(),
                period: period.into(),
                measure: (*measure).into(),
                breakdown: "all".into(),
                value: base + (index % 100) as f64,
                unit: "GBP".into(),
                source: "scale-out test".into(),
                ..FigureRow::default()
            });
        }
    }
    rows
}

fn header(key: &str) -> SubmitFiguresRequest {
    SubmitFiguresRequest {
        part: Some(Part::Header(SubmissionHeader {
            submission_key: key.into(),
            dry_run: false,
            sealed: false,
        })),
    }
}

fn chunk(rows: Vec<FigureRow>) -> SubmitFiguresRequest {
    SubmitFiguresRequest {
        part: Some(Part::Rows(FigureRows { rows })),
    }
}

/// Submits `messages` to lmi as the ONS publisher; returns how many rows it accepted.
async fn submit(
    port: u16,
    keys: &TestKeys,
    messages: impl tokio_stream::Stream<Item = SubmitFiguresRequest> + Send + 'static,
) -> anyhow::Result<u64> {
    let channel = tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))?
        .timeout(WAIT)
        .connect_lazy();
    let mut client = LmiServiceClient::new(channel);
    let mut request = tonic::Request::new(messages);
    let token = keys.signer.sign(&careers_platform::identity::Identity {
        sub: "scale-out-test".into(),
        roles: vec!["ssc_publisher".into()],
        org: None,
        ssc: Some("ons".into()),
    })?;
    request
        .metadata_mut()
        .insert(careers_platform::identity::METADATA_KEY, token.parse()?);
    let answer = client.submit_figures(request).await?.into_inner();
    Ok(answer
        .submission
        .and_then(|submission| submission.counts)
        .map(|counts| counts.accepted)
        .unwrap_or_default())
}

/// The number of events the `occupations_lmi` durable applied, from the replica's
/// "consumer stopped" log line; fails when the replica did not log one (it did not
/// drain).
fn applied_by(replica: &ServiceProcess) -> anyhow::Result<u64> {
    fn find(value: &serde_json::Value, key: &str) -> Option<serde_json::Value> {
        match value {
            serde_json::Value::Object(map) => map
                .get(key)
                .cloned()
                .or_else(|| map.values().find_map(|inner| find(inner, key))),
            _ => None,
        }
    }
    replica
        .logs()
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|line| {
            find(line, "message").is_some_and(|message| message == "consumer stopped")
                && find(line, "durable").is_some_and(|durable| durable == "occupations_lmi")
        })
        .and_then(|line| find(&line, "applied")?.as_u64())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no \"consumer stopped\" line for occupations_lmi in:\n{}",
                replica.logs().join("\n")
            )
        })
}

async fn inbox(db: &DatabaseConnection) -> anyhow::Result<i64> {
    Ok(count(
        db,
        "SELECT COUNT(*) FROM inbox WHERE consumer = 'occupations_lmi'",
    )
    .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_a_durable_and_sigterm_drains_requests_and_events() -> anyhow::Result<()>
{
    let (occupations_database, lmi_database) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    let nats = NatsServer::start()?;
    let keys = TestKeys::new()?;
    seed("occupations", &occupations_database.url).await?;
    seed("lmi", &lmi_database.url).await?;
    let occupations_db = Database::connect(occupations_database.url.as_str()).await?;
    let lmi_db = Database::connect(lmi_database.url.as_str()).await?;

    let ports = [free_port()?, free_port()?];
    let occupations_replica = |port| {
        let environment = replica(
            "occupations",
            &occupations_database.url,
            &nats.url(),
            port,
            &keys,
        );
        ServiceProcess::spawn("occupations", &environment)
    };
    let (mut first, mut second) = (
        occupations_replica(ports[0])?,
        occupations_replica(ports[1])?,
    );
    let lmi_port = free_port()?;
    let lmi_environment = replica("lmi", &lmi_database.url, &nats.url(), lmi_port, &keys);
    let mut lmi = ServiceProcess::spawn("lmi", &lmi_environment)?;
    for port in ports {
        grpc::wait_for_health(
            port,
            careers_proto::service_names::OCCUPATIONS,
            ServingStatus::Serving,
            WAIT,
        )
        .await?;
    }
    // lmi learns the catalogue from the events the two replicas relay.
    eventually(WAIT, "lmi knows the catalogue", || async {
        Ok(count(&lmi_db, "SELECT COUNT(*) FROM known_occupations").await? == 412)
    })
    .await?;
    let codes = lmi_db
        .query_all_raw(Statement::from_string(
            lmi_db.get_database_backend(),
            "SELECT soc_code FROM known_occupations ORDER BY soc_code",
        ))
        .await?
        .iter()
        .map(|row| row.try_get_by_index::<String>(0))
        .collect::<Result<Vec<_>, _>>()?;

    let submit_periods = |periods: &'static [&'static str]| {
        let (keys, codes) = (&keys, &codes);
        async move {
            for period in periods {
                let rows = rows(codes, period, &["median_annual_pay"]);
                let messages = tokio_stream::iter([header(period), chunk(rows)]);
                assert_eq!(submit(lmi_port, keys, messages).await?, 412);
            }
            anyhow::Ok(())
        }
    };

    // Three submissions stream to both replicas; the first is stopped part-way.
    submit_periods(&PERIODS[..3]).await?;
    eventually(WAIT, "both replicas took events", || async {
        Ok(inbox(&occupations_db).await? >= 100)
    })
    .await?;
    first.stop(STOP).await?;
    let stopped_at = inbox(&occupations_db).await?;

    // Two more while only the second replica runs.
    submit_periods(&PERIODS[3..5]).await?;

    // The last submission is in flight when lmi gets SIGTERM: it still completes. Its
    // first chunk is large enough (over 5,000 rows) for lmi to stage it at once.
    let last = PERIODS[5];
    let statistics = [
        "median", "mean", "p10", "p20", "p25", "p30", "p40", "p60", "p70", "p75", "p80", "p90",
    ];
    let mut measures: Vec<String> = statistics
        .iter()
        .map(|statistic| format!("{statistic}_annual_pay"))
        .collect();
    measures.push("median_weekly_pay".into());
    let measures: Vec<&str> = measures.iter().map(String::as_str).collect();
    let first_chunk = rows(&codes, last, &measures);
    let second_chunk = rows(&codes, last, &["median_hourly_pay"]);
    let sent = (first_chunk.len() + second_chunk.len()) as u64;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    sender.send(header(last)).await?;
    sender.send(chunk(first_chunk)).await?;
    let upload = submit(
        lmi_port,
        &keys,
        tokio_stream::wrappers::ReceiverStream::new(receiver),
    );
    tokio::pin!(upload);
    // The call is driven here until lmi has staged the first chunk.
    let staged = async {
        eventually(WAIT, "lmi staged the first rows", || async {
            Ok(count(&lmi_db, "SELECT COUNT(*) FROM staging").await? > 0)
        })
        .await
    };
    tokio::select! {
        result = &mut upload => anyhow::bail!("the submission ended before it was complete: {result:?}"),
        result = staged => result?,
    }
    lmi.terminate()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    sender.send(chunk(second_chunk)).await?;
    drop(sender);
    assert_eq!(upload.await?, sent, "the in-flight submission was cut off");
    let status = lmi.wait(STOP).await?;
    assert!(status.success(), "lmi exited with {status}");
    // Restarted, as a rolling update does, so its outbox publishes the rest.
    let mut lmi = ServiceProcess::spawn("lmi", &lmi_environment)?;

    let subject = FiguresPublished::SUBJECT;
    let published = count(
        &lmi_db,
        &format!("SELECT COUNT(*) FROM outbox WHERE subject = '{subject}'"),
    )
    .await?;
    assert_eq!(published, 412 * PERIODS.len() as i64);
    eventually(WAIT, "every event applied", || async {
        Ok(inbox(&occupations_db).await? == published)
    })
    .await?;
    second.stop(STOP).await?;

    let (by_first, by_second) = (applied_by(&first)?, applied_by(&second)?);
    println!(
        "events: {published}; applied by the first replica {by_first}, by the second \
         {by_second}; the inbox held {stopped_at} when the first stopped"
    );
    assert!(by_first > 0 && by_second > 0, "the replicas did not share");
    assert_eq!(
        by_first + by_second,
        published as u64,
        "applied across the replicas (exactly once)"
    );
    assert_eq!(inbox(&occupations_db).await?, published);
    // Each summary holds the latest period.
    assert_eq!(
        count(
            &occupations_db,
            &format!(
                "SELECT COUNT(*) FROM lmi_figures WHERE measure = 'median_annual_pay' AND period = '{last}'"
            ),
        )
        .await?,
        412
    );
    lmi.stop(STOP).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_down_or_unmigrated_at_start_leaves_the_pod_alive_and_unready() -> anyhow::Result<()>
{
    let cluster = PgCluster::start()?;
    let admin = Database::connect(cluster.admin_url().as_str()).await?;
    admin.execute_unprepared("CREATE DATABASE startup").await?;
    admin.close().await?;
    let url = format!("postgres://postgres@127.0.0.1:{}/startup", cluster.port);
    cluster.stop()?;

    let keys = TestKeys::new()?;
    let port = free_port()?;
    let unreachable_nats = format!("nats://127.0.0.1:{}", free_port()?);
    let mut environment = replica("occupations", &url, &unreachable_nats, port, &keys);
    environment.extend(self::environment(
        "occupations",
        &[("readiness.catch_up_timeout", "1s".into())],
    ));
    let mut occupations = ServiceProcess::spawn("occupations", &environment)?;
    grpc::wait_for_health(port, "liveness", ServingStatus::Serving, WAIT).await?;
    let full_name = careers_proto::service_names::OCCUPATIONS;
    for _ in 0..10 {
        assert_eq!(
            grpc::health(port, full_name).await?,
            ServingStatus::NotServing
        );
        assert!(occupations.running(), "exited with the database down");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // The database is back, its schema not yet migrated: still unready, and it says why.
    cluster.restart()?;
    eventually(WAIT, "the wait for the migration Job logged", || {
        let logs = occupations.logs();
        async move { Ok(logs.iter().any(|line| line.contains("migrations pending"))) }
    })
    .await?;
    assert_eq!(
        grpc::health(port, full_name).await?,
        ServingStatus::NotServing
    );
    assert!(occupations.running());

    process::run(
        "occupations",
        &["migrate"],
        &self::environment("occupations", &[("database.url", url.clone())]),
    )
    .await?;
    grpc::wait_for_health(port, full_name, ServingStatus::Serving, WAIT).await?;
    occupations.stop(STOP).await
}

/// Reads of one occupation through the gateway, `count` of them, `parallel` at a time;
/// returns how many did not answer 200.
async fn read_through(gateway_port: u16, token: &str, count: usize, parallel: usize) -> usize {
    let headers = careers_stack::auth(token, "application/json");
    let mut failed = 0;
    let mut remaining = count;
    while remaining > 0 {
        let batch = remaining.min(parallel);
        remaining -= batch;
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..batch {
            calls.spawn(careers_stack::call(
                gateway_port,
                "GET",
                "/v1/occupations/2134".into(),
                headers.clone(),
                Vec::new(),
            ));
        }
        while let Some(answer) = calls.join_next().await {
            match answer {
                Ok(Ok(response)) if response.status == 200 => {}
                Ok(Ok(response)) => {
                    println!("read failed: {} {}", response.status, response.body);
                    failed += 1;
                }
                other => {
                    println!("read failed: {other:?}");
                    failed += 1;
                }
            }
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_spreads_reads_over_replicas_and_drops_a_killed_one() -> anyhow::Result<()> {
    let database = postgres::empty_database().await?;
    let nats = NatsServer::start()?;
    let internal = TestKeys::new()?;
    seed("occupations", &database.url).await?;
    let ports = [free_port()?, free_port()?];
    let replica_process = |port| {
        ServiceProcess::spawn(
            "occupations",
            &replica("occupations", &database.url, &nats.url(), port, &internal),
        )
    };
    let mut replicas = [replica_process(ports[0])?, replica_process(ports[1])?];
    for port in ports {
        grpc::wait_for_health(
            port,
            careers_proto::service_names::OCCUPATIONS,
            ServingStatus::Serving,
            WAIT,
        )
        .await?;
    }
    let bearer = TestKeys::new()?;
    // The other upstreams are not needed: nothing listens there.
    let nowhere = free_port()?;
    let mut settings = careers_stack::gateway_settings(
        [
            ("occupations", nowhere),
            ("lmi", nowhere),
            ("casenotes", nowhere),
            ("ambassadors", nowhere),
        ],
        &bearer,
        &internal,
    )?;
    settings.upstreams.occupations = format!(
        "http://127.0.0.1:{},http://127.0.0.1:{}",
        ports[0], ports[1]
    );
    let app = careers_gateway::App::build(settings).await?;
    let occupations = app
        .upstream("occupations")
        .ok_or_else(|| anyhow::anyhow!("no occupations upstream"))?;
    let gateway_port = app.http_port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));
    let token = careers_stack::bearer_token(&bearer, &["adviser"], None)?;

    assert_eq!(read_through(gateway_port, &token, 1_000, 8).await, 0);
    let calls: Vec<u64> = occupations
        .replicas()
        .iter()
        .map(|replica| replica.calls())
        .collect();
    let total: u64 = calls.iter().sum();
    println!("balancing: calls per replica {calls:?} of {total}");
    for share in &calls {
        let share = *share as f64 / total as f64;
        assert!((0.35..=0.65).contains(&share), "shares {calls:?}");
    }

    // kill -9 of one replica in the middle of reads.
    let reads = tokio::spawn({
        let token = token.clone();
        async move { read_through(gateway_port, &token, 1_000, 8).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    replicas[0].kill().await?;
    let killed_at = std::time::Instant::now();
    let dead = std::net::SocketAddr::from(([127, 0, 0, 1], ports[0]));
    eventually(Duration::from_secs(5), "the killed replica dropped", || {
        let replicas = occupations.replicas();
        async move {
            Ok(replicas
                .iter()
                .any(|replica| replica.addr == dead && !replica.healthy()))
        }
    })
    .await?;
    println!(
        "balancing: killed replica out after {:?}",
        killed_at.elapsed()
    );
    let failed = reads.await?;
    println!("balancing: {failed} of 1000 reads failed across the kill");
    assert!(
        failed == 0,
        "under 0.1% of 1000 reads may fail: {failed} did"
    );
    let live = std::net::SocketAddr::from(([127, 0, 0, 1], ports[1]));
    let live_calls = || {
        occupations
            .replicas()
            .iter()
            .find(|replica| replica.addr == live)
            .map_or(0, |replica| replica.calls())
    };
    let before = live_calls();
    assert_eq!(read_through(gateway_port, &token, 200, 8).await, 0);
    assert_eq!(
        live_calls() - before,
        200,
        "every read after the kill goes to the live replica"
    );

    stop.send(()).ok();
    gateway.await??;
    replicas[1].stop(STOP).await
}
