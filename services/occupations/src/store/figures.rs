//! The latest LMI figure per (SOC code, measure, region, breakdown), merged from
//! `FiguresPublished`: later period (by its last month, [`period::order_key`]), then later
//! recorded_at, then higher figure id wins, which gives one result in any delivery order.
//! The upsert itself compares ranks, so any number of consumers applying at once cannot
//! let a lower-ranked figure overwrite a higher one.

use careers_proto::period;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryOrder, Statement, entity::prelude::*};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "lmi_figures")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub soc_code: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub measure: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub region: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub breakdown: String,
    pub period: String,
    pub value: f64,
    pub unit: String,
    pub source: String,
    pub recorded_at: DateTimeUtc,
    pub figure_id: String,
    pub suppressed: bool,
    /// The year a projection is to; empty for other measures.
    pub horizon: String,
    /// The last month the period covers (`YYYY-MM`), the first part of the merge rank:
    /// stored so that the upsert's guard can compare ranks in SQL.
    pub period_order: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// One figure to merge.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub soc_code: String,
    pub measure: String,
    pub region: String,
    pub breakdown: String,
    pub period: String,
    pub value: f64,
    pub unit: String,
    pub source: String,
    pub recorded_at: DateTime<Utc>,
    pub figure_id: String,
    pub suppressed: bool,
    pub horizon: String,
}

