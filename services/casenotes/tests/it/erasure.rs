//! Acceptance 4: erasure. After DELETE every route is NOT_FOUND; a key store restored
//! from before the erasure is corrected at start, so the notes stay unreadable; a main
//! store restored from before it is corrected too. And the retention sweeper.

use careers_casenotes::{crypto::Keyring, erasure, keystore, settings::CryptoSettings};
use careers_eventbus::{RelayWaker, testing::count};
use careers_proto::careers::casenotes::v1 as api;
use chrono::{Days, Utc};
use sea_orm::{ConnectionTrait, Database};
use tonic::Code;

use crate::{Secrets, Service, Stores, failure};

fn file_of(url: &str) -> String {
    url.trim_start_matches("sqlite://")
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// A consistent copy of a live SQLite store, as a backup tool takes it.
async fn backup(url: &str, to: &std::path::Path) -> anyhow::Result<()> {
    let db = Database::connect(url).await?;
    db.execute_unprepared(&format!("VACUUM INTO '{}'", to.display()))
        .await?;
    db.close().await?;
    Ok(())
}

fn restore(from: &std::path::Path, url: &str) -> anyhow::Result<()> {
    let path = file_of(url);
    for suffix in ["-wal", "-shm"] {
        std::fs::remove_file(format!("{path}{suffix}")).ok();
    }
    std::fs::copy(from, &path)?;
    Ok(())
}

fn keyring(secrets: &Secrets) -> anyhow::Result<Keyring> {
    Ok(CryptoSettings {
        kek_path: Some(secrets.kek.clone()),
        keks: None,
    }
    .keyring()?)
}

#[tokio::test]
async fn erasure_survives_restoring_either_store_from_a_backup() -> anyhow::Result<()> {
    let stores = Stores::sqlite()?;
    let secrets = Secrets::new()?;
    let backups = tempfile::tempdir()?;
    let mut service = Service::start(&stores, &secrets).await?;
    let org = "org-erase";
    let client_id = service.create_client(org, "Erin Rase").await?;
    let request = service.adviser(
        org,
        api::RecordNoteRequest {
            client_id: client_id.clone(),
            text: "private".into(),
        },
    )?;
    service.client.record_note(request).await?;
    let keys_backup = backups.path().join("keys.db");
    let main_backup = backups.path().join("main.db");
    backup(&stores.keys, &keys_backup).await?;
    backup(&stores.main, &main_backup).await?;

    let erased = service
        .client
        .erase_client(service.supervisor(
            org,
            api::EraseClientRequest {
                client_id: client_id.clone(),
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(erased.client_id, client_id);
    let id = || client_id.clone();
    let after = [
        failure(
            service
                .client
                .get_client(service.adviser(org, api::GetClientRequest { client_id: id() })?)
                .await,
        ),
        failure(
            service
                .client
                .export_client(service.adviser(org, api::ExportClientRequest { client_id: id() })?)
                .await,
        ),
        failure(
            service
                .client
                .list_notes(service.adviser(org, api::ListNotesRequest { client_id: id() })?)
                .await,
        ),
        failure(
            service
                .client
                .erase_client(service.supervisor(org, api::EraseClientRequest { client_id: id() })?)
                .await,
        ),
    ];
    for outcome in after {
        assert_eq!(outcome, (Code::NotFound, "not_found".into()));
    }
    let main = Database::connect(stores.main.as_str()).await?;
    assert_eq!(count(&main, "SELECT COUNT(*) FROM notes").await?, 0);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM tombstones").await?, 1);
    assert_eq!(
        count(
            &main,
            "SELECT COUNT(*) FROM outbox WHERE subject = 'careers.casenotes.v1.client_erased'"
        )
        .await?,
        1
    );
    main.close().await?;
    service.stop().await?;

    // The key store restored from before the erasure holds the key again...
    restore(&keys_backup, &stores.keys)?;
    let ring = keyring(&secrets)?;
    let keys = Database::connect(stores.keys.as_str()).await?;
    assert!(keystore::load(&keys, &ring, &client_id).await?.is_some());
    keys.close().await?;
    // ...until the service starts: the tombstone is re-applied before it serves.
    let mut service = Service::start(&stores, &secrets).await?;
    let keys = Database::connect(stores.keys.as_str()).await?;
    assert!(
        keystore::load(&keys, &ring, &client_id).await?.is_none(),
        "the restored key survived"
    );
    keys.close().await?;
    let get = service
        .client
        .get_client(service.adviser(org, api::GetClientRequest { client_id: id() })?)
        .await;
    assert_eq!(failure(get).0, Code::NotFound);
    service.stop().await?;

    // The main store restored from before the erasure holds the client and its sealed note,
    // which no key opens any more; at start the key store's tombstone erases it again.
    restore(&main_backup, &stores.main)?;
    let main = Database::connect(stores.main.as_str()).await?;
    assert_eq!(count(&main, "SELECT COUNT(*) FROM notes").await?, 1);
    main.close().await?;
    let mut service = Service::start(&stores, &secrets).await?;
    let main = Database::connect(stores.main.as_str()).await?;
    assert_eq!(count(&main, "SELECT COUNT(*) FROM notes").await?, 0);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM clients").await?, 0);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM tombstones").await?, 1);
    main.close().await?;
    let get = service
        .client
        .get_client(service.adviser(org, api::GetClientRequest { client_id: id() })?)
        .await;
    assert_eq!(failure(get).0, Code::NotFound);
    service.stop().await
}

async fn retention(stores: Stores) -> anyhow::Result<()> {
    let secrets = Secrets::new()?;
    let mut service = Service::start(&stores, &secrets).await?;
    let org = "org-retention";
    let client_id = service.create_client(org, "Old Timer").await?;
    let main = Database::connect(stores.main.as_str()).await?;
    let keys = Database::connect(stores.keys.as_str()).await?;
    let waker = RelayWaker::default();
    let now = Utc::now();
    // Five years on, the client is kept; seven years on, erased.
    let five = now.date_naive() + Days::new(5 * 366);
    assert!(
        erasure::sweep_inactive(&main, &keys, &waker, five, now, 6)
            .await?
            .is_empty()
    );
    let seven = now.date_naive() + Days::new(7 * 366);
    let erased = erasure::sweep_inactive(&main, &keys, &waker, seven, now, 6).await?;
    assert_eq!(erased, vec![(client_id.clone(), org.to_owned())]);
    let get = service
        .client
        .get_client(service.adviser(org, api::GetClientRequest { client_id })?)
        .await;
    assert_eq!(failure(get).0, Code::NotFound);
    assert_eq!(count(&main, "SELECT COUNT(*) FROM tombstones").await?, 1);
    service.stop().await
}

#[tokio::test]
async fn the_retention_sweeper_erases_inactive_clients_on_sqlite() -> anyhow::Result<()> {
    retention(Stores::sqlite()?).await
}

#[tokio::test]
async fn the_retention_sweeper_erases_inactive_clients_on_postgres() -> anyhow::Result<()> {
    retention(Stores::postgres().await?).await
}
