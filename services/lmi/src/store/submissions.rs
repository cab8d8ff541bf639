//! Submissions: each recorded once per (SSC, key) with its answer.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

fn statement(connection: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(connection.get_database_backend(), sql, values)
}

/// The stored answer of a submission by (ssc, key).
pub async fn answer_by_key(
    connection: &impl ConnectionTrait,
    ssc: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, DbErr> {
    let row = connection
        .query_one_raw(statement(
            connection,
            "SELECT response FROM submissions WHERE ssc = $1 AND submission_key = $2",
            vec![ssc.into(), key.into()],
        ))
        .await?;
    row.map(|row| row.try_get_by_index::<Vec<u8>>(0))
        .transpose()
        .map_err(|error| DbErr::Type(error.to_string()))
}

/// The stored answer of a submission by id.
pub async fn answer_by_id(
    connection: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<(String, Vec<u8>)>, DbErr> {
    let row = connection
        .query_one_raw(statement(
            connection,
            "SELECT ssc, response FROM submissions WHERE id = $1",
            vec![id.into()],
        ))
        .await?;
    row.map(|row| {
        Ok((
            row.try_get_by_index::<String>(0)?,
            row.try_get_by_index::<Vec<u8>>(1)?,
        ))
    })
    .transpose()
    .map_err(|error: sea_orm::TryGetError| DbErr::Type(format!("{error:?}")))
}

/// Records a submission and its answer.
pub async fn insert_submission(
    connection: &impl ConnectionTrait,
    id: &str,
    ssc: &str,
    key: &str,
    at: DateTime<Utc>,
    answer: Vec<u8>,
) -> Result<(), DbErr> {
    connection
        .execute_raw(statement(
            connection,
            "INSERT INTO submissions (id, ssc, submission_key, created_at, response) VALUES ($1, $2, $3, $4, $5)",
            vec![id.into(), ssc.into(), key.into(), super::figures::instant_text(at).into(), answer.into()],
        ))
        .await?;
    Ok(())
}

/// Every SOC code lmi knows, for validating a whole submission at once.
pub async fn known_codes(
    connection: &impl ConnectionTrait,
) -> Result<std::collections::HashSet<String>, DbErr> {
    let rows = connection
        .query_all_raw(statement(
            connection,
            "SELECT soc_code FROM known_occupations",
            vec![],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            row.try_get_by_index::<String>(0)
                .map_err(|error| DbErr::Type(format!("{error:?}")))
        })
        .collect()
}
