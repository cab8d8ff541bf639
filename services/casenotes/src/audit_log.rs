//! The audit trail's store, with group commit.
//!
//! A caller's entries are durable before [`AuditLog::append`] returns, and every entry
//! waiting when a commit starts shares it. Within the committing transaction each
//! organisation's chain head is read under a row lock (`FOR UPDATE` on PostgreSQL; SQLite
//! takes its write lock at `BEGIN`) and advanced with the entries, so two replicas
//! appending at once queue on the head and never fork the chain.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement, Value};
use sea_orm_migration::prelude::*;
use tokio::sync::{mpsc, oneshot};

use crate::audit::{self, AuditEntry, AuditKey, Broken, GENESIS};

/// Entries from any number of callers committed together at most.
const GROUP: usize = 1_000;

/// What a caller records; the log numbers and chains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub org: String,
    pub actor: String,
    pub action: String,
    pub client_id: Option<String>,
    pub purpose: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditLogError {
    #[error("audit store: {0}")]
    Store(#[from] DbErr),
    #[error("the audit writer has stopped")]
    Stopped,
    #[error(transparent)]
    Broken(#[from] Broken),
    #[error(
        "{org}: the chain head says {head} entries, the trail holds {held}: the last were deleted"
    )]
    TailMissing { org: String, head: i64, held: i64 },
}

type Request = (Vec<Record>, oneshot::Sender<Result<(), String>>);

