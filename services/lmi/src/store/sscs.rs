//! The SSC registry: who may submit, for which occupations, under which rules.

use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

/// One registry entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SscEntry {
    pub id: String,
    pub name: String,
    /// The registry text form; see [`crate::domain::Footprint`].
    pub footprint: String,
    pub synthetic: bool,
    pub change_rule: bool,
}

fn statement(connection: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(connection.get_database_backend(), sql, values)
}

const COLUMNS: &str = "id, name, footprint, synthetic, change_rule";

fn entry(row: &sea_orm::QueryResult) -> Result<SscEntry, DbErr> {
    Ok(SscEntry {
        id: row.try_get_by_index(0)?,
        name: row.try_get_by_index(1)?,
        footprint: row.try_get_by_index(2)?,
        synthetic: row.try_get_by_index(3)?,
        change_rule: row.try_get_by_index(4)?,
    })
}

/// The entry of `id`, if registered.
pub async fn get(connection: &impl ConnectionTrait, id: &str) -> Result<Option<SscEntry>, DbErr> {
    connection
        .query_one_raw(statement(
            connection,
            &format!("SELECT {COLUMNS} FROM sscs WHERE id = $1"),
            vec![id.into()],
        ))
        .await?
        .as_ref()
        .map(entry)
        .transpose()
}

/// Up to `limit` entries after `after`, in id order.
pub async fn page(
    connection: &impl ConnectionTrait,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<SscEntry>, DbErr> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = connection
        .query_all_raw(statement(
            connection,
            &format!("SELECT {COLUMNS} FROM sscs WHERE id > $1 ORDER BY id LIMIT $2"),
            vec![after.unwrap_or_default().into(), limit.into()],
        ))
        .await?;
    rows.iter().map(entry).collect()
}

/// Registers `entry` unless its id is taken; whether it was new.
pub async fn insert(connection: &impl ConnectionTrait, entry: &SscEntry) -> Result<bool, DbErr> {
    let result = connection
        .execute_raw(statement(
            connection,
            &format!(
                "INSERT INTO sscs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING"
            ),
            vec![
                entry.id.clone().into(),
                entry.name.clone().into(),
                entry.footprint.clone().into(),
                entry.synthetic.into(),
                entry.change_rule.into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}

/// Replaces the entry with `entry.id`; whether it existed.
pub async fn update(connection: &impl ConnectionTrait, entry: &SscEntry) -> Result<bool, DbErr> {
    let result = connection
        .execute_raw(statement(
            connection,
            "UPDATE sscs SET name = $2, footprint = $3, synthetic = $4, change_rule = $5 WHERE id = $1",
            vec![
                entry.id.clone().into(),
                entry.name.clone().into(),
                entry.footprint.clone().into(),
                entry.synthetic.into(),
                entry.change_rule.into(),
            ],
        ))
        .await?;
    Ok(result.rows_affected() == 1)
}
