//! What an adviser records about a client: notes, interactions, consents and referrals.

use super::*;

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

pub(super) fn list_of(text: String) -> Vec<String> {
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
