//! The gateway's health endpoints in front of the four services.

use std::time::Duration;

use careers_ambassadors::Ambassadors;
use careers_casenotes::Casenotes;
use careers_gateway::{App, HEALTH_NAME};

mod common;
use careers_lmi::Lmi;
use careers_occupations::Occupations;
use careers_testkit::{
    grpc, http,
    service::{TestKeys, spawn},
    sqlite::TestSqlite,
};
use common::gateway_settings;
use tonic_health::pb::health_check_response::ServingStatus;

async fn get(port: u16, path: &'static str) -> anyhow::Result<(u16, String)> {
    tokio::task::spawn_blocking(move || http::get(port, path)).await?
}

#[tokio::test]
async fn readyz_follows_the_upstreams_and_healthz_the_process() -> anyhow::Result<()> {
    let stores = [
        TestSqlite::new()?,
        TestSqlite::new()?,
        TestSqlite::new()?,
        TestSqlite::new()?,
    ];
    let occupations = spawn::<Occupations>(&stores[0].url, &[]).await?;
    let lmi = spawn::<Lmi>(&stores[1].url, &[]).await?;
    let casenotes = spawn::<Casenotes>(&stores[2].url, &[]).await?;
    let ambassadors = spawn::<Ambassadors>(&stores[3].url, &[]).await?;
    let (bearer, internal) = (TestKeys::new()?, TestKeys::new()?);
    let app = App::build(gateway_settings(
        [
            ("occupations", occupations.port),
            ("lmi", lmi.port),
            ("casenotes", casenotes.port),
            ("ambassadors", ambassadors.port),
        ],
        &bearer,
        &internal,
    )?)
    .await?;
    let (http_port, grpc_port) = (app.http_port(), app.grpc_port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let gateway = tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));

    assert_eq!(get(http_port, "/healthz").await?.0, 200);
    grpc::wait_for_health(
        grpc_port,
        HEALTH_NAME,
        ServingStatus::Serving,
        Duration::from_secs(5),
    )
    .await?;
    let mut ready = (0, String::new());
    for _ in 0..100 {
        ready = get(http_port, "/readyz").await?;
        if ready.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ready, (200, r#"{"status":"ready"}"#.to_owned()));

    lmi.shutdown().await?;
    assert_eq!(
        get(http_port, "/readyz").await?,
        (
            503,
            r#"{"status":"degraded","unavailable":["lmi"]}"#.to_owned()
        )
    );
    // The gateway's own health is never tied to its upstreams.
    assert_eq!(
        grpc::health(grpc_port, HEALTH_NAME).await?,
        ServingStatus::Serving
    );
    assert_eq!(get(http_port, "/healthz").await?.0, 200);

    stop.send(()).ok();
    gateway.await??;
    for service in [occupations, casenotes, ambassadors] {
        service.shutdown().await?;
    }
    Ok(())
}
