//! Acceptance 2 and 3: personal data never stored or logged in the clear; every read
//! and write audited per client, and a tampered trail fails verification naming the entry.

use std::{
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use careers_casenotes::Casenotes;
use careers_platform::Service as _;
use careers_proto::careers::casenotes::v1 as api;
use careers_testkit::{free_port, grpc, service::TestKeys};
use sea_orm::{ConnectionTrait, Database};
use tonic_health::pb::health_check_response::ServingStatus;

use crate::{Secrets, Service, Stores, new_client};

const NAME_MARKER: &str = "Zebulon Quxworthy";
const EMAIL_MARKER: &str = "marker.quxworthy@example.org";
const NOTE_MARKER: &str = "wants-to-be-a-marine-biologist-QX7";

/// Writes the markers through the API, and reads them back.
async fn write_markers(service: &mut Service, org: &str) -> anyhow::Result<String> {
    let request = service.adviser(
        org,
        api::CreateClientRequest {
            email: Some(EMAIL_MARKER.into()),
            ..new_client(NAME_MARKER)
        },
    )?;
    let client = service
        .client
        .create_client(request)
        .await?
        .into_inner()
        .client
        .ok_or_else(|| anyhow::anyhow!("no client"))?;
    let request = service.adviser(
        org,
        api::RecordNoteRequest {
            client_id: client.id.clone(),
            text: format!("Discussed options; {NOTE_MARKER}."),
        },
    )?;
    service.client.record_note(request).await?;
    let read = service
        .client
        .export_client(service.adviser(
            org,
            api::ExportClientRequest {
                client_id: client.id.clone(),
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(
        read.client.map(|client| client.name),
        Some(NAME_MARKER.to_owned())
    );
    assert!(
        read.notes
            .iter()
            .any(|note| note.text.contains(NOTE_MARKER))
    );
    Ok(client.id)
}

fn assert_no_markers(what: &str, bytes: &[u8]) {
    for marker in [NAME_MARKER, EMAIL_MARKER, NOTE_MARKER] {
        assert!(
            !bytes
                .windows(marker.len())
                .any(|window| window == marker.as_bytes()),
            "{marker:?} found in the clear in {what}"
        );
    }
}

#[tokio::test]
async fn markers_are_absent_from_the_sqlite_files_and_the_logs() -> anyhow::Result<()> {
    let stores = Stores::sqlite()?;
    let secrets = Secrets::new()?;
    let keys = Arc::new(TestKeys::new()?);
    let port = free_port()?;
    let log = secrets.dir.path().join("casenotes.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_casenotes"))
        .env_clear()
        .env("CAREERS_CASENOTES__DATABASE__URL", &stores.main)
        .env("CAREERS_CASENOTES__KEYSTORE__URL", &stores.keys)
        .env("CAREERS_CASENOTES__CRYPTO__KEK_PATH", &secrets.kek)
        .env("CAREERS_CASENOTES__AUDIT__KEY_PATH", &secrets.audit)
        .env("CAREERS_CASENOTES__IDENTITY__JWKS_PATH", &keys.jwks_path)
        .env(
            "CAREERS_CASENOTES__GRPC__LISTEN",
            format!("127.0.0.1:{port}"),
        )
        .env("CAREERS_CASENOTES__METRICS__ENABLED", "false")
        .env("CAREERS_CASENOTES__READINESS__CATCH_UP_TIMEOUT", "1s")
        .env(
            "CAREERS_CASENOTES__NATS__URL",
            format!("nats://127.0.0.1:{}", free_port()?),
        )
        // The most a production log would hold, and more.
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(
            secrets.dir.path().join("casenotes.err"),
        )?)
        .spawn()?;
    let outcome = async {
        grpc::wait_for_health(
            port,
            Casenotes::GRPC_SERVICE,
            ServingStatus::Serving,
            Duration::from_secs(30),
        )
        .await?;
        let mut service = Service::at(port, keys.clone())?;
        write_markers(&mut service, "org-files").await?;
        // A bad request too: its error must not echo the personal data either.
        let request = service.adviser(
            "org-files",
            api::CreateClientRequest {
                date_of_birth: "tomorrow".into(),
                ..new_client(NAME_MARKER)
            },
        )?;
        assert!(service.client.create_client(request).await.is_err());
        anyhow::Ok(())
    }
    .await;
    child.kill().ok();
    child.wait()?;
    outcome?;
    for url in [&stores.main, &stores.keys] {
        let path = url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap_or_default()
            .to_owned();
        for file in [path.clone(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                assert_no_markers(&file, &bytes);
            }
        }
    }
    let logged = std::fs::read(&log)?;
    assert!(
        !logged.is_empty(),
        "the service logged nothing, so the check proves nothing"
    );
    assert_no_markers("the service's stdout log", &logged);
    assert_no_markers(
        "the service's stderr",
        &std::fs::read(secrets.dir.path().join("casenotes.err"))?,
    );
    Ok(())
}

#[tokio::test]
async fn markers_are_absent_from_a_pg_dump() -> anyhow::Result<()> {
    let stores = Stores::postgres().await?;
    let secrets = Secrets::new()?;
    let mut service = Service::start(&stores, &secrets).await?;
    write_markers(&mut service, "org-dump").await?;
    service.stop().await?;
    for url in [&stores.main, &stores.keys] {
        let dump = careers_testkit::postgres::dump(url)?;
        assert!(dump.len() > 1_000, "the dump is suspiciously small");
        assert_no_markers("pg_dump", &dump);
    }
    Ok(())
}

async fn audit_trail(stores: Stores) -> anyhow::Result<()> {
    let secrets = Secrets::new()?;
    let mut service = Service::start(&stores, &secrets).await?;
    let org = "org-audit";
    let ids = [
        service.create_client(org, "One").await?,
        service.create_client(org, "Two").await?,
        service.create_client(org, "Three").await?,
    ];
    let db = Database::connect(stores.main.as_str()).await?;
    let count = |sql: String| {
        let db = db.clone();
        async move { careers_eventbus::testing::count(&db, &sql).await }
    };
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM audit_entries WHERE org = '{org}' AND action = 'client.create'"
        ))
        .await?,
        3
    );
    // A list read: one entry per client returned.
    let listed = service
        .client
        .list_clients(service.adviser(
            org,
            api::ListClientsRequest {
                limit: 2,
                cursor: String::new(),
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(listed.items.len(), 2);
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM audit_entries WHERE org = '{org}' AND action = 'client.list'"
        ))
        .await?,
        2
    );
    service
        .client
        .get_client(service.adviser(
            org,
            api::GetClientRequest {
                client_id: ids[0].clone(),
            },
        )?)
        .await?;
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM audit_entries WHERE action = 'client.read' AND client_id = '{}' AND actor = 'adviser@{org}'",
            ids[0]
        ))
        .await?,
        1
    );
    // The supervisor reads the trail filtered to a client.
    let trail = service
        .client
        .list_audit_entries(service.supervisor(
            org,
            api::ListAuditEntriesRequest {
                client_id: ids[0].clone(),
                ..Default::default()
            },
        )?)
        .await?
        .into_inner();
    let actions: Vec<&str> = trail
        .items
        .iter()
        .map(|entry| entry.action.as_str())
        .collect();
    assert_eq!(actions, ["client.create", "client.read"]);

    let verify = |service: &Service| service.supervisor(org, api::VerifyAuditRequest {});
    let intact = service
        .client
        .verify_audit(verify(&service)?)
        .await?
        .into_inner();
    assert!(intact.valid, "{intact:?}");
    assert!(intact.entries >= 6);

    // Edited: entry 2 names another action.
    let backup = db
        .query_one_raw(careers_eventbus::testing::statement(
            &db,
            &format!("SELECT action FROM audit_entries WHERE org = '{org}' AND seq = 2"),
            vec![],
        ))
        .await?
        .ok_or_else(|| anyhow::anyhow!("no entry 2"))?
        .try_get_by_index::<String>(0)?;
    db.execute_unprepared(&format!(
        "UPDATE audit_entries SET action = 'client.nothing' WHERE org = '{org}' AND seq = 2"
    ))
    .await?;
    let edited = service
        .client
        .verify_audit(verify(&service)?)
        .await?
        .into_inner();
    assert_eq!(
        (edited.valid, edited.broken_at),
        (false, Some(2)),
        "{edited:?}"
    );
    assert!(edited.problem.contains("entry 2"), "{}", edited.problem);
    db.execute_unprepared(&format!(
        "UPDATE audit_entries SET action = '{backup}' WHERE org = '{org}' AND seq = 2"
    ))
    .await?;
    assert!(
        service
            .client
            .verify_audit(verify(&service)?)
            .await?
            .into_inner()
            .valid
    );

    // Recomputed without the key: entry 3's MAC replaced by another one.
    let mac_of = |seq: i64| {
        let db = db.clone();
        async move {
            anyhow::Ok(
                db.query_one_raw(careers_eventbus::testing::statement(
                    &db,
                    &format!("SELECT mac FROM audit_entries WHERE org = '{org}' AND seq = {seq}"),
                    vec![],
                ))
                .await?
                .ok_or_else(|| anyhow::anyhow!("no entry {seq}"))?
                .try_get_by_index::<Vec<u8>>(0)?,
            )
        }
    };
    let set_mac = |seq: i64, mac: Vec<u8>| {
        let db = db.clone();
        async move {
            db.execute_raw(careers_eventbus::testing::statement(
                &db,
                &format!("UPDATE audit_entries SET mac = $1 WHERE org = '{org}' AND seq = {seq}"),
                vec![mac.into()],
            ))
            .await
        }
    };
    let original = mac_of(3).await?;
    set_mac(3, mac_of(1).await?).await?;
    let recomputed = service
        .client
        .verify_audit(verify(&service)?)
        .await?
        .into_inner();
    assert_eq!(
        (recomputed.valid, recomputed.broken_at),
        (false, Some(3)),
        "{recomputed:?}"
    );
    set_mac(3, original).await?;
    assert!(
        service
            .client
            .verify_audit(verify(&service)?)
            .await?
            .into_inner()
            .valid
    );

    // Deleted: entry 4 removed.
    db.execute_unprepared(&format!(
        "DELETE FROM audit_entries WHERE org = '{org}' AND seq = 4"
    ))
    .await?;
    let deleted = service
        .client
        .verify_audit(verify(&service)?)
        .await?
        .into_inner();
    assert_eq!(
        (deleted.valid, deleted.broken_at),
        (false, Some(4)),
        "{deleted:?}"
    );
    assert!(deleted.problem.contains("missing"), "{}", deleted.problem);
    service.stop().await
}

#[tokio::test]
async fn every_access_is_audited_and_tampering_is_caught_on_sqlite() -> anyhow::Result<()> {
    audit_trail(Stores::sqlite()?).await
}

#[tokio::test]
async fn every_access_is_audited_and_tampering_is_caught_on_postgres() -> anyhow::Result<()> {
    audit_trail(Stores::postgres().await?).await
}
