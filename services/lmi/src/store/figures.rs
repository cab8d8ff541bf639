//! Published figures: stored as accepted, listed as the latest per series or in full.
//!
//! A figure exists for readers only once its submission is recorded: figures are staged
//! while a submission streams in (see [`super::staging`]), so every read joins `submissions`.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};
use serde::{Deserialize, Serialize};

use crate::domain::{Published, Row, Series};

/// Instants are stored as RFC 3339 text in one fixed form, so text order is time order.
pub fn instant_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A figure as stored: the row, its outcome and, when held, the finding that held it.
#[derive(Debug, Clone, Copy)]
pub struct NewFigure<'a> {
    pub figure_id: &'a str,
    pub submission_id: &'a str,
    pub row: &'a Row,
    /// 1-based index of the row in its submission.
    pub row_index: u64,
    /// `published`, `suppressed` or `quarantined`.
    pub status: &'a str,
    pub held: Option<(&'a str, &'a str)>,
    pub recorded_at: DateTime<Utc>,
    /// For accepted rows, what they are in the submission's delta: `added`, `changed` or
    /// `unchanged`; empty for the rest.
    pub delta: &'a str,
    /// The value published before, for a changed or unchanged row.
    pub previous_value: Option<f64>,
}

/// Figures per INSERT on PostgreSQL: many rows per statement is several times faster
/// than one each, and 500 rows of 23 values stay under its parameter limit.
const INSERT_BATCH: usize = 500;
/// On SQLite binding slows down with thousands of parameters in one statement.
const SQLITE_INSERT_BATCH: usize = 50;
const INSERT_COLUMNS: [&str; 23] = [
    "figure_id",
    "submission_id",
    "soc_code",
    "region",
    "measure",
    "breakdown",
    "period",
    "value",
    "unit",
    "source",
    "horizon",
    "sample_size",
    "quality",
    "recorded_at",
    "period_first",
    "period_last",
    "status",
    "row_index",
    "line",
    "held_rule",
    "held_message",
    "delta",
    "previous_value",
];

