//! Loads the 412 SOC 2020 unit groups from ONS's structure file (`seeds/occupations/
//! soc2020_structure.csv`). Typed and idempotent: a unit group is written, with its
//! version bumped and an `OccupationUpserted` in the same transaction, only when its
//! content changed.

use std::path::Path;

use careers_eventbus::enqueue;
use sea_orm::DatabaseConnection;
use serde::Deserialize;

use crate::{
    OccupationsError,
    events::upserted,
    store::{
        self,
        occupations::{self, Content},
        reference::{AlternativeTitle, Crosswalk, Reference, SubUnitGroup, Synonym},
    },
};

/// The seed file, relative to the seeds directory.
pub const STRUCTURE_FILE: &str = "occupations/soc2020_structure.csv";
/// The coding index (six of its columns, every row as published).
pub const CODING_INDEX_FILE: &str = "occupations/soc2020_coding_index.csv";
pub const SUB_UNIT_GROUPS_FILE: &str = "occupations/soc2020_ext_sub_unit_groups.csv";
pub const SOC2010_FILE: &str = "occupations/soc2010_to_soc2020_via_coding_index.csv";
pub const ISCO08_FILE: &str = "occupations/soc2020_to_isco08_via_coding_index.csv";
/// Colloquial titles and abbreviations curated for search (not ONS data).
pub const COLLOQUIAL_FILE: &str = "occupations/colloquial_titles.csv";
/// The coding index marks its cross-references ("see ...") with this code.
const CROSS_REFERENCE: &str = "}}}}";

/// One row of ONS SOC 2020 Volume 1 as published (groups at every level).
#[derive(Debug, Deserialize)]
struct StructureRow {
    code: String,
    level: String,
    title: String,
    major_group: String,
    sub_major_group: String,
    minor_group: String,
    description: String,
    typical_entry_routes_and_qualifications: String,
    /// `~` bullets joined with ` | `.
    tasks: String,
    related_job_titles: String,
}

