//! ONS reference data beside each unit group, replaced as a whole by the seeder: the
//! coding index's job titles, the sub-unit groups and the crosswalks.

use sea_orm::{ConnectionTrait, DbErr, Statement, Value};

/// A coding index entry: one job title, with the qualifiers that pin it to this group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlternativeTitle {
    pub soc_code: String,
    pub sub_unit_group: String,
    pub title: String,
    pub qualifier: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubUnitGroup {
    pub code: String,
    pub soc_code: String,
    pub title: String,
    pub index_entries: i64,
}

/// A code of another classification paired with a unit group.
#[derive(Debug, Clone, PartialEq)]
pub struct Crosswalk {
    pub soc_code: String,
    /// `soc2010` or `isco08`.
    pub scheme: String,
    pub code: String,
    pub title: String,
    pub index_entries: i64,
    /// Of the index entries behind the pair, 0 to 1.
    pub share: f64,
}

/// A search synonym: a term that leads to a unit group without being one of its titles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    pub soc_code: String,
    /// What people type, for example "Advisor" or "sparky".
    pub term: String,
    /// The coding index title the cross-reference points to ("Adviser"); empty for
    /// curated colloquial titles.
    pub target: String,
    /// `ons_cross_reference` or `curated`.
    pub source: String,
}

/// Everything the seeder loads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reference {
    pub titles: Vec<AlternativeTitle>,
    pub sub_unit_groups: Vec<SubUnitGroup>,
    pub crosswalks: Vec<Crosswalk>,
    pub synonyms: Vec<Synonym>,
}

/// Rows per INSERT: well under both stores' parameter limits.
const BATCH: usize = 100;

async fn insert_rows(
    connection: &impl ConnectionTrait,
    table_and_columns: &str,
    rows: Vec<Vec<Value>>,
) -> Result<(), DbErr> {
    for batch in rows.chunks(BATCH) {
        let mut values = Vec::new();
        let tuples: Vec<String> = batch
            .iter()
            .map(|row| {
                let placeholders: Vec<String> = row
                    .iter()
                    .map(|value| {
                        values.push(value.clone());
                        format!("${}", values.len())
                    })
                    .collect();
                format!("({})", placeholders.join(", "))
            })
            .collect();
        connection
            .execute_raw(Statement::from_sql_and_values(
                connection.get_database_backend(),
                format!(
                    "INSERT INTO {table_and_columns} VALUES {}",
                    tuples.join(", ")
                ),
                values,
            ))
            .await?;
    }
    Ok(())
}

/// Replaces all reference data with `reference`.
pub async fn replace(
    connection: &impl ConnectionTrait,
    reference: &Reference,
) -> Result<(), DbErr> {
    for table in [
        "alternative_titles",
        "sub_unit_groups",
        "crosswalks",
        "search_synonyms",
    ] {
        connection
            .execute_unprepared(&format!("DELETE FROM {table}"))
            .await?;
    }
    let titles = reference
        .titles
        .iter()
        .enumerate()
        .map(|(position, title)| {
            vec![
                i64::try_from(position).unwrap_or(i64::MAX).into(),
                title.soc_code.clone().into(),
                title.sub_unit_group.clone().into(),
                title.title.clone().into(),
                title.qualifier.clone().into(),
            ]
        })
        .collect();
    insert_rows(
        connection,
        "alternative_titles (position, soc_code, sub_unit_group, title, qualifier)",
        titles,
    )
    .await?;
    let groups = reference
        .sub_unit_groups
        .iter()
        .map(|group| {
            vec![
                group.code.clone().into(),
                group.soc_code.clone().into(),
                group.title.clone().into(),
                group.index_entries.into(),
            ]
        })
        .collect();
    insert_rows(
        connection,
        "sub_unit_groups (code, soc_code, title, index_entries)",
        groups,
    )
    .await?;
    let crosswalks = reference
        .crosswalks
        .iter()
        .map(|pair| {
            vec![
                pair.soc_code.clone().into(),
                pair.scheme.clone().into(),
                pair.code.clone().into(),
                pair.title.clone().into(),
                pair.index_entries.into(),
                pair.share.into(),
            ]
        })
        .collect();
    insert_rows(
        connection,
        "crosswalks (soc_code, scheme, code, title, index_entries, share)",
        crosswalks,
    )
    .await?;
    let synonyms = reference
        .synonyms
        .iter()
        .enumerate()
        .map(|(position, synonym)| {
            vec![
                i64::try_from(position).unwrap_or(i64::MAX).into(),
                synonym.soc_code.clone().into(),
                synonym.term.clone().into(),
                synonym.target.clone().into(),
                synonym.source.clone().into(),
            ]
        })
        .collect();
    insert_rows(
        connection,
        "search_synonyms (position, soc_code, term, target, source)",
        synonyms,
    )
    .await
}

