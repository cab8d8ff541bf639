//! The casenotes store: client records, their notes, interactions, consents, referrals,
//! Gatsby encounters, transfers and tombstones. Personal fields and note text are stored
//! only sealed (see [`crate::crypto`]); everything in the clear is an id, a code or a date.

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, QueryResult, Statement, Value};
use sea_orm_migration::prelude::*;

fn statement(connection: &impl ConnectionTrait, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(connection.get_database_backend(), sql, values)
}

async fn execute(
    connection: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
) -> Result<u64, DbErr> {
    Ok(connection
        .execute_raw(statement(connection, sql, values))
        .await?
        .rows_affected())
}

async fn all<T>(
    connection: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
    row: impl Fn(&QueryResult) -> Result<T, DbErr>,
) -> Result<Vec<T>, DbErr> {
    connection
        .query_all_raw(statement(connection, sql, values))
        .await?
        .iter()
        .map(row)
        .collect()
}

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

const CLIENT_COLUMNS: &str =
    "id, org, stage, school_urn, personal, created_at, updated_at, last_activity_on, version";

fn client_row(row: &QueryResult) -> Result<ClientRow, DbErr> {
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

/// A note version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteRow {
    pub id: String,
    pub client_id: String,
    pub amends: Option<String>,
    pub author: String,
    pub recorded_at: i64,
    /// Sealed.
    pub text: Vec<u8>,
}

pub async fn insert_note(connection: &impl ConnectionTrait, note: &NoteRow) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO notes (id, client_id, amends, author, recorded_at, text) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            note.id.clone().into(),
            note.client_id.clone().into(),
            note.amends.clone().into(),
            note.author.clone().into(),
            note.recorded_at.into(),
            note.text.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn notes(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Vec<NoteRow>, DbErr> {
    all(
        connection,
        "SELECT id, client_id, amends, author, recorded_at, text FROM notes \
         WHERE client_id = $1 ORDER BY id",
        vec![client_id.into()],
        |row| {
            Ok(NoteRow {
                id: row.try_get_by_index(0)?,
                client_id: row.try_get_by_index(1)?,
                amends: row.try_get_by_index(2)?,
                author: row.try_get_by_index(3)?,
                recorded_at: row.try_get_by_index(4)?,
                text: row.try_get_by_index(5)?,
            })
        },
    )
    .await
}

pub async fn note_exists(
    connection: &impl ConnectionTrait,
    client_id: &str,
    note_id: &str,
) -> Result<bool, DbErr> {
    Ok(!all(
        connection,
        "SELECT id FROM notes WHERE id = $1 AND client_id = $2",
        vec![note_id.into(), client_id.into()],
        |row| row.try_get_by_index::<String>(0),
    )
    .await?
    .is_empty())
}

/// An interaction: codes and a date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionRow {
    pub id: String,
    pub client_id: String,
    pub date: String,
    pub channel: String,
    pub kind: String,
    pub recorded_by: String,
    pub recorded_at: i64,
}

