//! Submissions being received. Their figures are written in short transactions as the
//! rows stream in, under a submission id that has no `submissions` row yet, so no read
//! sees them (every figure read joins `submissions`). Recording the submission makes them
//! visible at once; a staging row untouched for too long is a crashed or abandoned upload,
//! and [`sweep`] deletes it with its figures.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement};

use super::figures::instant_text;

/// Starts the staging of submission `id`.
pub async fn start(
    connection: &impl ConnectionTrait,
    id: &str,
    ssc: &str,
    key: &str,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let at = instant_text(at);
    connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "INSERT INTO staging (submission_id, ssc, submission_key, started_at, touched_at) \
             VALUES ($1, $2, $3, $4, $4)",
            [id.into(), ssc.into(), key.into(), at.into()],
        ))
        .await?;
    Ok(())
}

/// Notes that submission `id` is still being received; false when the sweep took it.
pub async fn touch(
    connection: &impl ConnectionTrait,
    id: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "UPDATE staging SET touched_at = $1 WHERE submission_id = $2",
            [instant_text(at).into(), id.into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Ends the staging of `id` as its submission is recorded; false when the sweep took it
/// (its figures are gone, so it cannot be recorded).
pub async fn finish(connection: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    let result = connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "DELETE FROM staging WHERE submission_id = $1",
            [id.into()],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Deletes the figures submission `id` staged, unless it was recorded after all.
async fn delete_figures(connection: &impl ConnectionTrait, id: &str) -> Result<u64, DbErr> {
    let deleted = connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "DELETE FROM figures WHERE submission_id = $1 \
             AND NOT EXISTS (SELECT 1 FROM submissions WHERE id = $1)",
            [id.into()],
        ))
        .await?;
    Ok(deleted.rows_affected())
}

/// Gives up submission `id`: its staging row and what it staged.
pub async fn abandon(connection: &impl ConnectionTrait, id: &str) -> Result<u64, DbErr> {
    finish(connection, id).await?;
    delete_figures(connection, id).await
}

/// Abandons every submission untouched since `before`; how many, and their figures. The
/// staging row goes first and only while still stale, so an upload that touched it
/// meanwhile, or recorded it, keeps its figures.
pub async fn sweep(
    connection: &impl ConnectionTrait,
    before: DateTime<Utc>,
) -> Result<(u64, u64), DbErr> {
    let backend = connection.get_database_backend();
    let before = instant_text(before);
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT submission_id FROM staging WHERE touched_at < $1",
            [before.clone().into()],
        ))
        .await?;
    let (mut submissions, mut figures) = (0, 0);
    for row in rows {
        let id: String = row.try_get_by_index(0)?;
        let claimed = connection
            .execute_raw(Statement::from_sql_and_values(
                backend,
                "DELETE FROM staging WHERE submission_id = $1 AND touched_at < $2",
                [id.clone().into(), before.clone().into()],
            ))
            .await?;
        if claimed.rows_affected() == 1 {
            figures += delete_figures(connection, &id).await?;
            submissions += 1;
        }
    }
    Ok((submissions, figures))
}
