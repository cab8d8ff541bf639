//! Action plans.

use super::*;

/// A client's action plan: the sealed JSON of its actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanRow {
    pub client_id: String,
    pub version: i64,
    pub actions: Vec<u8>,
    pub updated_at: i64,
    pub updated_by: String,
}

pub async fn plan(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Option<PlanRow>, DbErr> {
    Ok(all(
        connection,
        "SELECT client_id, version, actions, updated_at, updated_by FROM action_plans \
         WHERE client_id = $1",
        vec![client_id.into()],
        |row| {
            Ok(PlanRow {
                client_id: row.try_get_by_index(0)?,
                version: row.try_get_by_index(1)?,
                actions: row.try_get_by_index(2)?,
                updated_at: row.try_get_by_index(3)?,
                updated_by: row.try_get_by_index(4)?,
            })
        },
    )
    .await?
    .pop())
}

/// Writes `plan` if the held one is at `plan.version - 1` (none held counts as 0);
/// answers whether it was.
pub async fn put_plan(connection: &impl ConnectionTrait, plan: &PlanRow) -> Result<bool, DbErr> {
    let written = if plan.version == 1 {
        execute(
            connection,
            "INSERT INTO action_plans (client_id, version, actions, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO NOTHING",
            vec![
                plan.client_id.clone().into(),
                plan.version.into(),
                plan.actions.clone().into(),
                plan.updated_at.into(),
                plan.updated_by.clone().into(),
            ],
        )
        .await?
    } else {
        execute(
            connection,
            "UPDATE action_plans SET version = $1, actions = $2, updated_at = $3, updated_by = $4 \
             WHERE client_id = $5 AND version = $6",
            vec![
                plan.version.into(),
                plan.actions.clone().into(),
                plan.updated_at.into(),
                plan.updated_by.clone().into(),
                plan.client_id.clone().into(),
                (plan.version - 1).into(),
            ],
        )
        .await?
    };
    Ok(written == 1)
}
