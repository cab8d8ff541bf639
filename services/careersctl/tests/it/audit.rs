//! `careersctl audit verify` against a case-notes store: exit 0 while the chains hold,
//! exit 1 naming the entry once one is edited.

use std::sync::Arc;

use careers_casenotes::{
    audit::AuditKey,
    audit_log::{AuditLog, Record},
    settings::generate_dev_secrets,
};
use careers_testkit::sqlite::TestSqlite;
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;

use crate::careersctl_with;

#[tokio::test]
async fn audit_verify_passes_an_intact_trail_and_names_an_edited_entry() -> anyhow::Result<()> {
    let store = TestSqlite::new()?;
    let db = Database::connect(store.url.as_str()).await?;
    careers_casenotes::Migrator::up(&db, None).await?;
    let (_, audit_key) = generate_dev_secrets("unused");
    let key = {
        use base64::Engine;
        AuditKey::new(base64::engine::general_purpose::STANDARD.decode(&audit_key)?)?
    };
    let log = AuditLog::start(db.clone(), Arc::new(key));
    for (org, client) in [("org-1", "c1"), ("org-1", "c2"), ("org-2", "c3")] {
        log.append(vec![Record {
            org: org.into(),
            actor: "adviser".into(),
            action: "client.read".into(),
            client_id: Some(client.into()),
            purpose: "guidance".into(),
        }])
        .await?;
    }
    let env = [
        (
            "CAREERS_CAREERSCTL__CASENOTES__DATABASE",
            store.url.as_str(),
        ),
        (
            "CAREERS_CAREERSCTL__CASENOTES__AUDIT__KEY",
            audit_key.as_str(),
        ),
    ];
    let unreachable = "nats://127.0.0.1:9";
    let intact = careersctl_with(unreachable, &env, &["audit", "verify"])?;
    let stdout = String::from_utf8_lossy(&intact.stdout);
    assert!(
        intact.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&intact.stderr)
    );
    assert!(
        stdout.contains("org-1\tok\t2 entries") && stdout.contains("org-2\tok\t1 entries"),
        "{stdout}"
    );

    db.execute_unprepared(
        "UPDATE audit_entries SET actor = 'someone-else' WHERE org = 'org-1' AND seq = 2",
    )
    .await?;
    let broken = careersctl_with(unreachable, &env, &["audit", "verify"])?;
    let stdout = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("org-1\tBROKEN\taudit entry 2 of org-1"),
        "{stdout}"
    );
    assert!(stdout.contains("org-2\tok"), "{stdout}");
    // A wrong key fails every chain from its first entry.
    let (_, other_key) = generate_dev_secrets("unused");
    let wrong = careersctl_with(
        unreachable,
        &[
            env[0],
            (
                "CAREERS_CAREERSCTL__CASENOTES__AUDIT__KEY",
                other_key.as_str(),
            ),
        ],
        &["audit", "verify", "--org", "org-2"],
    )?;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("audit entry 1 of org-2"));
    Ok(())
}
