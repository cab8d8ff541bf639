//! The latest LMI figure per (SOC code, measure, region, breakdown), merged from
//! `FiguresPublished`: later period (by its last month, [`period::order_key`]), then later recorded_at, then higher figure id wins,
//! which gives one result in any delivery order.

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

/// Rows per upsert statement (12 values each).
const UPSERT_BATCH: usize = 100;

/// Keeps each of `incoming` (one occupation's figures) that beats the one held for its
/// key, or the others in the batch: one read of what the occupation holds, then upserts
/// of the winners many rows per statement.
pub async fn merge_many(
    connection: &impl ConnectionTrait,
    soc_code: &str,
    incoming: Vec<Incoming>,
) -> Result<(), DbErr> {
    let held: std::collections::HashMap<(String, String, String), Model> =
        for_occupation(connection, soc_code)
            .await?
            .into_iter()
            .map(|model| {
                (
                    (
                        model.measure.clone(),
                        model.region.clone(),
                        model.breakdown.clone(),
                    ),
                    model,
                )
            })
            .collect();
    let mut winners: std::collections::BTreeMap<(String, String, String), Incoming> =
        std::collections::BTreeMap::new();
    for figure in incoming {
        let key = (
            figure.measure.clone(),
            figure.region.clone(),
            figure.breakdown.clone(),
        );
        let candidate = rank(&figure.period, figure.recorded_at, &figure.figure_id);
        let beaten_by_held = held
            .get(&key)
            .is_some_and(|held| rank(&held.period, held.recorded_at, &held.figure_id) >= candidate);
        let beaten_in_batch = winners.get(&key).is_some_and(|other| {
            rank(&other.period, other.recorded_at, &other.figure_id) >= candidate
        });
        if !beaten_by_held && !beaten_in_batch {
            winners.insert(key, figure);
        }
    }
    let winners: Vec<Incoming> = winners.into_values().collect();
    for batch in winners.chunks(UPSERT_BATCH) {
        let mut values: Vec<Value> = Vec::with_capacity(batch.len() * 12);
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
            ]);
            let placeholders: Vec<String> = (first + 1..=values.len())
                .map(|index| format!("${index}"))
                .collect();
            tuples.push(format!("({})", placeholders.join(", ")));
        }
        let sql = format!(
            "INSERT INTO lmi_figures (soc_code, measure, region, breakdown, period, value, unit, \
             source, recorded_at, figure_id, suppressed, horizon) VALUES {} \
             ON CONFLICT (soc_code, measure, region, breakdown) DO UPDATE SET \
             period = excluded.period, value = excluded.value, unit = excluded.unit, \
             source = excluded.source, recorded_at = excluded.recorded_at, \
             figure_id = excluded.figure_id, suppressed = excluded.suppressed, \
             horizon = excluded.horizon",
            tuples.join(", ")
        );
        connection
            .execute_raw(Statement::from_sql_and_values(
                connection.get_database_backend(),
                sql,
                values,
            ))
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
                merge_many(&db, "2134", incoming).await?;
            }
            let held: Vec<(String, String)> = for_occupation(&db, "2134")
                .await?
                .into_iter()
                .map(|model| (model.breakdown, model.figure_id))
                .collect();
            assert_eq!(
                held,
                [
                    ("all".to_owned(), "d".to_owned()),
                    ("full_time".to_owned(), "f".to_owned())
                ],
                "{batches:?}"
            );
        }
        Ok(())
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
