//! Erasure: the rows deleted, the tombstones kept, the principals remembered.

use super::*;

/// Deletes every row about the client (its tombstone and the audit trail stay).
pub async fn delete_client_rows(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<(), DbErr> {
    for table in [
        "notes",
        "interactions",
        "consents",
        "referrals",
        "transfers",
    ] {
        execute(
            connection,
            &format!("DELETE FROM {table} WHERE client_id = $1"),
            vec![client_id.into()],
        )
        .await?;
    }
    execute(
        connection,
        "DELETE FROM encounters WHERE subject = $1",
        vec![format!("client:{client_id}").into()],
    )
    .await?;
    execute(
        connection,
        "DELETE FROM clients WHERE id = $1",
        vec![client_id.into()],
    )
    .await?;
    Ok(())
}

/// Keeps the tombstone of an erased client; answers whether it is new.
pub async fn insert_tombstone(
    connection: &impl ConnectionTrait,
    client_id: &str,
    org: &str,
    erased_at: i64,
) -> Result<bool, DbErr> {
    Ok(execute(
        connection,
        "INSERT INTO tombstones (client_id, org, erased_at) VALUES ($1, $2, $3) \
         ON CONFLICT (client_id) DO NOTHING",
        vec![client_id.into(), org.into(), erased_at.into()],
    )
    .await?
        == 1)
}

/// Every tombstone: (client id, organisation, erased at).
pub async fn tombstones(
    connection: &impl ConnectionTrait,
) -> Result<Vec<(String, String, i64)>, DbErr> {
    all(
        connection,
        "SELECT client_id, org, erased_at FROM tombstones ORDER BY client_id",
        Vec::new(),
        |row| {
            Ok((
                row.try_get_by_index(0)?,
                row.try_get_by_index(1)?,
                row.try_get_by_index(2)?,
            ))
        },
    )
    .await
}

/// Records an organisation and an adviser the first time a token names them.
pub async fn remember_principal(
    connection: &impl ConnectionTrait,
    org: &str,
    sub: &str,
    at: i64,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO organisations (org, first_seen) VALUES ($1, $2) ON CONFLICT (org) DO NOTHING",
        vec![org.into(), at.into()],
    )
    .await?;
    execute(
        connection,
        "INSERT INTO advisers (org, sub, first_seen) VALUES ($1, $2, $3) \
         ON CONFLICT (org, sub) DO NOTHING",
        vec![org.into(), sub.into(), at.into()],
    )
    .await
    .map(|_| ())
}
