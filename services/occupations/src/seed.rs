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
    store::occupations::{self, Content},
};

/// The seed file, relative to the seeds directory.
pub const STRUCTURE_FILE: &str = "occupations/soc2020_structure.csv";

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
        if !crate::is_soc_code(&row.code) {
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

/// Seeds the catalogue; returns how many unit groups were read and how many changed.
pub async fn seed(db: &DatabaseConnection, dir: &Path) -> Result<(usize, usize), OccupationsError> {
    let unit_groups = read_unit_groups(&dir.join(STRUCTURE_FILE))?;
    let mut changed = 0;
    // One transaction per chunk: a crash leaves whole unit groups with their events.
    for chunk in unit_groups.chunks(100) {
        let txn = careers_eventbus::begin_write(db).await?;
        for content in chunk {
            if let Some(row) = occupations::upsert(&txn, content).await? {
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