/// `sql` over one unit group's rows (`WHERE soc_code = $1`), or over all, in load order.
fn by_position(backend: sea_orm::DatabaseBackend, sql: &str, soc_code: Option<&str>) -> Statement {
    match soc_code {
        Some(code) => Statement::from_sql_and_values(
            backend,
            format!("{sql} WHERE soc_code = $1 ORDER BY position"),
            [code.into()],
        ),
        None => Statement::from_string(backend, format!("{sql} ORDER BY position")),
    }
}

/// The coding index titles of one unit group, or of all, in index order.
async fn titles(
    connection: &impl ConnectionTrait,
    soc_code: Option<&str>,
) -> Result<Vec<AlternativeTitle>, DbErr> {
    connection
        .query_all_raw(by_position(
            connection.get_database_backend(),
            "SELECT soc_code, sub_unit_group, title, qualifier FROM alternative_titles",
            soc_code,
        ))
        .await?
        .iter()
        .map(|row| {
            Ok(AlternativeTitle {
                soc_code: row.try_get_by_index(0)?,
                sub_unit_group: row.try_get_by_index(1)?,
                title: row.try_get_by_index(2)?,
                qualifier: row.try_get_by_index(3)?,
            })
        })
        .collect()
}

/// The job titles and synonyms search indexes, of one unit group or of all.
pub async fn searchable(
    connection: &impl ConnectionTrait,
    soc_code: Option<&str>,
) -> Result<(Vec<AlternativeTitle>, Vec<Synonym>), DbErr> {
    let synonyms = connection
        .query_all_raw(by_position(
            connection.get_database_backend(),
            "SELECT soc_code, term, target, source FROM search_synonyms",
            soc_code,
        ))
        .await?
        .iter()
        .map(|row| {
            Ok(Synonym {
                soc_code: row.try_get_by_index(0)?,
                term: row.try_get_by_index(1)?,
                target: row.try_get_by_index(2)?,
                source: row.try_get_by_index(3)?,
            })
        })
        .collect::<Result<_, DbErr>>()?;
    Ok((titles(connection, soc_code).await?, synonyms))
}

/// The digest of the files `name` was last loaded from.
pub async fn digest(
    connection: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<String>, DbErr> {
    let row = connection
        .query_one_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "SELECT digest FROM seed_digests WHERE name = $1",
            [name.into()],
        ))
        .await?;
    row.map(|row| row.try_get_by_index(0)).transpose()
}

pub async fn set_digest(
    connection: &impl ConnectionTrait,
    name: &str,
    digest: &str,
) -> Result<(), DbErr> {
    connection
        .execute_raw(Statement::from_sql_and_values(
            connection.get_database_backend(),
            "INSERT INTO seed_digests (name, digest) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET digest = excluded.digest",
            [name.into(), digest.into()],
        ))
        .await?;
    Ok(())
}

/// The reference data of one unit group.
pub async fn for_occupation(
    connection: &impl ConnectionTrait,
    soc_code: &str,
) -> Result<Reference, DbErr> {
    let backend = connection.get_database_backend();
    let query = |sql: &str| Statement::from_sql_and_values(backend, sql, [soc_code.into()]);
    let titles = titles(connection, Some(soc_code)).await?;
    let sub_unit_groups = connection
        .query_all_raw(query(
            "SELECT code, soc_code, title, index_entries FROM sub_unit_groups \
             WHERE soc_code = $1 ORDER BY code",
        ))
        .await?
        .iter()
        .map(|row| {
            Ok(SubUnitGroup {
                code: row.try_get_by_index(0)?,
                soc_code: row.try_get_by_index(1)?,
                title: row.try_get_by_index(2)?,
                index_entries: row.try_get_by_index(3)?,
            })
        })
        .collect::<Result<_, DbErr>>()?;
    let crosswalks = connection
        .query_all_raw(query(
            "SELECT soc_code, scheme, code, title, index_entries, share FROM crosswalks \
             WHERE soc_code = $1 ORDER BY scheme, share DESC, code",
        ))
        .await?
        .iter()
        .map(|row| {
            Ok(Crosswalk {
                soc_code: row.try_get_by_index(0)?,
                scheme: row.try_get_by_index(1)?,
                code: row.try_get_by_index(2)?,
                title: row.try_get_by_index(3)?,
                index_entries: row.try_get_by_index(4)?,
                share: row.try_get_by_index(5)?,
            })
        })
        .collect::<Result<_, DbErr>>()?;
    Ok(Reference {
        titles,
        sub_unit_groups,
        crosswalks,
        synonyms: Vec::new(),
    })
}
