//! The platform's promises, checked on every service: it starts on SQLite and on
//! PostgreSQL, migrates, answers both health names and lists itself by reflection; the
//! full name follows the store.

use std::time::Duration;

use careers_ambassadors::Ambassadors;
use careers_casenotes::Casenotes;
use careers_lmi::Lmi;
use careers_occupations::Occupations;
use careers_platform::{Service, readiness::LIVENESS};
use careers_testkit::{
    grpc::{self, wait_for_health},
    postgres::{self, PgCluster},
    service::spawn,
    sqlite::TestSqlite,
};
use tonic_health::pb::health_check_response::ServingStatus;

const WAIT: Duration = Duration::from_secs(10);

/// Starts `S` on `database_url` and checks health and reflection, then shuts it down.
async fn starts_and_serves<S: Service>(database_url: &str) -> anyhow::Result<()> {
    // No broker here: a closed port, so NATS stays unreachable and readiness falls back
    // to the catch-up timeout.
    let closed = format!("nats://127.0.0.1:{}", careers_testkit::free_port()?);
    let overrides: &[(&str, &str)] = if S::NAME == "lmi" {
        &[("nats.url", &closed)]
    } else {
        &[]
    };
    let running = spawn::<S>(database_url, overrides).await?;
    wait_for_health(running.port, S::GRPC_SERVICE, ServingStatus::Serving, WAIT).await?;
    for name in [LIVENESS, ""] {
        assert_eq!(
            grpc::health(running.port, name).await?,
            ServingStatus::Serving,
            "{} {name:?}",
            S::NAME
        );
    }
    for listed in [
        grpc::reflection_services_v1(running.port).await?,
        grpc::reflection_services_v1alpha(running.port).await?,
    ] {
        assert!(
            listed.iter().any(|name| name == S::GRPC_SERVICE),
            "{} not in {listed:?}",
            S::GRPC_SERVICE
        );
        assert!(listed.iter().any(|name| name == "grpc.health.v1.Health"));
    }
    running.shutdown().await
}

#[tokio::test]
async fn every_service_starts_migrates_and_serves_on_sqlite() -> anyhow::Result<()> {
    starts_and_serves::<Occupations>(&TestSqlite::new()?.url).await?;
    starts_and_serves::<Lmi>(&TestSqlite::new()?.url).await?;
    starts_and_serves::<Casenotes>(&TestSqlite::new()?.url).await?;
    starts_and_serves::<Ambassadors>(&TestSqlite::new()?.url).await
}

#[tokio::test]
async fn every_service_starts_migrates_and_serves_on_postgres() -> anyhow::Result<()> {
    starts_and_serves::<Occupations>(&postgres::empty_database().await?.url).await?;
    starts_and_serves::<Lmi>(&postgres::empty_database().await?.url).await?;
    starts_and_serves::<Casenotes>(&postgres::empty_database().await?.url).await?;
    starts_and_serves::<Ambassadors>(&postgres::empty_database().await?.url).await
}

#[tokio::test]
async fn a_store_outage_makes_the_service_unready_but_alive() -> anyhow::Result<()> {
    // The test's own cluster: stopping the shared one would break other tests.
    let cluster = PgCluster::start()?;
    let running = spawn::<Occupations>(&cluster.admin_url(), &[]).await?;
    let name = Occupations::GRPC_SERVICE;
    wait_for_health(running.port, name, ServingStatus::Serving, WAIT).await?;

    cluster.stop()?;
    wait_for_health(running.port, name, ServingStatus::NotServing, WAIT).await?;
    assert_eq!(
        grpc::health(running.port, LIVENESS).await?,
        ServingStatus::Serving
    );

    cluster.restart()?;
    wait_for_health(running.port, name, ServingStatus::Serving, WAIT).await?;
    running.shutdown().await
}

/// Callers stuck holding every connection of the callers' pool (reads waiting behind a
/// table lock) leave the next caller with UNAVAILABLE `store_busy`, while the readiness
/// check, on the background pool, keeps the replica SERVING; once the lock goes, calls are
/// answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_taking_every_connection_leave_the_replica_ready() -> anyhow::Result<()> {
    use careers_proto::careers::occupations::v1::{
        GetOccupationRequest, occupations_service_client::OccupationsServiceClient,
    };
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let database = postgres::empty_database().await?;
    let running = spawn::<Occupations>(
        &database.url,
        &[
            ("database.max_connections", "2"),
            ("database.connect_timeout", "1s"),
            ("readiness.store_check_interval", "200ms"),
        ],
    )
    .await?;
    let name = Occupations::GRPC_SERVICE;
    wait_for_health(running.port, name, ServingStatus::Serving, WAIT).await?;
    let identity = running.token(&["adviser"], None)?;
    let read = |identity: String| {
        let port = running.port;
        async move {
            let mut request = tonic::Request::new(GetOccupationRequest {
                soc_code: "2134".into(),
            });
            request
                .metadata_mut()
                .insert(careers_platform::identity::METADATA_KEY, identity.parse()?);
            let answer = OccupationsServiceClient::new(grpc::channel(port)?)
                .get_occupation(request)
                .await;
            anyhow::Ok(answer.err().map(|status| status.code()))
        }
    };

    let locker = sea_orm::Database::connect(database.url.as_str()).await?;
    let lock = locker.begin().await?;
    lock.execute_unprepared("LOCK TABLE occupations IN ACCESS EXCLUSIVE MODE")
        .await?;
    // Two reads wait behind the lock, each holding one of the two connections.
    let stuck = [
        tokio::spawn(read(identity.clone())),
        tokio::spawn(read(identity.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        read(identity.clone()).await?,
        Some(tonic::Code::Unavailable),
        "a third read with no connection free"
    );
    // Readiness checks every 200 ms, each over 1 s without a connection were it on the
    // callers' pool: it stays SERVING all along.
    for _ in 0..10 {
        assert_eq!(
            grpc::health(running.port, name).await?,
            ServingStatus::Serving
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lock.rollback().await?;
    for read in stuck {
        assert_eq!(read.await??, Some(tonic::Code::NotFound));
    }
    assert_eq!(read(identity).await?, Some(tonic::Code::NotFound));
    running.shutdown().await
}
