//! Transfers of a client between organisations.

use super::*;

/// A transfer between organisations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRow {
    pub id: String,
    pub client_id: String,
    pub from_org: String,
    pub to_org: String,
    pub status: String,
    pub requested_at: i64,
    pub accepted_at: Option<i64>,
}

pub(super) const TRANSFER_COLUMNS: &str =
    "id, client_id, from_org, to_org, status, requested_at, accepted_at";

pub(super) fn transfer_row(row: &QueryResult) -> Result<TransferRow, DbErr> {
    Ok(TransferRow {
        id: row.try_get_by_index(0)?,
        client_id: row.try_get_by_index(1)?,
        from_org: row.try_get_by_index(2)?,
        to_org: row.try_get_by_index(3)?,
        status: row.try_get_by_index(4)?,
        requested_at: row.try_get_by_index(5)?,
        accepted_at: row.try_get_by_index(6)?,
    })
}

pub async fn insert_transfer(
    connection: &impl ConnectionTrait,
    transfer: &TransferRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        &format!("INSERT INTO transfers ({TRANSFER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
        vec![
            transfer.id.clone().into(),
            transfer.client_id.clone().into(),
            transfer.from_org.clone().into(),
            transfer.to_org.clone().into(),
            transfer.status.clone().into(),
            transfer.requested_at.into(),
            transfer.accepted_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The transfers `org` sends (`outgoing`) or receives (`incoming`), oldest first.
pub async fn transfers(
    connection: &impl ConnectionTrait,
    org: &str,
    incoming: bool,
) -> Result<Vec<TransferRow>, DbErr> {
    let column = if incoming { "to_org" } else { "from_org" };
    all(
        connection,
        &format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE {column} = $1 ORDER BY id"),
        vec![org.into()],
        transfer_row,
    )
    .await
}

/// Every transfer of one client, oldest first.
pub async fn transfers_of_client(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Vec<TransferRow>, DbErr> {
    all(
        connection,
        &format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE client_id = $1 ORDER BY id"),
        vec![client_id.into()],
        transfer_row,
    )
    .await
}

pub async fn transfer(
    connection: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<TransferRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {TRANSFER_COLUMNS} FROM transfers WHERE id = $1"),
        vec![id.into()],
        transfer_row,
    )
    .await?
    .pop())
}

/// Marks a pending transfer accepted; answers whether it was pending.
pub async fn accept_transfer(
    connection: &impl ConnectionTrait,
    id: &str,
    at: i64,
) -> Result<bool, DbErr> {
    Ok(execute(
        connection,
        "UPDATE transfers SET status = 'accepted', accepted_at = $1 \
         WHERE id = $2 AND status = 'pending'",
        vec![at.into(), id.into()],
    )
    .await?
        == 1)
}
