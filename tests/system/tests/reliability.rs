//! A 100,000-row submission through the gateway on PostgreSQL while nats-server is killed
//! twice (during the upload and while the relay publishes the backlog): every event is in
//! the stream exactly once and every occupation summary converges on the figures lmi
//! holds.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use careers_eventbus::{provision, settings::NatsSettings, testing::count};
use careers_testkit::{eventually, postgres};
use common::call;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

mod common;

const ROWS: usize = 100_000;
const STATISTICS: [&str; 12] = [
    "median", "mean", "p10", "p20", "p25", "p30", "p40", "p60", "p70", "p75", "p80", "p90",
];
const BREAKDOWNS: [&str; 5] = ["all", "full_time", "part_time", "male", "female"];

fn csv(codes: &[String]) -> String {
    let mut csv = String::from("soc_code,region,period,measure,breakdown,value,unit,source\n");
    let mut index = 0;
    'rows: for year in ["2023", "2024"] {
        for (pay, base) in [("annual", 30_000), ("weekly", 600), ("hourly", 15)] {
            for statistic in STATISTICS {
                for breakdown in BREAKDOWNS {
                    for soc in codes {
                        if index == ROWS {
                            break 'rows;
                        }
                        csv.push_str(&format!(
                            "{soc},K02000001,{year},{statistic}_{pay}_pay,{breakdown},{},GBP,reliability\n",
                            base + index % 100
                        ));
                        index += 1;
                    }
                }
            }
        }
    }
    csv
}

async fn strings(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    rows.iter()
        .map(|row| {
            (0..5)
                .map(|index| Ok(row.try_get_by_index::<String>(index)?))
                .collect()
        })
        .collect()
}

/// The figure each (soc, measure, region, breakdown) should show, from lmi's own store.
async fn expected(lmi: &DatabaseConnection) -> anyhow::Result<HashSet<Vec<String>>> {
    let rows = lmi
        .query_all_raw(Statement::from_string(
            lmi.get_database_backend(),
            "SELECT soc_code, measure, region, breakdown, figure_id, period, recorded_at FROM figures",
        ))
        .await?;
    let mut winners: HashMap<Vec<String>, ((String, String), String, String)> = HashMap::new();
    for row in rows {
        let key: Vec<String> = (0..4)
            .map(|index| row.try_get_by_index::<String>(index))
            .collect::<Result<_, _>>()?;
        let figure_id: String = row.try_get_by_index(4)?;
        let period: String = row.try_get_by_index(5)?;
        let recorded_at: String = row.try_get_by_index(6)?;
        let (last, text) = careers_proto::period::order_key(&period);
        let rank = ((last, text.to_owned()), recorded_at, figure_id);
        if winners.get(&key).is_none_or(|held| *held < rank) {
            winners.insert(key, rank);
        }
    }
    Ok(winners
        .into_iter()
        .map(|(mut key, (_, _, figure_id))| {
            key.push(figure_id);
            key
        })
        .collect())
}