/// Stores figures, many per statement.
pub async fn insert_many(
    connection: &impl ConnectionTrait,
    figures: &[NewFigure<'_>],
) -> Result<(), DbErr> {
    let whole = |number: u64| i64::try_from(number).unwrap_or(i64::MAX);
    let batch_size = match connection.get_database_backend() {
        sea_orm::DatabaseBackend::Sqlite => SQLITE_INSERT_BATCH,
        _ => INSERT_BATCH,
    };
    for batch in figures.chunks(batch_size) {
        let mut values = Values(Vec::with_capacity(batch.len() * INSERT_COLUMNS.len()));
        let mut tuples = Vec::with_capacity(batch.len());
        for figure in batch {
            let row = figure.row;
            let months = careers_proto::period::months(&row.period)
                .ok_or_else(|| DbErr::Custom(format!("unchecked period {:?}", row.period)))?;
            let (held_rule, held_message) = figure.held.unwrap_or(("", ""));
            let row_values: [Value; 23] = [
                figure.figure_id.into(),
                figure.submission_id.into(),
                row.soc_code.clone().into(),
                row.region.clone().into(),
                row.measure.clone().into(),
                row.breakdown.clone().into(),
                row.period.clone().into(),
                row.value.into(),
                row.unit.clone().into(),
                row.source.clone().into(),
                row.horizon.clone().into(),
                row.sample_size.map(whole).into(),
                row.quality.clone().into(),
                instant_text(figure.recorded_at).into(),
                months.first.into(),
                months.last.into(),
                figure.status.into(),
                whole(figure.row_index).into(),
                whole(row.line).into(),
                held_rule.into(),
                held_message.into(),
                figure.delta.into(),
                figure.previous_value.into(),
            ];
            let placeholders: Vec<String> = row_values
                .into_iter()
                .map(|value| values.push(value))
                .collect();
            tuples.push(format!("({})", placeholders.join(", ")));
        }
        let sql = format!(
            "INSERT INTO figures ({}) VALUES {}",
            INSERT_COLUMNS.join(", "),
            tuples.join(", ")
        );
        connection
            .execute_raw(Statement::from_sql_and_values(
                connection.get_database_backend(),
                sql,
                values.0,
            ))
            .await?;
    }
    Ok(())
}

/// Stores figures on PostgreSQL with `COPY` inside `transaction`: several times the
/// speed of batched INSERTs.
pub async fn copy_many(
    transaction: &mut sqlx::PgConnection,
    figures: &[NewFigure<'_>],
) -> Result<(), DbErr> {
    use sqlx::postgres::PgConnection;

    let failed = |error: &dyn std::fmt::Display| DbErr::Custom(format!("COPY figures: {error}"));
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(figures.len() * 200));
    for figure in figures {
        let row = figure.row;
        let months = careers_proto::period::months(&row.period)
            .ok_or_else(|| DbErr::Custom(format!("unchecked period {:?}", row.period)))?;
        let (held_rule, held_message) = figure.held.unwrap_or(("", ""));
        let optional = |value: Option<String>| value.unwrap_or_default();
        writer
            .write_record([
                figure.figure_id,
                figure.submission_id,
                &row.soc_code,
                &row.region,
                &row.measure,
                &row.breakdown,
                &row.period,
                &row.value.to_string(),
                &row.unit,
                &row.source,
                &row.horizon,
                &optional(row.sample_size.map(|size| size.to_string())),
                &row.quality,
                &instant_text(figure.recorded_at),
                &months.first,
                &months.last,
                figure.status,
                &figure.row_index.to_string(),
                &row.line.to_string(),
                held_rule,
                held_message,
                figure.delta,
                &optional(figure.previous_value.map(|value| value.to_string())),
            ])
            .map_err(|error| failed(&error))?;
    }
    let data = writer.into_inner().map_err(|error| failed(&error))?;
    // An empty field is NULL only in the two nullable columns; elsewhere it is "".
    let text_columns: Vec<&str> = INSERT_COLUMNS
        .iter()
        .copied()
        .filter(|column| !matches!(*column, "sample_size" | "previous_value"))
        .collect();
    let statement = format!(
        "COPY figures ({}) FROM STDIN (FORMAT csv, FORCE_NOT_NULL ({}))",
        INSERT_COLUMNS.join(", "),
        text_columns.join(", ")
    );
    let mut copy = PgConnection::copy_in_raw(transaction, &statement)
        .await
        .map_err(|error| failed(&error))?;
    copy.send(data).await.map_err(|error| failed(&error))?;
    copy.finish().await.map_err(|error| failed(&error))?;
    Ok(())
}

/// What is published now for the SOC codes of a submission: the last value of each
/// series (for the change rule) and of each figure key with its period (for the delta).
#[derive(Debug, Default)]
pub struct PublishedNow {
    pub series: std::collections::HashMap<Series, Published>,
    pub figures: std::collections::HashMap<(Series, String), f64>,
}

/// The published (not suppressed) figures of `soc_codes`, reduced to [`PublishedNow`].
pub async fn published_now(
    connection: &impl ConnectionTrait,
    soc_codes: &std::collections::BTreeSet<&str>,
) -> Result<PublishedNow, DbErr> {
    let mut now = PublishedNow::default();
    if soc_codes.is_empty() {
        return Ok(now);
    }
    let mut values = Values(Vec::new());
    let placeholders: Vec<String> = soc_codes
        .iter()
        .map(|code| values.push((*code).to_owned()))
        .collect();
    let sql = format!(
        "SELECT f.soc_code, f.region, f.measure, f.breakdown, f.period, f.value FROM figures f \
         JOIN submissions s ON s.id = f.submission_id \
         WHERE f.status = 'published' AND f.soc_code IN ({}) ORDER BY {}",
        placeholders.join(", "),
        qualified_order("f"),
    );
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            sql,
            values.0,
        ))
        .await?;
    // In listing order the last of each series is its latest, and of each key its latest revision.
    for row in rows {
        let series: Series = (
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
            row.try_get_by_index(3)?,
        );
        let period: String = row.try_get_by_index(4)?;
        let value: f64 = row.try_get_by_index(5)?;
        now.figures.insert((series.clone(), period.clone()), value);
        now.series.insert(series, Published { value, period });
    }
    Ok(now)
}