pub async fn insert_interaction(
    connection: &impl ConnectionTrait,
    interaction: &InteractionRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO interactions (id, client_id, date, channel, kind, recorded_by, recorded_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        vec![
            interaction.id.clone().into(),
            interaction.client_id.clone().into(),
            interaction.date.clone().into(),
            interaction.channel.clone().into(),
            interaction.kind.clone().into(),
            interaction.recorded_by.clone().into(),
            interaction.recorded_at.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn interactions(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Vec<InteractionRow>, DbErr> {
    all(
        connection,
        "SELECT id, client_id, date, channel, kind, recorded_by, recorded_at FROM interactions \
         WHERE client_id = $1 ORDER BY date, id",
        vec![client_id.into()],
        |row| {
            Ok(InteractionRow {
                id: row.try_get_by_index(0)?,
                client_id: row.try_get_by_index(1)?,
                date: row.try_get_by_index(2)?,
                channel: row.try_get_by_index(3)?,
                kind: row.try_get_by_index(4)?,
                recorded_by: row.try_get_by_index(5)?,
                recorded_at: row.try_get_by_index(6)?,
            })
        },
    )
    .await
}

/// One entry of the consent ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRow {
    pub id: String,
    pub client_id: String,
    pub purpose: String,
    pub granted: bool,
    pub recorded_at: i64,
    pub recorded_by: String,
}

pub async fn insert_consent(
    connection: &impl ConnectionTrait,
    consent: &ConsentRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO consents (id, client_id, purpose, granted, recorded_at, recorded_by) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        vec![
            consent.id.clone().into(),
            consent.client_id.clone().into(),
            consent.purpose.clone().into(),
            consent.granted.into(),
            consent.recorded_at.into(),
            consent.recorded_by.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The ledger, oldest first (ids are UUID v7).
pub async fn consents(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Vec<ConsentRow>, DbErr> {
    all(
        connection,
        "SELECT id, client_id, purpose, granted, recorded_at, recorded_by FROM consents \
         WHERE client_id = $1 ORDER BY id",
        vec![client_id.into()],
        |row| {
            Ok(ConsentRow {
                id: row.try_get_by_index(0)?,
                client_id: row.try_get_by_index(1)?,
                purpose: row.try_get_by_index(2)?,
                granted: row.try_get_by_index(3)?,
                recorded_at: row.try_get_by_index(4)?,
                recorded_by: row.try_get_by_index(5)?,
            })
        },
    )
    .await
}

/// Whether the latest ledger entry for `purpose` grants it.
pub async fn consented(
    connection: &impl ConnectionTrait,
    client_id: &str,
    purpose: &str,
) -> Result<bool, DbErr> {
    Ok(all(
        connection,
        "SELECT granted FROM consents WHERE client_id = $1 AND purpose = $2 \
         ORDER BY id DESC LIMIT 1",
        vec![client_id.into(), purpose.into()],
        |row| row.try_get_by_index::<bool>(0),
    )
    .await?
    .pop()
    .unwrap_or(false))
}

/// A referral: codes and dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralRow {
    pub id: String,
    pub client_id: String,
    pub activity_type: String,
    pub subjects: Vec<String>,
    pub soc_codes: Vec<String>,
    pub earliest: String,
    pub latest: String,
    pub requested_at: i64,
    pub requested_by: String,
}

pub async fn insert_referral(
    connection: &impl ConnectionTrait,
    referral: &ReferralRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO referrals (id, client_id, activity_type, subjects, soc_codes, earliest, \
         latest, requested_at, requested_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        vec![
            referral.id.clone().into(),
            referral.client_id.clone().into(),
            referral.activity_type.clone().into(),
            referral.subjects.join(",").into(),
            referral.soc_codes.join(",").into(),
            referral.earliest.clone().into(),
            referral.latest.clone().into(),
            referral.requested_at.into(),
            referral.requested_by.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

fn list_of(text: String) -> Vec<String> {
    text.split(',')
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

pub async fn referrals(
    connection: &impl ConnectionTrait,
    client_id: &str,
) -> Result<Vec<ReferralRow>, DbErr> {
    all(
        connection,
        "SELECT id, client_id, activity_type, subjects, soc_codes, earliest, latest, \
         requested_at, requested_by FROM referrals WHERE client_id = $1 ORDER BY id",
        vec![client_id.into()],
        |row| {
            Ok(ReferralRow {
                id: row.try_get_by_index(0)?,
                client_id: row.try_get_by_index(1)?,
                activity_type: row.try_get_by_index(2)?,
                subjects: list_of(row.try_get_by_index(3)?),
                soc_codes: list_of(row.try_get_by_index(4)?),
                earliest: row.try_get_by_index(5)?,
                latest: row.try_get_by_index(6)?,
                requested_at: row.try_get_by_index(7)?,
                requested_by: row.try_get_by_index(8)?,
            })
        },
    )
    .await
}

/// The client a referral was made for.
pub async fn referral_client(
    connection: &impl ConnectionTrait,
    referral_id: &str,
) -> Result<Option<String>, DbErr> {
    Ok(all(
        connection,
        "SELECT client_id FROM referrals WHERE id = $1",
        vec![referral_id.into()],
        |row| row.try_get_by_index::<String>(0),
    )
    .await?
    .pop())
}

/// A Gatsby encounter, counted for a client or for a school (`subject` is
/// `client:<id>` or `school:<urn>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncounterRow {
    pub subject: String,
    pub benchmark: i32,
    pub date: String,
    /// `interaction` or `engagement`.
    pub source: String,
    pub source_id: String,
}

/// Records the encounter once: the same source counted again changes nothing.
pub async fn insert_encounter(
    connection: &impl ConnectionTrait,
    encounter: &EncounterRow,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO encounters (subject, benchmark, date, source, source_id) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subject, source, source_id) DO NOTHING",
        vec![
            encounter.subject.clone().into(),
            encounter.benchmark.into(),
            encounter.date.clone().into(),
            encounter.source.clone().into(),
            encounter.source_id.clone().into(),
        ],
    )
    .await
    .map(|_| ())
}

/// The subject's encounters dated `from`..=`to`, oldest first.
pub async fn encounters(
    connection: &impl ConnectionTrait,
    subject: &str,
    from: &str,
    to: &str,
) -> Result<Vec<EncounterRow>, DbErr> {
    all(
        connection,
        "SELECT subject, benchmark, date, source, source_id FROM encounters \
         WHERE subject = $1 AND date >= $2 AND date <= $3 ORDER BY date, source_id",
        vec![subject.into(), from.into(), to.into()],
        |row| {
            Ok(EncounterRow {
                subject: row.try_get_by_index(0)?,
                benchmark: row.try_get_by_index(1)?,
                date: row.try_get_by_index(2)?,
                source: row.try_get_by_index(3)?,
                source_id: row.try_get_by_index(4)?,
            })
        },
    )
    .await
}

/// Forgets the encounters of engagements, so a replay of the events rebuilds them.
pub async fn clear_engagement_encounters(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    execute(
        connection,
        "DELETE FROM encounters WHERE source = 'engagement'",
        Vec::new(),
    )
    .await
    .map(|_| ())
}

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

const TRANSFER_COLUMNS: &str = "id, client_id, from_org, to_org, status, requested_at, accepted_at";

fn transfer_row(row: &QueryResult) -> Result<TransferRow, DbErr> {
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

/// An audit entry as listed: (seq, org, at micros, actor, action, client id, purpose).
pub type AuditRow = (i64, String, i64, String, String, Option<String>, String);

fn audit_row(row: &QueryResult) -> Result<AuditRow, DbErr> {
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

/// casenotes' own projection of the catalogue: applies a snapshot if newer.
pub async fn apply_occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
    version: i64,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO known_occupations (soc_code, version) VALUES ($1, $2) \
         ON CONFLICT (soc_code) DO UPDATE SET version = excluded.version \
         WHERE excluded.version > known_occupations.version",
        vec![soc_code.into(), version.into()],
    )
    .await
    .map(|_| ())
}

/// Which of `codes` the catalogue holds.
pub async fn known_occupations(
    connection: &impl ConnectionTrait,
    codes: &[String],
) -> Result<std::collections::HashSet<String>, DbErr> {
    let mut known = std::collections::HashSet::new();
    for code in codes {
        let found = all(
            connection,
            "SELECT soc_code FROM known_occupations WHERE soc_code = $1",
            vec![code.clone().into()],
            |row| row.try_get_by_index::<String>(0),
        )
        .await?;
        known.extend(found);
    }
    Ok(known)
}

pub async fn clear_occupations(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    execute(connection, "DELETE FROM known_occupations", Vec::new())
        .await
        .map(|_| ())
}

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

/// The client record tables.
#[derive(Debug)]
pub struct CreateClientRecords;

impl MigrationName for CreateClientRecords {
    fn name(&self) -> &str {
        "m20261124_003004_casenotes_records"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateClientRecords {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let bytes = if db.get_database_backend() == DatabaseBackend::Postgres {
            "BYTEA"
        } else {
            "BLOB"
        };
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS clients (id TEXT PRIMARY KEY, org TEXT NOT NULL, \
                 stage TEXT NOT NULL, school_urn TEXT, personal {bytes} NOT NULL, \
                 created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
                 last_activity_on TEXT NOT NULL, version BIGINT NOT NULL)"
            ),
            "CREATE INDEX IF NOT EXISTS clients_by_org ON clients (org, id)".to_owned(),
            "CREATE INDEX IF NOT EXISTS clients_by_activity ON clients (last_activity_on)"
                .to_owned(),
            format!(
                "CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
                 amends TEXT, author TEXT NOT NULL, recorded_at BIGINT NOT NULL, \
                 text {bytes} NOT NULL)"
            ),
            "CREATE INDEX IF NOT EXISTS notes_by_client ON notes (client_id, id)".to_owned(),
            "CREATE TABLE IF NOT EXISTS interactions (id TEXT PRIMARY KEY, \
             client_id TEXT NOT NULL, date TEXT NOT NULL, channel TEXT NOT NULL, \
             kind TEXT NOT NULL, recorded_by TEXT NOT NULL, recorded_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS interactions_by_client ON interactions (client_id)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS consents (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             purpose TEXT NOT NULL, granted BOOLEAN NOT NULL, recorded_at BIGINT NOT NULL, \
             recorded_by TEXT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS consents_by_client ON consents (client_id, purpose, id)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS referrals (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             activity_type TEXT NOT NULL, subjects TEXT NOT NULL, soc_codes TEXT NOT NULL, \
             earliest TEXT NOT NULL, latest TEXT NOT NULL, requested_at BIGINT NOT NULL, \
             requested_by TEXT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS referrals_by_client ON referrals (client_id)".to_owned(),
            "CREATE TABLE IF NOT EXISTS encounters (subject TEXT NOT NULL, \
             benchmark INTEGER NOT NULL, date TEXT NOT NULL, source TEXT NOT NULL, \
             source_id TEXT NOT NULL, PRIMARY KEY (subject, source, source_id))"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS transfers (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             from_org TEXT NOT NULL, to_org TEXT NOT NULL, status TEXT NOT NULL, \
             requested_at BIGINT NOT NULL, accepted_at BIGINT)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS tombstones (client_id TEXT PRIMARY KEY, \
             org TEXT NOT NULL, erased_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS organisations (org TEXT PRIMARY KEY, \
             first_seen BIGINT NOT NULL)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS advisers (org TEXT NOT NULL, sub TEXT NOT NULL, \
             first_seen BIGINT NOT NULL, PRIMARY KEY (org, sub))"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS audit_entries_by_client ON audit_entries (client_id)"
                .to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}

/// Action plans and outcomes, and casenotes' projection of the catalogue their SOC codes
/// are checked against.
#[derive(Debug)]
pub struct CreateActionPlans;

impl MigrationName for CreateActionPlans {
    fn name(&self) -> &str {
        "m20261124_003005_casenotes_action_plans"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CreateActionPlans {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let bytes = if db.get_database_backend() == DatabaseBackend::Postgres {
            "BYTEA"
        } else {
            "BLOB"
        };
        for sql in [
            format!(
                "CREATE TABLE IF NOT EXISTS action_plans (client_id TEXT PRIMARY KEY, \
                 version BIGINT NOT NULL, actions {bytes} NOT NULL, updated_at BIGINT NOT NULL, \
                 updated_by TEXT NOT NULL)"
            ),
            "CREATE TABLE IF NOT EXISTS known_occupations (soc_code TEXT PRIMARY KEY, \
             version BIGINT NOT NULL)"
                .to_owned(),
            "CREATE TABLE IF NOT EXISTS outcomes (id TEXT PRIMARY KEY, client_id TEXT NOT NULL, \
             date TEXT NOT NULL, kind TEXT NOT NULL, soc_code TEXT, recorded_by TEXT NOT NULL, \
             recorded_at BIGINT NOT NULL)"
                .to_owned(),
            "CREATE INDEX IF NOT EXISTS outcomes_by_client ON outcomes (client_id)".to_owned(),
        ] {
            db.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
