//! Matching runs, serialised across replicas by an advisory lock.

use super::*;

/// A matching run as stored; matches are its engagements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRow {
    pub id: String,
    pub status: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub total_score: i64,
    pub optimal_score: i64,
    /// JSON list of `{request_id, blocked_by, open_slots}`.
    pub unmatched: String,
    pub error: Option<String>,
}

pub(super) const RUN_COLUMNS: &str =
    "id, status, started_at, finished_at, total_score, optimal_score, unmatched, error";

pub(super) fn run_row(row: &QueryResult) -> Result<RunRow, DbErr> {
    Ok(RunRow {
        id: row.try_get_by_index(0)?,
        status: row.try_get_by_index(1)?,
        started_at: row.try_get_by_index(2)?,
        finished_at: row.try_get_by_index(3)?,
        total_score: row.try_get_by_index(4)?,
        optimal_score: row.try_get_by_index(5)?,
        unmatched: row.try_get_by_index(6)?,
        error: row.try_get_by_index(7)?,
    })
}

pub async fn insert_run(
    connection: &impl ConnectionTrait,
    id: &str,
    started_at: i64,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO matching_runs (id, status, started_at, total_score, optimal_score, unmatched) \
         VALUES ($1, 'running', $2, 0, 0, '[]')",
        vec![id.into(), started_at.into()],
    )
    .await
    .map(|_| ())
}

/// Marks as failed the runs still "running" that started before `before`: their process
/// stopped mid-run (its transaction, and so its lock and its writes, went with it).
pub async fn fail_abandoned_runs(
    connection: &impl ConnectionTrait,
    before: i64,
    now: i64,
) -> Result<u64, DbErr> {
    execute(
        connection,
        "UPDATE matching_runs SET status = 'failed', finished_at = $2, \
         error = 'abandoned: the process running it stopped before it finished' \
         WHERE status = 'running' AND started_at < $1",
        vec![before.into(), now.into()],
    )
    .await
}

pub async fn finish_run(connection: &impl ConnectionTrait, run: &RunRow) -> Result<(), DbErr> {
    execute(
        connection,
        "UPDATE matching_runs SET status = $2, finished_at = $3, total_score = $4, \
         optimal_score = $5, unmatched = $6, error = $7 WHERE id = $1",
        vec![
            run.id.clone().into(),
            run.status.clone().into(),
            run.finished_at.into(),
            run.total_score.into(),
            run.optimal_score.into(),
            run.unmatched.clone().into(),
            run.error.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn run(connection: &impl ConnectionTrait, id: &str) -> Result<Option<RunRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {RUN_COLUMNS} FROM matching_runs WHERE id = $1"),
        vec![id.into()],
        run_row,
    )
    .await?
    .pop())
}

/// Serialises matching runs across replicas for the rest of the transaction, which must
/// be one `careers_eventbus::begin_write` opened: on PostgreSQL a transaction-scoped
/// advisory lock; on SQLite that transaction already holds the single write lock.
pub async fn lock_matching(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    if connection.get_database_backend() == DatabaseBackend::Postgres {
        execute(
            connection,
            "SELECT pg_advisory_xact_lock($1)",
            vec![MATCHING_LOCK_KEY.into()],
        )
        .await?;
    }
    Ok(())
}

/// The advisory lock key of matching runs ("ambmatch" in ASCII).
pub(super) const MATCHING_LOCK_KEY: i64 = 0x616d_626d_6174_6368;
