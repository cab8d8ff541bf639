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
}

/// Keeps `figure` if it beats the one held for its key (or none is held).
pub async fn merge(connection: &impl ConnectionTrait, figure: &Incoming) -> Result<(), DbErr> {
    let existing = Entity::find_by_id((
        figure.soc_code.clone(),
        figure.measure.clone(),
        figure.region.clone(),
        figure.breakdown.clone(),
    ))
    .one(connection)
    .await?;
    if let Some(held) = &existing
        && (
            period::order_key(&held.period),
            held.recorded_at,
            held.figure_id.as_str(),
        ) >= (
            period::order_key(&figure.period),
            figure.recorded_at,
            figure.figure_id.as_str(),
        )
    {
        return Ok(());
    }
    let sql = if existing.is_some() {
        "UPDATE lmi_figures SET period = $5, value = $6, unit = $7, source = $8, recorded_at = $9, \
         figure_id = $10, suppressed = $11 \
         WHERE soc_code = $1 AND measure = $2 AND region = $3 AND breakdown = $4"
    } else {
        "INSERT INTO lmi_figures (soc_code, measure, region, breakdown, period, value, unit, source, \
         recorded_at, figure_id, suppressed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    };
    connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            sql,
            [
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
            ],
        ))
        .await?;
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
