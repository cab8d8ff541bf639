//! Submissions being received. Their figures are written in short transactions as the
//! rows stream in, under a submission id that has no `submissions` row yet, so no read
//! sees them (every figure read joins `submissions`). Recording the submission makes them
//! visible at once; a staging row untouched for too long is a crashed or abandoned upload,
//! and [`sweep`] deletes it with its figures.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, DbErr, Statement};

use super::figures::{NewFigure, instant_text};

/// Starts staging: id, SSC, key, instant (both started and touched).
const START: &str = "INSERT INTO staging (submission_id, ssc, submission_key, started_at, touched_at) \
     VALUES ($1, $2, $3, $4, $4)";
/// Notes an upload alive: instant, id.
const TOUCH: &str = "UPDATE staging SET touched_at = $1 WHERE submission_id = $2";

/// Writes figures of submission `id` in one transaction that starts its staging or
/// notes it is still alive; false when the sweep already took it. PostgreSQL gets the
/// figures by COPY through sea-orm's own pool, SQLite by batched INSERTs.
pub async fn stage(
    db: &DatabaseConnection,
    id: &str,
    (ssc, key): (&str, &str),
    first: bool,
    figures: &[NewFigure<'_>],
) -> Result<bool, DbErr> {
    let now = Utc::now();
    if db.get_database_backend() != DatabaseBackend::Postgres {
        let txn = careers_eventbus::begin_write(db).await?;
        if first {
            start(&txn, id, ssc, key, now).await?;
        } else if !touch(&txn, id, now).await? {
            return Ok(false);
        }
        super::figures::insert_many(&txn, figures).await?;
        txn.commit().await?;
        return Ok(true);
    }
    let failed = |error: sqlx::Error| DbErr::Custom(format!("staging {id}: {error}"));
    let mut transaction = db
        .get_postgres_connection_pool()
        .begin()
        .await
        .map_err(failed)?;
    let at = instant_text(now);
    let written = if first {
        sqlx::query(START)
            .bind(id)
            .bind(ssc)
            .bind(key)
            .bind(&at)
            .execute(&mut *transaction)
            .await
    } else {
        sqlx::query(TOUCH)
            .bind(&at)
            .bind(id)
            .execute(&mut *transaction)
            .await
    }
    .map_err(failed)?;
    if written.rows_affected() != 1 {
        return Ok(false);
    }
    super::figures::copy_many(&mut transaction, figures).await?;
    transaction.commit().await.map_err(failed)?;
    Ok(true)
}

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
            START,
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
            TOUCH,
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

#[cfg(test)]
mod tests {
    use careers_testkit::{postgres, sqlite::TestSqlite};
    use chrono::Duration;
    use sea_orm::{Database, DatabaseConnection};
    use sea_orm_migration::MigratorTrait;

    use super::*;
    use crate::{
        domain::Row,
        store::{figures, submissions},
    };

    fn row(period: &str, value: f64) -> Row {
        Row {
            soc_code: "2134".to_owned(),
            region: "K02000001".to_owned(),
            period: period.to_owned(),
            measure: "median_annual_pay".to_owned(),
            value,
            unit: "GBP".to_owned(),
            source: "test".to_owned(),
            breakdown: "all".to_owned(),
            ..Row::default()
        }
    }

    async fn store(db: &DatabaseConnection, submission: &str, row: &Row, at: DateTime<Utc>) {
        let figure_id = format!("{submission}-figure");
        let figure = NewFigure {
            figure_id: &figure_id,
            submission_id: submission,
            row,
            row_index: 1,
            status: "published",
            held: None,
            recorded_at: at,
            delta: "added",
            previous_value: None,
        };
        figures::insert_many(db, &[figure]).await.expect("stored");
    }

    async fn latest(db: &DatabaseConnection) -> anyhow::Result<Vec<(String, f64)>> {
        let filter = figures::Filter {
            as_of: Utc::now() + Duration::hours(1),
            ..figures::Filter::default()
        };
        let page = figures::page(db, &filter, None, 10).await?;
        Ok(page
            .into_iter()
            .map(|record| (record.submission_id, record.value))
            .collect())
    }

    /// Staged figures are invisible until recorded, even to the latest-figure rule; the
    /// sweep takes only stale uploads, and never a recorded one's figures.
    async fn staged_figures_wait_for_their_submission(url: &str) -> anyhow::Result<()> {
        let db = Database::connect(url).await?;
        crate::Migrator::up(&db, None).await?;
        let now = Utc::now();
        let (long_ago, recent) = (now - Duration::hours(2), now - Duration::seconds(5));

        store(&db, "recorded", &row("2023", 50_000.0), long_ago).await;
        submissions::insert_submission(&db, "recorded", "ons", "k0", long_ago, vec![]).await?;
        start(&db, "stale", "ons", "k1", long_ago).await?;
        store(&db, "stale", &row("2024", 1.0), long_ago).await;
        start(&db, "live", "ons", "k2", recent).await?;
        store(&db, "live", &row("2025", 60_000.0), recent).await;

        assert_eq!(latest(&db).await?, [("recorded".to_owned(), 50_000.0)]);
        let codes = std::collections::BTreeSet::from(["2134"]);
        let published = figures::published_now(&db, &codes).await?;
        assert_eq!(
            published
                .series
                .values()
                .map(|p| p.value)
                .collect::<Vec<_>>(),
            [50_000.0]
        );

        assert_eq!(sweep(&db, now - Duration::minutes(10)).await?, (1, 1));
        assert!(
            !touch(&db, "stale", now).await?,
            "a swept upload stays gone"
        );
        assert!(touch(&db, "live", now).await?);

        assert!(finish(&db, "live").await?);
        submissions::insert_submission(&db, "live", "ons", "k2", recent, vec![]).await?;
        assert_eq!(latest(&db).await?, [("live".to_owned(), 60_000.0)]);
        assert_eq!(sweep(&db, now + Duration::hours(1)).await?, (0, 0));
        assert_eq!(
            abandon(&db, "live").await?,
            0,
            "a recorded submission keeps its figures"
        );
        assert_eq!(latest(&db).await?, [("live".to_owned(), 60_000.0)]);
        Ok(())
    }

    #[tokio::test]
    async fn staged_figures_wait_for_their_submission_on_sqlite() -> anyhow::Result<()> {
        let database = TestSqlite::new()?;
        staged_figures_wait_for_their_submission(&database.url).await
    }

    #[tokio::test]
    async fn staged_figures_wait_for_their_submission_on_postgres() -> anyhow::Result<()> {
        let database = postgres::empty_database().await?;
        staged_figures_wait_for_their_submission(&database.url).await
    }
}
