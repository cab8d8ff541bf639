//! casenotes' projection of the catalogue.

use super::*;

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
