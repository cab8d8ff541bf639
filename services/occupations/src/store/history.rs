//! The versions of each occupation: who changed what, and when.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement};
use serde::{Deserialize, Serialize};

/// Who the seeder records as the author of ONS data.
pub const SEED_AUTHOR: &str = "seed";

/// One field's values before and after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldChange {
    pub field: String,
    pub old: serde_json::Value,
    pub new: serde_json::Value,
}

/// One version of an occupation.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub version: i64,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
    pub fields: Vec<FieldChange>,
}

pub async fn insert(
    connection: &impl ConnectionTrait,
    soc_code: &str,
    change: &Change,
) -> Result<(), DbErr> {
    let fields =
        serde_json::to_string(&change.fields).map_err(|error| DbErr::Json(error.to_string()))?;
    connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "INSERT INTO occupation_history (soc_code, version, changed_by, changed_at, changes) \
             VALUES ($1, $2, $3, $4, $5)",
            [
                soc_code.into(),
                change.version.into(),
                change.changed_by.clone().into(),
                change
                    .changed_at
                    .to_rfc3339_opts(SecondsFormat::Micros, true)
                    .into(),
                fields.into(),
            ],
        ))
        .await?;
    Ok(())
}

/// The changes of `soc_code`, newest first.
pub async fn list(connection: &impl ConnectionTrait, soc_code: &str) -> Result<Vec<Change>, DbErr> {
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "SELECT version, changed_by, changed_at, changes FROM occupation_history \
             WHERE soc_code = $1 ORDER BY version DESC",
            [soc_code.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let changed_at: String = row.try_get_by_index(2)?;
            let changes: String = row.try_get_by_index(3)?;
            Ok(Change {
                version: row.try_get_by_index(0)?,
                changed_by: row.try_get_by_index(1)?,
                changed_at: DateTime::parse_from_rfc3339(&changed_at)
                    .map_err(|error| DbErr::Type(format!("changed_at {changed_at:?}: {error}")))?
                    .with_timezone(&Utc),
                fields: serde_json::from_str(&changes)
                    .map_err(|error| DbErr::Json(error.to_string()))?,
            })
        })
        .collect()
}

/// The unit groups an editor has changed: the seeder leaves them as edited.
pub async fn edited(
    connection: &impl ConnectionTrait,
) -> Result<std::collections::HashSet<String>, DbErr> {
    let rows = connection
        .query_all_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "SELECT DISTINCT soc_code FROM occupation_history WHERE changed_by <> $1",
            [SEED_AUTHOR.into()],
        ))
        .await?;
    rows.iter().map(|row| row.try_get_by_index(0)).collect()
}