/// Which figures to list; `None` does not filter.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub soc_code: Option<String>,
    pub region: Option<String>,
    pub measure: Option<String>,
    pub breakdown: Option<String>,
    /// Only periods starting in or after this month (`YYYY-MM`).
    pub first_month: Option<String>,
    /// Only periods ending in or before this month (`YYYY-MM`).
    pub last_month: Option<String>,
    /// Only figures recorded at or before this instant.
    pub as_of: DateTime<Utc>,
    /// Every revision instead of the latest figure per series.
    pub history: bool,
}

/// Where a page ends, in listing order; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub soc_code: String,
    pub measure: String,
    pub region: String,
    pub breakdown: String,
    pub period_last: String,
    pub period: String,
    pub recorded_at: String,
    pub figure_id: String,
}

/// A published figure with the SSC that submitted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub figure_id: String,
    pub submission_id: String,
    pub ssc: String,
    pub soc_code: String,
    pub region: String,
    pub measure: String,
    pub breakdown: String,
    pub period: String,
    pub value: f64,
    pub unit: String,
    pub source: String,
    pub horizon: String,
    pub sample_size: Option<i64>,
    pub quality: String,
    pub recorded_at: DateTime<Utc>,
    pub period_last: String,
    pub status: String,
    pub row_index: i64,
    pub line: i64,
    pub held_rule: String,
    pub held_message: String,
    pub review_reason: String,
    pub reviewed_by: String,
    pub reviewed_at: String,
}

impl Record {
    /// Where this record sits in the listing.
    pub fn position(&self) -> Position {
        Position {
            soc_code: self.soc_code.clone(),
            measure: self.measure.clone(),
            region: self.region.clone(),
            breakdown: self.breakdown.clone(),
            period_last: self.period_last.clone(),
            period: self.period.clone(),
            recorded_at: instant_text(self.recorded_at),
            figure_id: self.figure_id.clone(),
        }
    }
}

/// Placeholders numbered as values are pushed.
struct Values(Vec<Value>);

impl Values {
    fn push(&mut self, value: impl Into<Value>) -> String {
        self.0.push(value.into());
        format!("${}", self.0.len())
    }
}

/// The conditions `filter` puts on the figures aliased `alias`.
fn conditions(filter: &Filter, alias: &str, values: &mut Values) -> Vec<String> {
    let mut conditions = vec![
        format!("{alias}.status IN ('published', 'suppressed')"),
        format!(
            "{alias}.recorded_at <= {}",
            values.push(instant_text(filter.as_of))
        ),
    ];
    for (column, wanted) in [
        ("soc_code", &filter.soc_code),
        ("region", &filter.region),
        ("measure", &filter.measure),
        ("breakdown", &filter.breakdown),
    ] {
        if let Some(wanted) = wanted {
            conditions.push(format!(
                "{alias}.{column} = {}",
                values.push(wanted.clone())
            ));
        }
    }
    if let Some(first) = &filter.first_month {
        conditions.push(format!(
            "{alias}.period_first >= {}",
            values.push(first.clone())
        ));
    }
    if let Some(last) = &filter.last_month {
        conditions.push(format!(
            "{alias}.period_last <= {}",
            values.push(last.clone())
        ));
    }
    conditions
}

/// The columns after `f.period_last` that every record query selects.
const REVIEW_COLUMNS: &str = "f.status, f.row_index, f.line, f.held_rule, f.held_message, \
     f.review_reason, f.reviewed_by, f.reviewed_at";

const RECORD_COLUMNS: &str = "f.figure_id, f.submission_id, s.ssc, f.soc_code, f.region, f.measure, \
     f.breakdown, f.period, f.value, f.unit, f.source, f.horizon, f.sample_size, f.quality, \
     f.recorded_at, f.period_last";

const ORDER: &str =
    "soc_code, measure, region, breakdown, period_last, period, recorded_at, figure_id";