/// Appends entries through one writer task per process.
#[derive(Debug, Clone)]
pub struct AuditLog {
    requests: mpsc::Sender<Request>,
    commits: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl AuditLog {
    /// Starts the writer; it stops when every handle is dropped.
    pub fn start(db: DatabaseConnection, key: std::sync::Arc<AuditKey>) -> Self {
        let (requests, mut incoming) = mpsc::channel::<Request>(GROUP);
        let commits = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = commits.clone();
        tokio::spawn(async move {
            while let Some(first) = incoming.recv().await {
                let mut group = vec![first];
                let mut count = group[0].0.len();
                while count < GROUP {
                    match incoming.try_recv() {
                        Ok(request) => {
                            count += request.0.len();
                            group.push(request);
                        }
                        Err(_) => break,
                    }
                }
                let records: Vec<&Record> = group.iter().flat_map(|(records, _)| records).collect();
                let outcome = commit(&db, &key, &records)
                    .await
                    .map_err(|error| error.to_string());
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for (_, reply) in group {
                    reply.send(outcome.clone()).ok();
                }
            }
        });
        Self { requests, commits }
    }

    /// Transactions committed so far: fewer than the appends when they were grouped.
    pub fn commits(&self) -> u64 {
        self.commits.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Records `records`; returns once they are committed.
    pub async fn append(&self, records: Vec<Record>) -> Result<(), AuditLogError> {
        if records.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((records, reply))
            .await
            .map_err(|_| AuditLogError::Stopped)?;
        answer
            .await
            .map_err(|_| AuditLogError::Stopped)?
            .map_err(|error| AuditLogError::Store(DbErr::Custom(error)))
    }
}

fn statement(backend: DatabaseBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

fn mac_of(bytes: Vec<u8>) -> Result<[u8; 32], DbErr> {
    bytes
        .try_into()
        .map_err(|_| DbErr::Custom("an audit MAC is not 32 bytes".to_owned()))
}

/// One transaction: per organisation, lock the head, chain the entries, move the head.
async fn commit(db: &DatabaseConnection, key: &AuditKey, records: &[&Record]) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    let txn = careers_eventbus::begin_write(db).await?;
    let mut orgs: Vec<&str> = records.iter().map(|record| record.org.as_str()).collect();
    orgs.sort_unstable();
    orgs.dedup();
    let lock = if backend == DatabaseBackend::Postgres {
        " FOR UPDATE"
    } else {
        ""
    };
    let at = Utc::now();
    for org in orgs {
        txn.execute_raw(statement(
            backend,
            "INSERT INTO audit_heads (org, seq, mac) VALUES ($1, 0, $2) ON CONFLICT (org) DO NOTHING",
            vec![org.into(), GENESIS.to_vec().into()],
        ))
        .await?;
        let head = txn
            .query_one_raw(statement(
                backend,
                &format!("SELECT seq, mac FROM audit_heads WHERE org = $1{lock}"),
                vec![org.into()],
            ))
            .await?
            .ok_or_else(|| DbErr::RecordNotFound(format!("audit head of {org}")))?;
        let (mut seq, mac): (i64, Vec<u8>) = (head.try_get_by_index(0)?, head.try_get_by_index(1)?);
        let mut previous = mac_of(mac)?;
        for record in records.iter().filter(|record| record.org == org) {
            seq += 1;
            let entry = AuditEntry {
                org: org.to_owned(),
                seq,
                at,
                actor: record.actor.clone(),
                action: record.action.clone(),
                client_id: record.client_id.clone(),
                purpose: record.purpose.clone(),
            };
            previous = audit::link(key, &previous, &entry);
            txn.execute_raw(statement(
                backend,
                "INSERT INTO audit_entries (org, seq, at, actor, action, client_id, purpose, mac) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                vec![
                    org.into(),
                    seq.into(),
                    at.timestamp_micros().into(),
                    entry.actor.into(),
                    entry.action.into(),
                    entry.client_id.into(),
                    entry.purpose.into(),
                    previous.to_vec().into(),
                ],
            ))
            .await?;
        }
        txn.execute_raw(statement(
            backend,
            "UPDATE audit_heads SET seq = $1, mac = $2 WHERE org = $3",
            vec![seq.into(), previous.to_vec().into(), org.into()],
        ))
        .await?;
    }
    txn.commit().await
}

/// Checks an organisation's whole trail against its head; answers how many entries held.
pub async fn verify(
    db: &impl ConnectionTrait,
    key: &AuditKey,
    org: &str,
) -> Result<usize, AuditLogError> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(statement(
            backend,
            "SELECT seq, at, actor, action, client_id, purpose, mac FROM audit_entries \
             WHERE org = $1 ORDER BY seq",
            vec![org.into()],
        ))
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let micros: i64 = row.try_get_by_index(1)?;
        entries.push((
            AuditEntry {
                org: org.to_owned(),
                seq: row.try_get_by_index(0)?,
                at: DateTime::from_timestamp_micros(micros).unwrap_or_default(),
                actor: row.try_get_by_index(2)?,
                action: row.try_get_by_index(3)?,
                client_id: row.try_get_by_index(4)?,
                purpose: row.try_get_by_index(5)?,
            },
            mac_of(row.try_get_by_index(6)?)?,
        ));
    }
    let held = audit::verify(key, org, &entries)?;
    let head: i64 = db
        .query_one_raw(statement(
            backend,
            "SELECT seq FROM audit_heads WHERE org = $1",
            vec![org.into()],
        ))
        .await?
        .map(|row| row.try_get_by_index(0))
        .transpose()?
        .unwrap_or(0);
    let held_count: i64 = held.try_into().unwrap_or(i64::MAX);
    if head != held_count {
        return Err(AuditLogError::TailMissing {
            org: org.to_owned(),
            head,
            held: held_count,
        });
    }
    Ok(held)
}

/// The audit tables, in the casenotes store.
#[derive(Debug)]
pub struct CreateAuditTrail;