/// Waits until the occupations store holds exactly the `expected` winners.
async fn converges(
    occupations_db: &DatabaseConnection,
    expected: HashSet<Vec<String>>,
) -> anyhow::Result<()> {
    eventually(Duration::from_secs(120), "every summary converges", || {
        let (occupations_db, expected) = (occupations_db.clone(), expected.clone());
        async move {
            let held: HashSet<Vec<String>> = strings(
                &occupations_db,
                "SELECT soc_code, measure, region, breakdown, figure_id FROM lmi_figures",
            )
            .await?
            .into_iter()
            .collect();
            Ok(held == expected)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_killed_twice_during_a_large_submission_loses_and_repeats_nothing()
-> anyhow::Result<()> {
    let (occupations, lmi) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    let mut stack = common::Stack::start(occupations.url.clone(), lmi.url.clone()).await?;
    let port = stack.gateway_port;
    let token = stack.bearer(&["ssc_publisher"], Some("ons"))?;
    let codes: Vec<String> = strings(
        &stack.lmi_db,
        "SELECT soc_code, soc_code, soc_code, soc_code, soc_code FROM known_occupations ORDER BY soc_code",
    )
    .await?
    .into_iter()
    .map(|row| row[0].clone())
    .collect();
    let body = csv(&codes);

    let upload = tokio::spawn(call(
        port,
        "POST",
        "/v1/lmi/submissions?submission_key=reliability".into(),
        vec![
            ("Authorization".into(), format!("Bearer {token}")),
            ("Content-Type".into(), "text/csv".into()),
        ],
        body.into_bytes(),
    ));
    // Killed during the upload...
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.nats.kill()?;
    let answer = upload.await??;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(
        answer.body.contains(r#""accepted":100000"#),
        "{}",
        answer.body
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ...and again while the relay publishes the backlog.
    stack.nats.restart()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stack.nats.kill()?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stack.nats.restart()?;

    let expected = expected(&stack.lmi_db).await?;
    let occupations_db = stack.occupations_db.clone();
    converges(&occupations_db, expected).await?;

    // Exactly once: the stream holds each FiguresPublished event once.
    let events = count(&stack.lmi_db, "SELECT COUNT(*) FROM outbox").await?;
    assert_eq!(events, 412, "one event per SOC code");
    let jetstream = provision::connect_now(
        &NatsSettings {
            url: stack.nats.url(),
            ..NatsSettings::default()
        },
        "reliability-test",
    )
    .await?;
    let mut stream = jetstream.get_stream("CAREERS_LMI").await?;
    let messages = stream.info().await?.state.messages;
    assert_eq!(messages, events as u64);

    stack.stop().await
}

fn spawn_lmi(
    database_url: &str,
    nats_url: &str,
    port: u16,
    keys: &careers_testkit::service::TestKeys,
) -> anyhow::Result<tokio::process::Child> {
    Ok(
        tokio::process::Command::new(careers_testkit::process::binary("lmi")?)
            .env_clear()
            .env("CAREERS_LMI__DATABASE__URL", database_url)
            .env("CAREERS_LMI__NATS__URL", nats_url)
            .env("CAREERS_LMI__GRPC__LISTEN", format!("127.0.0.1:{port}"))
            .env("CAREERS_LMI__METRICS__ENABLED", "false")
            .env("CAREERS_LMI__IDENTITY__JWKS_PATH", &keys.jwks_path)
            .env("CAREERS_LMI__SHUTDOWN__DRAIN_DELAY", "0s")
            // Short, so what the killed upload staged is swept within the test.
            .env("CAREERS_LMI__SUBMISSIONS__STAGING_TIMEOUT", "5s")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()?,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lmi_killed_mid_submission_completes_on_resend_without_counting_twice() -> anyhow::Result<()>
{
    use std::sync::Arc;

    use careers_gateway::App;
    use careers_occupations::Occupations;
    use careers_platform::Service;
    use careers_testkit::{
        nats::NatsServer,
        service::{TestKeys, spawn_trusting},
    };
    use sea_orm::Database;

    let (occupations_database, lmi_database) = (
        postgres::empty_database().await?,
        postgres::empty_database().await?,
    );
    let nats = NatsServer::start()?;
    let internal = Arc::new(TestKeys::new()?);
    let bearer = TestKeys::new()?;
    let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds");
    let overrides = [("nats.url", nats.url())];
    let overrides: Vec<(&str, &str)> = overrides
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let occupations =
        spawn_trusting::<Occupations>(&occupations_database.url, &overrides, &internal).await?;
    let occupations_db = Database::connect(occupations_database.url.as_str()).await?;
    Occupations::seed(&occupations_db, &seeds).await?;
    let lmi_port = careers_testkit::free_port()?;
    let mut lmi = spawn_lmi(&lmi_database.url, &nats.url(), lmi_port, &internal)?;
    let lmi_db = Database::connect(lmi_database.url.as_str()).await?;
    eventually(
        Duration::from_secs(60),
        "lmi knows the catalogue",
        || async {
            Ok(count(&lmi_db, "SELECT COUNT(*) FROM known_occupations")
                .await
                .unwrap_or(0)
                == 412)
        },
    )
    .await?;
    careers_lmi::Lmi::seed(&lmi_db, &seeds).await?;
    let closed = careers_testkit::free_port()?;
    let app = App::build(common::gateway_settings(
        [
            ("occupations", occupations.port),
            ("lmi", lmi_port),
            ("casenotes", closed),
            ("ambassadors", closed),
        ],
        &bearer,
        &internal,
    )?)
    .await?;
    let port = app.http_port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));
    let token = common::bearer_token(&bearer, &["ssc_publisher"], Some("ons"))?;
    let codes: Vec<String> = strings(
        &lmi_db,
        "SELECT soc_code, soc_code, soc_code, soc_code, soc_code FROM known_occupations ORDER BY soc_code",
    )
    .await?
    .into_iter()
    .map(|row| row[0].clone())
    .collect();
    let body = csv(&codes).into_bytes();
    let post = |body: Vec<u8>| {
        call(
            port,
            "POST",
            "/v1/lmi/submissions?submission_key=resent".into(),
            vec![
                ("Authorization".into(), format!("Bearer {token}")),
                ("Content-Type".into(), "text/csv".into()),
            ],
            body,
        )
    };

    // Killed (SIGKILL) once the upload has staged its first rows.
    let upload = tokio::spawn(post(body.clone()));
    eventually(Duration::from_secs(60), "the upload staged", || async {
        Ok(count(&lmi_db, "SELECT COUNT(*) FROM staging").await? > 0)
    })
    .await?;
    lmi.kill().await?;
    let cut = upload.await??;
    assert_ne!(
        cut.status, 201,
        "the upload finished before lmi was killed: {}",
        cut.body
    );
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM submissions").await?, 0);
    // What it staged before the kill is left behind, visible to nobody.
    assert!(count(&lmi_db, "SELECT COUNT(*) FROM figures").await? > 0);
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM staging").await?, 1);

    // Restarted on its store; the same key again completes the submission.
    let mut lmi = spawn_lmi(&lmi_database.url, &nats.url(), lmi_port, &internal)?;
    let mut answer = post(body.clone()).await?;
    for _ in 0..50 {
        if answer.status == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        answer = post(body.clone()).await?;
    }
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert!(
        answer.body.contains(r#""accepted":100000"#),
        "{}",
        answer.body
    );
    // Once more: replayed, nothing added.
    let again = post(body).await?;
    assert_eq!(
        (again.status, again.header("idempotent-replayed")),
        (201, Some("true"))
    );
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM submissions").await?, 1);
    // The restarted lmi sweeps what the killed upload staged.
    eventually(
        Duration::from_secs(30),
        "the killed upload's staged figures swept",
        || async {
            Ok(
                count(&lmi_db, "SELECT COUNT(*) FROM figures").await? == ROWS as i64
                    && count(&lmi_db, "SELECT COUNT(*) FROM staging").await? == 0,
            )
        },
    )
    .await?;
    assert_eq!(count(&lmi_db, "SELECT COUNT(*) FROM outbox").await?, 412);
    let expected = expected(&lmi_db).await?;
    converges(&occupations_db, expected).await?;

    stop.send(()).ok();
    gateway.await??;
    lmi.kill().await?;
    occupations.shutdown().await
}
