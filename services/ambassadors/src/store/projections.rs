//! Projections from other services' events: the catalogue and skills-shortage flags.

use super::*;

/// ambassadors' projection of the catalogue: each unit group's sub-major group and STEM
/// discipline, newer versions only.
pub async fn apply_occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
    version: i64,
    sub_major_group: &str,
    stem_discipline: &str,
) -> Result<(), DbErr> {
    execute(
        connection,
        "INSERT INTO known_occupations (soc_code, version, sub_major_group, stem_discipline) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (soc_code) DO UPDATE SET \
         version = excluded.version, sub_major_group = excluded.sub_major_group, \
         stem_discipline = excluded.stem_discipline \
         WHERE known_occupations.version < excluded.version",
        vec![
            soc_code.into(),
            version.into(),
            sub_major_group.into(),
            stem_discipline.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn clear_occupations(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    execute(connection, "DELETE FROM known_occupations", vec![])
        .await
        .map(|_| ())
}

/// A unit group's (sub-major group, STEM discipline), if the catalogue has it.
pub async fn occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
) -> Result<Option<(String, String)>, DbErr> {
    Ok(all(
        connection,
        "SELECT sub_major_group, stem_discipline FROM known_occupations WHERE soc_code = $1",
        vec![soc_code.into()],
        |row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)),
    )
    .await?
    .pop())
}

/// Every known unit group's (soc_code, sub-major group, STEM discipline).
pub async fn occupations(
    connection: &impl ConnectionTrait,
) -> Result<Vec<(String, String, String)>, DbErr> {
    all(
        connection,
        "SELECT soc_code, sub_major_group, stem_discipline FROM known_occupations ORDER BY soc_code",
        vec![],
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

/// A `skills_shortage` figure as ambassadors keeps it: the latest per (SOC code, region).
#[derive(Debug, Clone, PartialEq)]
pub struct ShortageFlag {
    pub soc_code: String,
    pub region: String,
    /// `careers_proto::period::order_key`'s first part: the month the period ends.
    pub period_end: String,
    pub period: String,
    pub recorded_at: i64,
    pub figure_id: String,
    pub in_shortage: bool,
}

/// Keeps `flag` if it is later than the one held for its (SOC code, region): later
/// period, then later recorded_at, then higher figure id, so any delivery order gives
/// the same result.
pub async fn merge_shortage(
    connection: &impl ConnectionTrait,
    flag: &ShortageFlag,
) -> Result<(), DbErr> {
    // The rank is compared by the upsert itself, under the row lock its conflict takes:
    // a read followed by a write would let two consumers put an older flag over a newer.
    // Text compares byte by byte, whatever the database's collation.
    let c = match connection.get_database_backend() {
        DatabaseBackend::Postgres => " COLLATE \"C\"",
        _ => "",
    };
    execute(
        connection,
        &format!(
            "INSERT INTO shortage_flags (soc_code, region, period_end, period, recorded_at, \
             figure_id, in_shortage) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (soc_code, region) DO UPDATE SET period_end = excluded.period_end, \
             period = excluded.period, recorded_at = excluded.recorded_at, \
             figure_id = excluded.figure_id, in_shortage = excluded.in_shortage \
             WHERE (excluded.period_end{c}, excluded.period{c}, excluded.recorded_at, \
             excluded.figure_id{c}) > (shortage_flags.period_end{c}, shortage_flags.period{c}, \
             shortage_flags.recorded_at, shortage_flags.figure_id{c})"
        ),
        vec![
            flag.soc_code.clone().into(),
            flag.region.clone().into(),
            flag.period_end.clone().into(),
            flag.period.clone().into(),
            flag.recorded_at.into(),
            flag.figure_id.clone().into(),
            flag.in_shortage.into(),
        ],
    )
    .await
    .map(|_| ())
}

pub async fn clear_shortages(connection: &impl ConnectionTrait) -> Result<(), DbErr> {
    execute(connection, "DELETE FROM shortage_flags", vec![])
        .await
        .map(|_| ())
}

/// SOC codes whose latest `skills_shortage` flag is set in some region.
pub async fn shortage_codes(connection: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    all(
        connection,
        "SELECT DISTINCT soc_code FROM shortage_flags WHERE in_shortage ORDER BY soc_code",
        vec![],
        |row| row.try_get_by_index(0),
    )
    .await
}