impl MigrationName for CreateAuditTrail {
    fn name(&self) -> &str {
        "m20261123_003002_casenotes_audit"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateAuditTrail {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let bytes = if db.get_database_backend() == DatabaseBackend::Postgres {
            "BYTEA"
        } else {
            "BLOB"
        };
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS audit_heads (org TEXT PRIMARY KEY, seq BIGINT NOT NULL, \
                 mac {bytes} NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS audit_entries (org TEXT NOT NULL, seq BIGINT NOT NULL, \
                 at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, client_id TEXT, \
                 purpose TEXT NOT NULL, mac {bytes} NOT NULL, PRIMARY KEY (org, seq))"
            ),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::Database;
    use sea_orm_migration::MigratorTrait;

    use super::*;

    fn record(org: &str, client: usize) -> Record {
        Record {
            org: org.to_owned(),
            actor: "adviser-1".into(),
            action: "client.read".into(),
            client_id: Some(format!("client-{client}")),
            purpose: "guidance".into(),
        }
    }

    async fn store(url: &str) -> anyhow::Result<DatabaseConnection> {
        let db = Database::connect(url).await?;
        crate::Migrator::up(&db, None).await?;
        Ok(db)
    }

    async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
        Ok(careers_eventbus::testing::count(db, sql).await?)
    }

    /// Two logs (two replicas) append at once from many tasks: every entry lands once,
    /// each organisation's chain is whole, and tampering in the database is named.
    async fn replicas_append_one_chain_and_tampering_is_found(url: &str) -> anyhow::Result<()> {
        let key = Arc::new(AuditKey::new(vec![7; 32])?);
        let (first, second) = (store(url).await?, store(url).await?);
        let logs = [
            AuditLog::start(first.clone(), key.clone()),
            AuditLog::start(second, key.clone()),
        ];
        let mut tasks = Vec::new();
        for task in 0..40 {
            let log = logs[task % 2].clone();
            tasks.push(tokio::spawn(async move {
                let org = if task % 3 == 0 { "org-b" } else { "org-a" };
                log.append(
                    (0..5)
                        .map(|client| record(org, task * 10 + client))
                        .collect(),
                )
                .await
            }));
        }
        for task in tasks {
            task.await??;
        }
        let (a, b) = (
            verify(&first, &key, "org-a").await?,
            verify(&first, &key, "org-b").await?,
        );
        assert_eq!(a + b, 200);
        assert_eq!(b, 14 * 5);
        assert_eq!(
            count(&first, "SELECT COUNT(*) FROM audit_entries").await?,
            200
        );

        let tamper = |sql: &'static str| {
            let db = first.clone();
            async move {
                db.execute_unprepared(sql).await?;
                anyhow::Ok(())
            }
        };
        // Another key recomputes nothing that verifies.
        let other = AuditKey::new(vec![8; 32])?;
        assert_eq!(
            verify(&first, &other, "org-a")
                .await
                .err()
                .map(|error| error.to_string()),
            Some(
                "audit entry 1 of org-a: does not match its MAC: edited, or its MAC recomputed"
                    .into()
            )
        );
        tamper("UPDATE audit_entries SET client_id = 'client-999' WHERE org = 'org-b' AND seq = 4")
            .await?;
        match verify(&first, &key, "org-b").await {
            Err(AuditLogError::Broken(broken)) => assert_eq!(broken.seq, 4),
            other => panic!("an edited entry verified: {other:?}"),
        }
        tamper("DELETE FROM audit_entries WHERE org = 'org-a' AND seq = 7").await?;
        match verify(&first, &key, "org-a").await {
            Err(AuditLogError::Broken(broken)) => assert_eq!(broken.seq, 7),
            other => panic!("a deleted entry verified: {other:?}"),
        }
        // A deleted tail leaves a whole chain, but not the one the head recorded.
        logs[0]
            .append((0..3).map(|client| record("org-c", client)).collect())
            .await?;
        tamper("DELETE FROM audit_entries WHERE org = 'org-c' AND seq = 3").await?;
        assert!(matches!(
            verify(&first, &key, "org-c").await,
            Err(AuditLogError::TailMissing {
                head: 3,
                held: 2,
                ..
            })
        ));
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_append_one_chain_and_tampering_is_found_on_sqlite() -> anyhow::Result<()> {
        let database = careers_testkit::sqlite::TestSqlite::new()?;
        replicas_append_one_chain_and_tampering_is_found(&database.url).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_append_one_chain_and_tampering_is_found_on_postgres() -> anyhow::Result<()> {
        let database = careers_testkit::postgres::empty_database().await?;
        replicas_append_one_chain_and_tampering_is_found(&database.url).await
    }
}