/// The listing order, its columns of the figures aliased `alias`.
fn qualified_order(alias: &str) -> String {
    ORDER
        .split(", ")
        .map(|column| format!("{alias}.{column}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Up to `limit` figures after `after`, in listing order.
pub async fn page(
    connection: &impl ConnectionTrait,
    filter: &Filter,
    after: Option<&Position>,
    limit: u64,
) -> Result<Vec<Record>, DbErr> {
    let mut values = Values(Vec::new());
    let mut wheres = conditions(filter, "f", &mut values);
    if !filter.history {
        // The latest: no figure of the same series in the same window is later.
        let newer = conditions(filter, "g", &mut values);
        wheres.push(format!(
            "NOT EXISTS (SELECT 1 FROM figures g JOIN submissions gs ON gs.id = g.submission_id \
             WHERE g.soc_code = f.soc_code \
             AND g.measure = f.measure AND g.region = f.region AND g.breakdown = f.breakdown \
             AND {} AND (g.period_last, g.period, g.recorded_at, g.figure_id) > \
             (f.period_last, f.period, f.recorded_at, f.figure_id))",
            newer.join(" AND ")
        ));
    }
    let order = qualified_order("f");
    if let Some(after) = after {
        let placeholders = [
            &after.soc_code,
            &after.measure,
            &after.region,
            &after.breakdown,
            &after.period_last,
            &after.period,
            &after.recorded_at,
            &after.figure_id,
        ]
        .map(|value| values.push(value.clone()))
        .join(", ");
        wheres.push(format!("({order}) > ({placeholders})"));
    }
    let limit_placeholder = values.push(i64::try_from(limit).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, {REVIEW_COLUMNS} FROM figures f JOIN submissions s ON s.id = f.submission_id \
         WHERE {} ORDER BY {order} LIMIT {limit_placeholder}",
        wheres.join(" AND ")
    );
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            sql,
            values.0,
        ))
        .await?;
    rows.iter().map(record).collect()
}

fn record(row: &sea_orm::QueryResult) -> Result<Record, DbErr> {
    let text = |index: usize| row.try_get_by_index::<String>(index);
    let recorded_at = text(14)?;
    Ok(Record {
        figure_id: text(0)?,
        submission_id: text(1)?,
        ssc: text(2)?,
        soc_code: text(3)?,
        region: text(4)?,
        measure: text(5)?,
        breakdown: text(6)?,
        period: text(7)?,
        value: row.try_get_by_index(8)?,
        unit: text(9)?,
        source: text(10)?,
        horizon: text(11)?,
        sample_size: row.try_get_by_index(12)?,
        quality: text(13)?,
        recorded_at: DateTime::parse_from_rfc3339(&recorded_at)
            .map_err(|error| DbErr::Type(format!("recorded_at {recorded_at:?}: {error}")))?
            .with_timezone(&Utc),
        period_last: text(15)?,
        status: text(16)?,
        row_index: row.try_get_by_index(17)?,
        line: row.try_get_by_index(18)?,
        held_rule: text(19)?,
        held_message: text(20)?,
        review_reason: text(21)?,
        reviewed_by: text(22)?,
        reviewed_at: text(23)?,
    })
}

/// Up to `limit` figures held for review after `after` (recorded_at, figure_id), oldest first.
pub async fn held_page(
    connection: &impl ConnectionTrait,
    after: Option<&(String, String)>,
    limit: u64,
) -> Result<Vec<Record>, DbErr> {
    let mut values = Values(Vec::new());
    let mut wheres = vec!["f.status = 'quarantined'".to_owned()];
    if let Some((recorded_at, figure_id)) = after {
        let (at, id) = (
            values.push(recorded_at.clone()),
            values.push(figure_id.clone()),
        );
        wheres.push(format!("(f.recorded_at, f.figure_id) > ({at}, {id})"));
    }
    let limit = values.push(i64::try_from(limit).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {RECORD_COLUMNS}, {REVIEW_COLUMNS} FROM figures f JOIN submissions s ON s.id = f.submission_id \
         WHERE {} ORDER BY f.recorded_at, f.figure_id LIMIT {limit}",
        wheres.join(" AND ")
    );
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            sql,
            values.0,
        ))
        .await?;
    rows.iter().map(record).collect()
}

/// One figure by id, whatever its status.
pub async fn by_id(
    connection: &impl ConnectionTrait,
    figure_id: &str,
) -> Result<Option<Record>, DbErr> {
    let row = connection
        .query_one_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            format!(
                "SELECT {RECORD_COLUMNS}, {REVIEW_COLUMNS} FROM figures f \
                 JOIN submissions s ON s.id = f.submission_id WHERE f.figure_id = $1"
            ),
            [figure_id.into()],
        ))
        .await?;
    row.as_ref().map(record).transpose()
}

