//! Gatsby encounters, counted for a client or a school.

use super::*;

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
