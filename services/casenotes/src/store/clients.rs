//! Clients: their sealed personal fields and the codes kept in the clear.

use super::*;

/// A client row: its sealed personal fields and the codes kept in the clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRow {
    pub id: String,
    pub org: String,
    pub stage: String,
    pub school_urn: Option<String>,
    /// The sealed JSON of [`crate::records::Personal`].
    pub personal: Vec<u8>,
    pub created_at: i64,
    pub updated_at: i64,
    /// `YYYY-MM-DD`: the last interaction or note, for retention.
    pub last_activity_on: String,
    pub version: i64,
}

pub(super) const CLIENT_COLUMNS: &str =
    "id, org, stage, school_urn, personal, created_at, updated_at, last_activity_on, version";

pub(super) fn client_row(row: &QueryResult) -> Result<ClientRow, DbErr> {
    Ok(ClientRow {
        id: row.try_get_by_index(0)?,
        org: row.try_get_by_index(1)?,
        stage: row.try_get_by_index(2)?,
        school_urn: row.try_get_by_index(3)?,
        personal: row.try_get_by_index(4)?,
        created_at: row.try_get_by_index(5)?,
        updated_at: row.try_get_by_index(6)?,
        last_activity_on: row.try_get_by_index(7)?,
        version: row.try_get_by_index(8)?,
    })
}

pub async fn insert_client(
    connection: &impl ConnectionTrait,
    client: &ClientRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        &format!(
            "INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ),
        vec![
            client.id.clone().into(),
            client.org.clone().into(),
            client.stage.clone().into(),
            client.school_urn.clone().into(),
            client.personal.clone().into(),
            client.created_at.into(),
            client.updated_at.into(),
            client.last_activity_on.clone().into(),
            client.version.into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The client, if it belongs to `org`; another organisation's is `None`, like an unknown
/// id.
pub async fn client(
    connection: &impl ConnectionTrait,
    org: &str,
    id: &str,
) -> Result<Option<ClientRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1 AND org = $2"),
        vec![id.into(), org.into()],
        client_row,
    )
    .await?
    .pop())
}

/// The client whatever its organisation: for the event handlers and the sweeper only.
pub async fn client_anywhere(
    connection: &impl ConnectionTrait,
    id: &str,
) -> Result<Option<ClientRow>, DbErr> {
    Ok(all(
        connection,
        &format!("SELECT {CLIENT_COLUMNS} FROM clients WHERE id = $1"),
        vec![id.into()],
        client_row,
    )
    .await?
    .pop())
}

/// A page of the organisation's clients, newest first (ids are UUID v7), after `before`.
pub async fn clients_page(
    connection: &impl ConnectionTrait,
    org: &str,
    before: Option<&str>,
    limit: u64,
) -> Result<Vec<ClientRow>, DbErr> {
    let limit = <i64 as TryFrom<u64>>::try_from(limit).unwrap_or(i64::MAX);
    match before {
        Some(before) => {
            all(
                connection,
                &format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE org = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                ),
                vec![org.into(), before.into(), limit.into()],
                client_row,
            )
            .await
        }
        None => {
            all(
                connection,
                &format!(
                    "SELECT {CLIENT_COLUMNS} FROM clients WHERE org = $1 ORDER BY id DESC LIMIT $2"
                ),
                vec![org.into(), limit.into()],
                client_row,
            )
            .await
        }
    }
}

/// Writes `client` over the stored row if that is still at `expected_version`; answers
/// whether it was.
pub async fn update_client(
    connection: &impl ConnectionTrait,
    client: &ClientRow,
    expected_version: i64,
) -> Result<bool, DbErr> {
    Ok(execute(
        connection,
        "UPDATE clients SET stage = $1, school_urn = $2, personal = $3, updated_at = $4, \
         version = $5 WHERE id = $6 AND org = $7 AND version = $8",
        vec![
            client.stage.clone().into(),
            client.school_urn.clone().into(),
            client.personal.clone().into(),
            client.updated_at.into(),
            client.version.into(),
            client.id.clone().into(),
            client.org.clone().into(),
            expected_version.into(),
        ],
    )
    .await?
        == 1)
}

/// Moves the client's last activity forward to `on` (never back).
pub async fn touch(
    connection: &impl ConnectionTrait,
    client_id: &str,
    on: &str,
) -> Result<(), DbErr> {
    execute(
        connection,
        "UPDATE clients SET last_activity_on = $1 WHERE id = $2 AND last_activity_on < $3",
        vec![on.into(), client_id.into(), on.into()],
    )
    .await
    .map(|_| ())
}

/// Moves the client to another organisation.
pub async fn move_client(
    connection: &impl ConnectionTrait,
    client_id: &str,
    to_org: &str,
    at: i64,
) -> Result<(), DbErr> {
    execute(
        connection,
        "UPDATE clients SET org = $1, updated_at = $2, version = version + 1 WHERE id = $3",
        vec![to_org.into(), at.into(), client_id.into()],
    )
    .await
    .map(|_| ())
}

/// (id, org) of every client whose last activity is before `date`.
pub async fn inactive_before(
    connection: &impl ConnectionTrait,
    date: &str,
) -> Result<Vec<(String, String)>, DbErr> {
    all(
        connection,
        "SELECT id, org FROM clients WHERE last_activity_on < $1 ORDER BY id",
        vec![date.into()],
        |row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)),
    )
    .await
}
