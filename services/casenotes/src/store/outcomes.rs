//! Outcomes recorded for a client.

use super::*;

/// An outcome: codes and a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    pub id: String,
    pub client_id: String,
    pub date: String,
    pub kind: String,
    pub soc_code: Option<String>,
    pub recorded_by: String,
    pub recorded_at: i64,
}

pub async fn insert_outcome(
    connection: &impl ConnectionTrait,
    outcome: &OutcomeRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO outcomes (id, client_id, date, kind, soc_code, recorded_by, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            outcome.id.clone().into(),
            outcome.client_id.clone().into(),
            outcome.date.clone().into(),
            outcome.kind.clone().into(),
            outcome.soc_code.clone().into(),
            outcome.recorded_by.clone().into(),
            outcome.recorded_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn outcomes(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Vec<OutcomeRow>, DbErr> {
    all(
        connection,
        "SELECT id, client_id, date, kind, soc_code, recorded_by, recorded_at FROM outcomes \
         WHERE client_id = $1 ORDER BY date, id",
        vec![client_id.into()],
        |row| {
            Ok(OutcomeRow {
                id: row.try_get_by_index(0)?,
                client_id: row.try_get_by_index(1)?,
                date: row.try_get_by_index(2)?,
                kind: row.try_get_by_index(3)?,
                soc_code: row.try_get_by_index(4)?,
                recorded_by: row.try_get_by_index(5)?,
                recorded_at: row.try_get_by_index(6)?,
            })
        },
    )
    .await
}