fn bullets(text: &str) -> Vec<String> {
    text.split(" | ")
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The unit groups in the file, validated.
pub fn read_unit_groups(path: &Path) -> Result<Vec<Content>, OccupationsError> {
    let seed_error =
        |message: String| OccupationsError::Seed(format!("{}: {message}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(|error| seed_error(error.to_string()))?;
    let mut unit_groups = Vec::new();
    for (index, row) in reader.deserialize::<StructureRow>().enumerate() {
        let row = row.map_err(|error| seed_error(format!("record {}: {error}", index + 1)))?;
        if row.level != "unit" {
            continue;
        }
        if !careers_proto::soc::is_soc_code(&row.code) {
            return Err(seed_error(format!(
                "record {}: malformed unit group code {:?}",
                index + 1,
                row.code
            )));
        }
        unit_groups.push(Content {
            soc_code: row.code,
            title: row.title,
            major_group: row.major_group,
            sub_major_group: row.sub_major_group,
            minor_group: row.minor_group,
            description: row.description,
            tasks: bullets(&row.tasks),
            entry_routes_text: row.typical_entry_routes_and_qualifications,
            related_job_titles: bullets(&row.related_job_titles),
        });
    }
    Ok(unit_groups)
}

#[derive(Debug, Deserialize)]
struct IndexRow {
    soc2020: String,
    soc2020_ext: String,
    job_title_natural_order: String,
    add_qualifier: String,
    ind_qualifier: String,
    see_note: String,
}

#[derive(Debug, Deserialize)]
struct ColloquialRow {
    term: String,
    soc2020: String,
}

/// The title a cross-reference's note points to, in natural order with its qualifier:
/// `see Hand, datal` is ("Datal hand", ""), `see also Engineer (professional)` is
/// ("Engineer", "professional"); `see notes` points nowhere.
fn cross_reference_target(note: &str) -> Option<(String, String)> {
    let target = note
        .trim()
        .strip_prefix("see also ")
        .or_else(|| note.trim().strip_prefix("see "))?
        .trim();
    if target == "notes" || target.is_empty() {
        return None;
    }
    let (title, qualifier) = match target.split_once('(') {
        Some((title, rest)) => (title.trim(), rest.trim_end_matches(')').trim()),
        None => (target, ""),
    };
    let title = match title.split_once(", ") {
        Some((head, tail)) => format!("{tail} {}", head.to_lowercase()),
        None => title.to_owned(),
    };
    Some((title, qualifier.to_owned()))
}

/// Each cross-reference with a target, once per unit group carrying a title equal to the
/// target (with the target's qualifier when it names one).
fn resolve_cross_references(
    references: &[(String, String)],
    titles: &[AlternativeTitle],
) -> Vec<Synonym> {
    // "Charge hand, see Chargehand" and "Chargehand, see Foreman": follow such chains.
    let notes: std::collections::HashMap<String, &str> = references
        .iter()
        .map(|(term, note)| (term.to_lowercase(), note.as_str()))
        .collect();
    let codes_of = |target: &str, qualifier: &str| -> Vec<String> {
        let (target, qualifier) = (target.to_lowercase(), qualifier.to_lowercase());
        let exact: Vec<String> = titles
            .iter()
            .filter(|title| {
                title.title.to_lowercase() == target
                    && (qualifier.is_empty() || title.qualifier.to_lowercase().contains(&qualifier))
            })
            .map(|title| title.soc_code.clone())
            .collect();
        if !exact.is_empty() {
            return exact;
        }
        // "see Tier": no title is exactly that, titles built on it are ("Bag tier").
        let (head, tail) = (format!("{target} "), format!(" {target}"));
        titles
            .iter()
            .filter(|title| {
                let title = title.title.to_lowercase();
                title.starts_with(&head) || title.ends_with(&tail)
            })
            .map(|title| title.soc_code.clone())
            .collect()
    };
    let mut synonyms = Vec::new();
    for (term, note) in references {
        let Some((mut target, qualifier)) = cross_reference_target(note) else {
            continue;
        };
        let mut codes = codes_of(&target, &qualifier);
        if codes.is_empty()
            && let Some((next, next_qualifier)) = notes
                .get(&target.to_lowercase())
                .and_then(|note| cross_reference_target(note))
        {
            codes = codes_of(&next, &next_qualifier);
            target = next;
        }
        codes.sort_unstable();
        codes.dedup();
        synonyms.extend(codes.into_iter().map(|code| Synonym {
            soc_code: code,
            term: term.clone(),
            target: target.clone(),
            source: "ons_cross_reference".to_owned(),
        }));
    }
    synonyms
}

#[derive(Debug, Deserialize)]
struct SubUnitGroupRow {
    soc2020_ext: String,
    soc2020_ext_title: String,
    soc2020_unit_group: String,
    index_entries: i64,
}

#[derive(Debug, Deserialize)]
struct Soc2010Row {
    soc2010: String,
    soc2010_title: String,
    soc2020: String,
    index_entries: i64,
    share_of_soc2010_index_entries: f64,
}

#[derive(Debug, Deserialize)]
struct Isco08Row {
    soc2020: String,
    isco08: String,
    isco08_title: String,
    index_entries: i64,
    share_of_soc2020_index_entries: f64,
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Vec<T>, OccupationsError> {
    let seed_error =
        |message: String| OccupationsError::Seed(format!("{}: {message}", path.display()));
    let mut reader = csv::Reader::from_path(path).map_err(|error| seed_error(error.to_string()))?;
    reader
        .deserialize::<T>()
        .enumerate()
        .map(|(index, row)| {
            row.map_err(|error| seed_error(format!("record {}: {error}", index + 1)))
        })
        .collect()
}

/// The reference files read, every code checked against the unit groups, with the
/// digest of their bytes.
pub fn read_reference(
    dir: &Path,
    unit_groups: &[Content],
) -> Result<(Reference, String), OccupationsError> {
    use sha2::Digest;

    let known: std::collections::HashSet<&str> = unit_groups
        .iter()
        .map(|group| group.soc_code.as_str())
        .collect();
    let mut hasher = sha2::Sha256::new();
    for file in [
        CODING_INDEX_FILE,
        SUB_UNIT_GROUPS_FILE,
        SOC2010_FILE,
        ISCO08_FILE,
        COLLOQUIAL_FILE,
    ] {
        let path = dir.join(file);
        let bytes = std::fs::read(&path)
            .map_err(|error| OccupationsError::Seed(format!("{}: {error}", path.display())))?;
        hasher.update(&bytes);
    }
    let digest = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let unknown = |file: &str, code: &str| {
        OccupationsError::Seed(format!(
            "{file}: {code:?} is not a unit group of the structure file"
        ))
    };
    let mut reference = Reference::default();
    let mut cross_references = Vec::new();
    for row in read_csv::<IndexRow>(&dir.join(CODING_INDEX_FILE))? {
        if row.soc2020 == CROSS_REFERENCE {
            cross_references.push((row.job_title_natural_order, row.see_note));
            continue;
        }
        if !known.contains(row.soc2020.as_str()) {
            return Err(unknown(CODING_INDEX_FILE, &row.soc2020));
        }
        let qualifier = [row.add_qualifier.trim(), row.ind_qualifier.trim()]
            .into_iter()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        reference.titles.push(AlternativeTitle {
            soc_code: row.soc2020,
            sub_unit_group: row.soc2020_ext,
            title: row.job_title_natural_order,
            qualifier,
        });
    }
    reference.synonyms = resolve_cross_references(&cross_references, &reference.titles);
    for row in read_csv::<ColloquialRow>(&dir.join(COLLOQUIAL_FILE))? {
        if !known.contains(row.soc2020.as_str()) {
            return Err(unknown(COLLOQUIAL_FILE, &row.soc2020));
        }
        reference.synonyms.push(Synonym {
            soc_code: row.soc2020,
            term: row.term,
            target: String::new(),
            source: "curated".to_owned(),
        });
    }
    for row in read_csv::<SubUnitGroupRow>(&dir.join(SUB_UNIT_GROUPS_FILE))? {
        if !known.contains(row.soc2020_unit_group.as_str()) {
            return Err(unknown(SUB_UNIT_GROUPS_FILE, &row.soc2020_unit_group));
        }
        reference.sub_unit_groups.push(SubUnitGroup {
            code: row.soc2020_ext,
            soc_code: row.soc2020_unit_group,
            title: row.soc2020_ext_title,
            index_entries: row.index_entries,
        });
    }
    for row in read_csv::<Soc2010Row>(&dir.join(SOC2010_FILE))? {
        if !known.contains(row.soc2020.as_str()) {
            return Err(unknown(SOC2010_FILE, &row.soc2020));
        }
        reference.crosswalks.push(Crosswalk {
            soc_code: row.soc2020,
            scheme: "soc2010".to_owned(),
            code: row.soc2010,
            title: row.soc2010_title,
            index_entries: row.index_entries,
            share: row.share_of_soc2010_index_entries,
        });
    }
    for row in read_csv::<Isco08Row>(&dir.join(ISCO08_FILE))? {
        if !known.contains(row.soc2020.as_str()) {
            return Err(unknown(ISCO08_FILE, &row.soc2020));
        }
        reference.crosswalks.push(Crosswalk {
            soc_code: row.soc2020,
            scheme: "isco08".to_owned(),
            code: row.isco08,
            title: row.isco08_title,
            index_entries: row.index_entries,
            share: row.share_of_soc2020_index_entries,
        });
    }
    Ok((reference, digest))
}

/// Seeds the catalogue; returns how many unit groups were read and how many changed.
pub async fn seed(db: &DatabaseConnection, dir: &Path) -> Result<(usize, usize), OccupationsError> {
    let unit_groups = read_unit_groups(&dir.join(STRUCTURE_FILE))?;
    // Reference data is replaced whole, in one transaction, when its files changed. It goes
    // first: every replica's search index re-reads a unit group's job titles when its
    // OccupationUpserted arrives.
    let (reference, digest) = read_reference(dir, &unit_groups)?;
    if store::reference::digest(db, "reference").await?.as_deref() != Some(digest.as_str()) {
        let txn = careers_eventbus::begin_write(db).await?;
        store::reference::replace(&txn, &reference).await?;
        store::reference::set_digest(&txn, "reference", &digest).await?;
        txn.commit().await?;
    }
    let mut changed = 0;
    // An editor's change stands: ONS updates no longer overwrite that unit group.
    let edited = store::history::edited(db).await?;
    // One transaction per chunk: a crash leaves whole unit groups with their events.
    for chunk in unit_groups.chunks(100) {
        let txn = careers_eventbus::begin_write(db).await?;
        for content in chunk
            .iter()
            .filter(|content| !edited.contains(&content.soc_code))
        {
            let before = occupations::find(&txn, &content.soc_code).await?;
            if let Some(row) = occupations::upsert(&txn, content).await? {
                let change = store::history::Change {
                    version: row.version,
                    changed_by: store::history::SEED_AUTHOR.to_owned(),
                    changed_at: row.updated_at,
                    fields: crate::edit::seeded_changes(
                        before.map(|row| row.content()).as_ref(),
                        content,
                    ),
                };
                store::history::insert(&txn, &row.soc_code, &change).await?;
                enqueue(&txn, &row.soc_code, row.version, &upserted(&row)).await?;
                changed += 1;
            }
        }
        txn.commit().await?;
    }
    Ok((unit_groups.len(), changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds")
    }

    async fn count(db: &DatabaseConnection, table: &str) -> i64 {
        use sea_orm::ConnectionTrait;
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                db.get_database_backend(),
                format!("SELECT COUNT(*) FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }

    /// Seeding twice loads everything once: no second event, no second copy.
    async fn seeding_is_idempotent(url: &str) -> anyhow::Result<()> {
        use sea_orm_migration::MigratorTrait;
        let db = sea_orm::Database::connect(url).await?;
        crate::Migrator::up(&db, None).await?;
        assert_eq!(seed(&db, &seeds()).await?, (412, 412));
        let loaded = [
            count(&db, "alternative_titles").await,
            count(&db, "sub_unit_groups").await,
            count(&db, "crosswalks").await,
            count(&db, "outbox").await,
        ];
        assert_eq!(loaded, [31_964, 1_367, 2_568, 412]);
        assert_eq!(seed(&db, &seeds()).await?, (412, 0));
        assert_eq!(
            [
                count(&db, "alternative_titles").await,
                count(&db, "sub_unit_groups").await,
                count(&db, "crosswalks").await,
                count(&db, "outbox").await,
            ],
            loaded
        );
        Ok(())
    }

    #[tokio::test]
    async fn seeding_is_idempotent_on_sqlite() -> anyhow::Result<()> {
        let database = careers_testkit::sqlite::TestSqlite::new()?;
        seeding_is_idempotent(&database.url).await
    }

    #[tokio::test]
    async fn seeding_is_idempotent_on_postgres() -> anyhow::Result<()> {
        let database = careers_testkit::postgres::empty_database().await?;
        seeding_is_idempotent(&database.url).await
    }

    #[test]
    fn the_reference_files_cover_the_coding_index() {
        let unit_groups = read_unit_groups(&seeds().join(STRUCTURE_FILE)).unwrap();
        let (reference, digest) = read_reference(&seeds(), &unit_groups).unwrap();
        // Every coded entry of the index; the 231 cross-references are not titles.
        assert_eq!(reference.titles.len(), 31_964);
        assert_eq!(reference.sub_unit_groups.len(), 1_367);
        let schemes = |scheme: &str| {
            reference
                .crosswalks
                .iter()
                .filter(|pair| pair.scheme == scheme)
                .count()
        };
        assert_eq!((schemes("soc2010"), schemes("isco08")), (675, 1_893));
        assert!(
            reference
                .titles
                .iter()
                .any(|title| title.soc_code == "2134" && title.title == "Software engineer")
        );
        assert!(
            reference
                .titles
                .iter()
                .any(|title| title.title == "A" && title.qualifier == "Cabinet Office"),
            "qualifiers are kept"
        );
        assert_eq!(digest.len(), 64);
    }

    #[test]
    fn cross_references_lead_to_their_targets_codes() {
        assert_eq!(
            cross_reference_target("see Hand, datal"),
            Some(("datal hand".to_owned(), String::new()))
        );
        assert_eq!(
            cross_reference_target("see also Engineer (professional)"),
            Some(("Engineer".to_owned(), "professional".to_owned()))
        );
        assert_eq!(cross_reference_target("see also notes"), None);
        let unit_groups = read_unit_groups(&seeds().join(STRUCTURE_FILE)).unwrap();
        let (reference, _) = read_reference(&seeds(), &unit_groups).unwrap();
        let ons: Vec<&Synonym> = reference
            .synonyms
            .iter()
            .filter(|synonym| synonym.source == "ons_cross_reference")
            .collect();
        let terms: std::collections::HashSet<&str> =
            ons.iter().map(|synonym| synonym.term.as_str()).collect();
        // 231 cross-references: 32 point to notes only; the other 199 (198 distinct
        // terms) all resolve to at least one unit group.
        assert_eq!(terms.len(), 198, "distinct resolved terms");
        let codes = |term: &str| -> Vec<&str> {
            ons.iter()
                .filter(|synonym| synonym.term == term)
                .map(|synonym| synonym.soc_code.as_str())
                .collect()
        };
        assert_eq!(
            codes("Advisor").len(),
            6,
            "every group with an Adviser title"
        );
        assert!(codes("Consulting engineer").contains(&"2121"));
        assert!(
            reference
                .synonyms
                .iter()
                .any(|synonym| synonym.term == "sparky" && synonym.soc_code == "5241")
        );
    }

    #[test]
    fn the_ons_file_yields_all_412_unit_groups() {
        let unit_groups = read_unit_groups(&seeds().join(STRUCTURE_FILE)).unwrap();
        assert_eq!(unit_groups.len(), 412);
        let programmers = unit_groups
            .iter()
            .find(|group| group.soc_code == "2134")
            .unwrap();
        assert_eq!(
            programmers.title,
            "Programmers and software development professionals"
        );
        assert_eq!(
            (
                programmers.major_group.as_str(),
                programmers.sub_major_group.as_str(),
                programmers.minor_group.as_str()
            ),
            ("2", "21", "213")
        );
        assert!(
            programmers
                .related_job_titles
                .contains(&"Software engineer".to_owned())
        );
        assert!(programmers.tasks.len() > 3);
        assert!(
            programmers
                .entry_routes_text
                .starts_with("Entrants usually possess a degree")
        );
    }
}
