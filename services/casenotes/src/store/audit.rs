//! The audit trail as listed.

use super::*;

/// An audit entry as listed: (seq, org, at micros, actor, action, client id, purpose).
pub type AuditRow = (i64, String, i64, String, String, Option<String>, String);

pub(super) fn audit_row(row: &QueryResult) -> Result<AuditRow, DbErr> {
    Ok((
        row.try_get_by_index(0)?,
        row.try_get_by_index(1)?,
        row.try_get_by_index(2)?,
        row.try_get_by_index(3)?,
        row.try_get_by_index(4)?,
        row.try_get_by_index(5)?,
        row.try_get_by_index(6)?,
    ))
}

/// A page of `org`'s trail after sequence `after`, optionally for one client.
pub async fn audit_page(
    connection: &impl ConnectionTrait,
    org: &str,
    client_id: Option<&str>,
    after: i64,
    limit: u64,
) -> Result<Vec<AuditRow>, DbErr> {
    let limit = <i64 as TryFrom<u64>>::try_from(limit).unwrap_or(i64::MAX);
    let columns = "seq, org, at, actor, action, client_id, purpose";
    match client_id {
        Some(client_id) => {
            all(
                connection,
                &format!(
                    "SELECT {columns} FROM audit_entries WHERE org = $1 AND seq > $2 \
                     AND client_id = $3 ORDER BY seq LIMIT $4"
                ),
                vec![org.into(), after.into(), client_id.into(), limit.into()],
                audit_row,
            )
            .await
        }
        None => {
            all(
                connection,
                &format!(
                    "SELECT {columns} FROM audit_entries WHERE org = $1 AND seq > $2 \
                     ORDER BY seq LIMIT $3"
                ),
                vec![org.into(), after.into(), limit.into()],
                audit_row,
            )
            .await
        }
    }
}

/// Every audit entry about a client, in every organisation it has belonged to.
pub async fn audit_of_client(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Vec<AuditRow>, DbErr> {
    all(
        connection,
        "SELECT seq, org, at, actor, action, client_id, purpose FROM audit_entries \
         WHERE client_id = $1 ORDER BY at, org, seq",
        vec![client_id.into()],
        audit_row,
    )
    .await
}