/// The merge order: later period (by the month it ends), then later recorded_at, then
/// higher figure id.
fn rank<'a>(
    period: &'a str,
    recorded_at: DateTime<Utc>,
    figure_id: &'a str,
) -> ((String, &'a str), DateTime<Utc>, &'a str) {
    (period::order_key(period), recorded_at, figure_id)
}

/// Rows per upsert statement (13 values each).
const UPSERT_BATCH: usize = 100;

/// Keeps each of `incoming` (one occupation's figures) that beats the one held for its
/// key and the others in the batch. The batch's best per key is chosen here; the held row
/// is compared by the upsert's `WHERE`, under the row lock the conflict takes, never by a
/// read followed by a blind write.
pub async fn merge_many(
    connection: &impl ConnectionTrait,
    incoming: Vec<Incoming>,
) -> Result<(), DbErr> {
    let mut winners: std::collections::BTreeMap<(String, String, String), Incoming> =
        std::collections::BTreeMap::new();
    for figure in incoming {
        let key = (
            figure.measure.clone(),
            figure.region.clone(),
            figure.breakdown.clone(),
        );
        let candidate = rank(&figure.period, figure.recorded_at, &figure.figure_id);
        let beaten_in_batch = winners.get(&key).is_some_and(|other| {
            rank(&other.period, other.recorded_at, &other.figure_id) >= candidate
        });
        if !beaten_in_batch {
            winners.insert(key, figure);
        }
    }
    let backend = connection.get_database_backend();
    // Text compares byte by byte, as the in-memory rank does, whatever the database's
    // collation.
    let collate = match backend {
        sea_orm::DatabaseBackend::Postgres => " COLLATE \"C\"",
        _ => "",
    };
    let winners: Vec<Incoming> = winners.into_values().collect();
    for batch in winners.chunks(UPSERT_BATCH) {
        let mut values: Vec<Value> = Vec::with_capacity(batch.len() * 13);
        let mut tuples = Vec::with_capacity(batch.len());
        for figure in batch {
            let first = values.len();
            values.extend([
                figure.soc_code.clone().into(),
                figure.measure.clone().into(),
                figure.region.clone().into(),
                figure.breakdown.clone().into(),
                figure.period.clone().into(),
                figure.value.into(),
                figure.unit.clone().into(),
                figure.source.clone().into(),
                figure.recorded_at.into(),
                figure.figure_id.clone().into(),
                figure.suppressed.into(),
                figure.horizon.clone().into(),
                period::order_key(&figure.period).0.into(),
            ]);
            let placeholders: Vec<String> = (first + 1..=values.len())
                .map(|index| format!("${index}"))
                .collect();
            tuples.push(format!("({})", placeholders.join(", ")));
        }
        let sql = format!(
            "INSERT INTO lmi_figures (soc_code, measure, region, breakdown, period, value, unit, \
             source, recorded_at, figure_id, suppressed, horizon, period_order) VALUES {} \
             ON CONFLICT (soc_code, measure, region, breakdown) DO UPDATE SET \
             period = excluded.period, value = excluded.value, unit = excluded.unit, \
             source = excluded.source, recorded_at = excluded.recorded_at, \
             figure_id = excluded.figure_id, suppressed = excluded.suppressed, \
             horizon = excluded.horizon, period_order = excluded.period_order \
             WHERE (excluded.period_order{c}, excluded.period{c}, excluded.recorded_at, \
             excluded.figure_id{c}) > (lmi_figures.period_order{c}, lmi_figures.period{c}, \
             lmi_figures.recorded_at, lmi_figures.figure_id{c})",
            tuples.join(", "),
            c = collate,
        );
        connection
            .execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// The figures held for an occupation, in a stable order.
pub async fn for_occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
) -> Result<Vec<Model>, DbErr> {
    Entity::find()
        .filter(Column::SocCode.eq(soc_code))
        .order_by_asc(Column::Measure)
        .order_by_asc(Column::Region)
        .order_by_asc(Column::Breakdown)
        .all(connection)
        .await
}

/// Deletes every figure (before a replay rebuilds them).
pub async fn clear(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    Entity::delete_many().exec(connection).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use careers_testkit::{postgres, sqlite::TestSqlite};
    use sea_orm::Database;
    use sea_orm_migration::MigratorTrait;

    use super::*;

    fn figure(breakdown: &str, period: &str, seconds: i64, id: &str) -> Incoming {
        Incoming {
            soc_code: "2134".into(),
            measure: "median_annual_pay".into(),
            region: "K02000001".into(),
            breakdown: breakdown.into(),
            period: period.into(),
            value: seconds as f64,
            unit: "GBP".into(),
            source: id.into(),
            recorded_at: DateTime::from_timestamp(seconds, 0).unwrap_or_default(),
            figure_id: id.into(),
            suppressed: false,
            horizon: String::new(),
        }
    }

    /// The same figures in any order and any batching leave the same winners.
    async fn any_order_gives_one_result(url: &str) -> anyhow::Result<()> {
        let db = Database::connect(url).await?;
        crate::Migrator::up(&db, None).await?;
        let all = [
            figure("all", "2023", 30, "a"),
            figure("all", "2024-Q1", 10, "b"),
            figure("all", "2024-Q1", 40, "c"),
            // The year 2024 ends after 2024-Q1: it wins though recorded earliest.
            figure("all", "2024", 5, "d"),
            figure("full_time", "2024", 5, "e"),
            figure("full_time", "2024", 5, "f"),
        ];
        let orders: [&[&[usize]]; 3] = [
            &[&[0, 1, 2, 3, 4, 5]],
            &[&[5], &[3], &[2], &[4], &[1], &[0]],
            &[&[2, 0, 5], &[3, 1, 4]],
        ];
        for batches in orders {
            clear(&db).await?;
            for batch in batches {
                let incoming = batch.iter().map(|index| all[*index].clone()).collect();
                merge_many(&db, incoming).await?;
            }
            assert_eq!(
                held(&db).await?,
                [
                    ("all".to_owned(), "d".to_owned()),
                    ("full_time".to_owned(), "f".to_owned())
                ],
                "{batches:?}"
            );
        }
        Ok(())
    }

    /// The held figures as (breakdown, figure id), in key order.
    async fn held(db: &impl ConnectionTrait) -> anyhow::Result<Vec<(String, String)>> {
        Ok(for_occupation(db, "2134")
            .await?
            .into_iter()
            .map(|model| (model.breakdown, model.figure_id))
            .collect())
    }

    /// The race two replicas meet on one durable: the newer figure's consumer holds the
    /// row in an open transaction while the older one's consumer reads nothing committed
    /// and waits on the row lock. When the newer commits, the older must not overwrite it.
    #[tokio::test]
    async fn a_waiting_older_figure_never_overwrites_a_newer_one_on_postgres() -> anyhow::Result<()>
    {
        use sea_orm::TransactionTrait;
        let database = postgres::empty_database().await?;
        let db = Database::connect(database.url.as_str()).await?;
        crate::Migrator::up(&db, None).await?;
        let newer = db.begin().await?;
        merge_many(&newer, vec![figure("all", "2024", 50, "newer")]).await?;
        let older = tokio::spawn({
            let db = db.clone();
            async move {
                let txn = db.begin().await?;
                merge_many(&txn, vec![figure("all", "2023", 10, "older")]).await?;
                txn.commit().await
            }
        });
        // Long enough for the older consumer to reach the row lock.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !older.is_finished(),
            "the older figure waits on the row lock"
        );
        newer.commit().await?;
        older.await??;
        assert_eq!(held(&db).await?, [("all".to_owned(), "newer".to_owned())]);
        Ok(())
    }

    /// A shuffled stream with duplicates, split between two consumers applying one figure
    /// per transaction at once, leaves what one in-order consumer leaves.
    #[tokio::test]
    async fn two_concurrent_consumers_agree_with_one_in_order_consumer_on_postgres()
    -> anyhow::Result<()> {
        use sea_orm::TransactionTrait;
        let breakdowns = ["all", "full_time", "part_time"];
        let periods = ["2022", "2023-Q4", "2023", "2024-Q1", "2024-06", "2024"];
        let mut all = Vec::new();
        for (index, (breakdown, period)) in breakdowns
            .iter()
            .flat_map(|breakdown| periods.iter().map(move |period| (breakdown, period)))
            .enumerate()
        {
            // Recorded times and ids repeat across periods, so every part of the rank counts.
            let seconds = i64::try_from(index % 4)? * 100;
            all.push(figure(
                breakdown,
                period,
                seconds,
                &format!("f{:02}", index % 7),
            ));
        }
        let database = postgres::empty_database().await?;
        let db = Database::connect(database.url.as_str()).await?;
        crate::Migrator::up(&db, None).await?;
        let held = careers_testkit::projection::two_consumers_agree_with_one(
            &db,
            &all,
            0..20,
            |db, figure| async move {
                let txn = db.begin().await?;
                merge_many(&txn, vec![figure]).await?;
                txn.commit().await
            },
            |db| async move { for_occupation(&db, "2134").await },
            |db| async move { clear(&db).await },
        )
        .await?;
        assert_eq!(held.len(), breakdowns.len());
        Ok(())
    }

    /// A store written before the rank was stored upgrades in place: its figures get their
    /// period order, and the guard then holds against them.
    async fn figures_held_before_the_upgrade_keep_their_rank(url: &str) -> anyhow::Result<()> {
        let db = Database::connect(url).await?;
        let before = u32::try_from(crate::Migrator::migrations().len() - 1)?;
        crate::Migrator::up(&db, Some(before)).await?;
        for (breakdown, period) in [("all", "2024-Q1"), ("full_time", "2024")] {
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "INSERT INTO lmi_figures (soc_code, measure, region, breakdown, period, value, \
                 unit, source, recorded_at, figure_id, suppressed, horizon) \
                 VALUES ('2134', 'median_annual_pay', 'K02000001', $1, $2, 1, 'GBP', 'ASHE', $3, \
                 'held', false, '')",
                [
                    breakdown.into(),
                    period.into(),
                    DateTime::from_timestamp(50, 0).unwrap_or_default().into(),
                ],
            ))
            .await?;
        }
        crate::Migrator::up(&db, None).await?;
        let orders: Vec<String> = for_occupation(&db, "2134")
            .await?
            .into_iter()
            .map(|model| model.period_order)
            .collect();
        assert_eq!(orders, ["2024-03", "2024-12"]);
        // Older periods lose to what was held; a later one wins.
        merge_many(
            &db,
            vec![
                figure("all", "2023", 90, "older"),
                figure("full_time", "2025", 1, "later"),
            ],
        )
        .await?;
        assert_eq!(
            held(&db).await?,
            [
                ("all".to_owned(), "held".to_owned()),
                ("full_time".to_owned(), "later".to_owned())
            ]
        );
        Ok(())
    }

    #[tokio::test]
    async fn figures_held_before_the_upgrade_keep_their_rank_on_sqlite() -> anyhow::Result<()> {
        let database = TestSqlite::new()?;
        figures_held_before_the_upgrade_keep_their_rank(&database.url).await
    }

    #[tokio::test]
    async fn figures_held_before_the_upgrade_keep_their_rank_on_postgres() -> anyhow::Result<()> {
        let database = postgres::empty_database().await?;
        figures_held_before_the_upgrade_keep_their_rank(&database.url).await
    }

    #[tokio::test]
    async fn any_order_gives_one_result_on_sqlite() -> anyhow::Result<()> {
        let database = TestSqlite::new()?;
        any_order_gives_one_result(&database.url).await
    }

    #[tokio::test]
    async fn any_order_gives_one_result_on_postgres() -> anyhow::Result<()> {
        let database = postgres::empty_database().await?;
        any_order_gives_one_result(&database.url).await
    }
}