/// Moves a held figure to `status` (`published` or `rejected`) with the decision;
/// whether it was still held (a decided figure is not decided again).
pub async fn decide(
    connection: &impl ConnectionTrait,
    figure_id: &str,
    status: &str,
    reason: &str,
    reviewer: &str,
    at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "UPDATE figures SET status = $1, review_reason = $2, reviewed_by = $3, reviewed_at = $4 \
             WHERE figure_id = $5 AND status = 'quarantined' \
             AND submission_id IN (SELECT id FROM submissions)",
            [
                status.into(),
                reason.into(),
                reviewer.into(),
                instant_text(at).into(),
                figure_id.into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// A figure a submission stored for publication, read back to build its events.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub figure_id: String,
    pub row: Row,
    pub row_index: i64,
    pub suppressed: bool,
}

/// The published or suppressed figures of `submission_id` for one SOC code, in row order.
pub async fn submission_figures(
    connection: &impl ConnectionTrait,
    submission_id: &str,
    soc_code: &str,
) -> Result<Vec<Stored>, DbErr> {
    let sql = "SELECT figure_id, soc_code, region, measure, breakdown, period, value, unit, source, \
         horizon, sample_size, quality, line, row_index, status FROM figures \
         WHERE submission_id = $1 AND soc_code = $2 AND status IN ('published', 'suppressed') \
         ORDER BY row_index";
    let values: Vec<Value> = vec![submission_id.into(), soc_code.into()];
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            sql,
            values,
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let text = |index: usize| row.try_get_by_index::<String>(index);
            let line: i64 = row.try_get_by_index(12)?;
            Ok(Stored {
                figure_id: text(0)?,
                row: Row {
                    soc_code: text(1)?,
                    region: text(2)?,
                    measure: text(3)?,
                    breakdown: text(4)?,
                    period: text(5)?,
                    value: row.try_get_by_index(6)?,
                    unit: text(7)?,
                    source: text(8)?,
                    horizon: text(9)?,
                    sample_size: row
                        .try_get_by_index::<Option<i64>>(10)?
                        .and_then(|size| u64::try_from(size).ok()),
                    quality: text(11)?,
                    line: u64::try_from(line).unwrap_or(0),
                },
                row_index: row.try_get_by_index(13)?,
                suppressed: text(14)? == "suppressed",
            })
        })
        .collect()
}

/// One figure of a submission's delta: the row, its key, and the values.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaRecord {
    pub row_index: i64,
    pub soc_code: String,
    pub region: String,
    pub measure: String,
    pub breakdown: String,
    pub period: String,
    pub value: f64,
    pub previous_value: Option<f64>,
    pub delta: String,
}

/// The added and changed figures of a recorded submission in row order, and how many
/// accepted rows left the published value unchanged.
pub async fn delta(
    connection: &impl ConnectionTrait,
    submission_id: &str,
) -> Result<(Vec<DeltaRecord>, u64), DbErr> {
    let backend = connection.get_database_backend();
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            "SELECT row_index, soc_code, region, measure, breakdown, period, value, \
             previous_value, delta FROM figures \
             WHERE submission_id = $1 AND delta IN ('added', 'changed') ORDER BY row_index",
            [submission_id.into()],
        ))
        .await?;
    let changes = rows
        .iter()
        .map(|row| {
            let text = |index: usize| row.try_get_by_index::<String>(index);
            Ok(DeltaRecord {
                row_index: row.try_get_by_index(0)?,
                soc_code: text(1)?,
                region: text(2)?,
                measure: text(3)?,
                breakdown: text(4)?,
                period: text(5)?,
                value: row.try_get_by_index(6)?,
                previous_value: row.try_get_by_index(7)?,
                delta: text(8)?,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    let unchanged = connection
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT COUNT(*) FROM figures WHERE submission_id = $1 AND delta = 'unchanged'",
            [submission_id.into()],
        ))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    Ok((changes, u64::try_from(unchanged).unwrap_or(0)))
}
