//! The real ONS figures in `seeds/lmi/`, as template submissions from the `ons` SSC:
//! APS employment by occupation and industry section (one submission per year, oldest
//! first), then ASHE 2024 provisional Table 14 pay (one per pay period).
//!
//! ONS markers become template rows: `x` (CV over 20%) and `..` (disclosive) and APS's
//! small-sample `*` are published as suppressed (`quality = unreliable`, no number shown);
//! APS's `-` (none reported) is 0; `:` (not applicable) is no row. Each CV becomes the
//! ONS quality band.

use std::path::Path;

use crate::domain::Row;

/// The seed files, relative to the seeds directory.
pub const ASHE_FILE: &str = "lmi/ashe_2024_provisional_table14_soc2020.csv";
pub const APS_FILE: &str = "lmi/aps_employment_soc2020_by_industry_2021_2024.csv";

/// Whole-UK figures.
const UK: &str = "K02000001";

/// One submission: its key and rows.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedSubmission {
    pub key: String,
    pub rows: Vec<Row>,
}

#[derive(Debug, thiserror::Error)]
pub enum OnsError {
    #[error("{file}: {reason}")]
    Read { file: String, reason: String },
}

fn read_error(path: &Path, reason: impl std::fmt::Display) -> OnsError {
    OnsError::Read {
        file: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Every seed submission, in the order they are to be sent.
pub fn submissions(seeds: &Path) -> Result<Vec<SeedSubmission>, OnsError> {
    let mut all = aps(&seeds.join(APS_FILE))?;
    all.extend(ashe(&seeds.join(ASHE_FILE))?);
    Ok(all)
}

/// The ONS quality band of a coefficient of variation in percent.
fn quality_band(cv_percent: f64) -> &'static str {
    match cv_percent {
        cv if cv <= 5.0 => "precise",
        cv if cv <= 10.0 => "reasonable",
        cv if cv <= 20.0 => "acceptable",
        _ => "unreliable",
    }
}

#[derive(Debug, serde::Deserialize)]
struct ApsRecord {
    period: String,
    soc2020: String,
    industry_section: String,
    employment: String,
    flag: String,
}

fn aps(path: &Path) -> Result<Vec<SeedSubmission>, OnsError> {
    let mut reader = csv::Reader::from_path(path).map_err(|error| read_error(path, error))?;
    let mut by_year: std::collections::BTreeMap<String, Vec<Row>> = Default::default();
    for record in reader.deserialize::<ApsRecord>() {
        let record = record.map_err(|error| read_error(path, error))?;
        if record.soc2020 == "TOTAL" {
            continue;
        }
        // "Jan-Dec 2021"
        let year = record
            .period
            .rsplit(' ')
            .next()
            .filter(|year| year.len() == 4)
            .ok_or_else(|| read_error(path, format!("period {:?}", record.period)))?
            .to_owned();
        let (value, quality) = match record.flag.as_str() {
            "suppressed_small_sample" => (0.0, "unreliable"),
            "none_reported" => (0.0, ""),
            _ => (
                record
                    .employment
                    .parse::<f64>()
                    .map_err(|_| read_error(path, format!("employment {:?}", record.employment)))?,
                "",
            ),
        };
        by_year.entry(year.clone()).or_default().push(Row {
            soc_code: record.soc2020,
            region: UK.to_owned(),
            period: year.clone(),
            measure: "employment".to_owned(),
            value,
            unit: "persons".to_owned(),
            source: format!(
                "ONS Annual Population Survey Jan-Dec {year}, employment by SOC 2020 and SIC 2007 section (ad hoc table, 14 Nov 2025)"
            ),
            breakdown: format!("industry_{}", record.industry_section.to_ascii_lowercase()),
            quality: quality.to_owned(),
            ..Row::default()
        });
    }
    Ok(by_year
        .into_iter()
        .map(|(year, rows)| SeedSubmission {
            key: format!("ons-aps-{year}"),
            rows,
        })
        .collect())
}

#[derive(Debug, serde::Deserialize)]
struct AsheRecord {
    measure: String,
    worker_group: String,
    soc2020: String,
    level: String,
    median: String,
    mean: String,
    p10: String,
    p20: String,
    p25: String,
    p30: String,
    p40: String,
    p60: String,
    p70: String,
    p75: String,
    p80: String,
    p90: String,
    median_cv_pct: String,
    mean_cv_pct: String,
}

fn ashe(path: &Path) -> Result<Vec<SeedSubmission>, OnsError> {
    let mut reader = csv::Reader::from_path(path).map_err(|error| read_error(path, error))?;
    // (pay period, ONS table) per ASHE measure, in the order sent.
    let tables = [
        ("annual_gross", "annual", "14.7a"),
        ("weekly_gross", "weekly", "14.1a"),
        ("hourly_gross", "hourly", "14.5a"),
    ];
    let mut submissions: Vec<SeedSubmission> = tables
        .iter()
        .map(|(_, pay_period, _)| SeedSubmission {
            key: format!("ons-ashe-2024-{pay_period}"),
            rows: Vec::new(),
        })
        .collect();
    for record in reader.deserialize::<AsheRecord>() {
        let record = record.map_err(|error| read_error(path, error))?;
        if record.level != "unit" {
            continue;
        }
        let Some(table) = tables
            .iter()
            .position(|(measure, ..)| *measure == record.measure)
        else {
            return Err(read_error(path, format!("measure {:?}", record.measure)));
        };
        let (_, pay_period, table_name) = tables[table];
        let breakdown = match record.worker_group.as_str() {
            "All" => "all",
            "Full-Time" => "full_time",
            "Part-Time" => "part_time",
            "Male" => "male",
            "Female" => "female",
            other => return Err(read_error(path, format!("worker group {other:?}"))),
        };
        let cv = |text: &str| text.parse::<f64>().ok().map(quality_band).unwrap_or("");
        let statistics = [
            ("median", &record.median, cv(&record.median_cv_pct)),
            ("mean", &record.mean, cv(&record.mean_cv_pct)),
            ("p10", &record.p10, ""),
            ("p20", &record.p20, ""),
            ("p25", &record.p25, ""),
            ("p30", &record.p30, ""),
            ("p40", &record.p40, ""),
            ("p60", &record.p60, ""),
            ("p70", &record.p70, ""),
            ("p75", &record.p75, ""),
            ("p80", &record.p80, ""),
            ("p90", &record.p90, ""),
        ];
        for (statistic, cell, quality) in statistics {
            let (value, quality) = match cell.as_str() {
                ":" | "" => continue,
                "x" | ".." => (0.0, "unreliable"),
                number => (
                    number
                        .parse::<f64>()
                        .map_err(|_| read_error(path, format!("{statistic} {number:?}")))?,
                    quality,
                ),
            };
            submissions[table].rows.push(Row {
                soc_code: record.soc2020.clone(),
                region: UK.to_owned(),
                period: "2024".to_owned(),
                measure: format!("{statistic}_{pay_period}_pay"),
                value,
                unit: "GBP".to_owned(),
                source: format!("ONS ASHE 2024 provisional, Table {table_name}"),
                breakdown: breakdown.to_owned(),
                quality: quality.to_owned(),
                ..Row::default()
            });
        }
    }
    Ok(submissions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds")
    }

    #[test]
    fn programmers_pay_comes_through_with_its_source_and_quality() {
        let all = submissions(&seeds()).unwrap();
        let keys: Vec<&str> = all
            .iter()
            .map(|submission| submission.key.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "ons-aps-2021",
                "ons-aps-2022",
                "ons-aps-2023",
                "ons-aps-2024",
                "ons-ashe-2024-annual",
                "ons-ashe-2024-weekly",
                "ons-ashe-2024-hourly"
            ]
        );
        let annual = &all[4].rows;
        let median = |breakdown: &str| {
            annual
                .iter()
                .find(|row| {
                    row.soc_code == "2134"
                        && row.measure == "median_annual_pay"
                        && row.breakdown == breakdown
                })
                .unwrap()
        };
        assert_eq!(median("full_time").value, 54669.0);
        assert_eq!(median("all").value, 53501.0);
        assert_eq!(median("all").quality, "precise"); // CV 3.3%
        assert_eq!(
            median("all").source,
            "ONS ASHE 2024 provisional, Table 14.7a"
        );
        // Part-time programmers' median is ONS `x`: suppressed, not a number.
        assert_eq!(
            (
                median("part_time").value,
                median("part_time").quality.as_str()
            ),
            (0.0, "unreliable")
        );
    }

    #[test]
    fn every_seed_row_passes_the_template_for_every_unit_group() {
        let known: std::collections::HashSet<String> = submissions(&seeds())
            .unwrap()
            .iter()
            .flat_map(|submission| submission.rows.iter().map(|row| row.soc_code.clone()))
            .collect();
        assert_eq!(known.len(), 412);
        for submission in submissions(&seeds()).unwrap() {
            for (index, row) in submission.rows.iter().enumerate() {
                let findings = crate::domain::check_row(
                    index as u64 + 1,
                    row,
                    &known,
                    "ons",
                    &crate::domain::Footprint::All,
                );
                assert!(findings.is_empty(), "{}: {findings:?}", submission.key);
            }
        }
    }

    /// Every outcome on real rows: APS 2022 assessed against APS 2021 as published, by an
    /// SSC with the change rule on, and ASHE pay by an SSC whose footprint is digital only.
    #[test]
    fn real_rows_meet_every_outcome() {
        use std::collections::HashMap;

        use crate::domain::{Assessor, Footprint, Outcome, Policy, Published};

        let all = submissions(&seeds()).unwrap();
        let known: std::collections::HashSet<String> =
            all[0].rows.iter().map(|row| row.soc_code.clone()).collect();
        let published: HashMap<_, _> = all[0]
            .rows
            .iter()
            .filter(|row| row.quality != "unreliable")
            .map(|row| {
                (
                    (
                        row.soc_code.clone(),
                        row.region.clone(),
                        row.measure.clone(),
                        row.breakdown.clone(),
                    ),
                    Published {
                        value: row.value,
                        period: row.period.clone(),
                    },
                )
            })
            .collect();
        let policy = Policy {
            quarantine_change: 0.25,
            min_sample_size: 10,
            change_rule: true,
        };
        let mut outcomes: HashMap<Outcome, usize> = HashMap::new();
        let mut assessor = Assessor::new(known.clone(), "ons", Footprint::All, policy);
        let aps_2022 = &all[1].rows;
        for (index, row) in aps_2022.iter().enumerate() {
            *outcomes
                .entry(assessor.assess(index as u64 + 1, row, &published).0)
                .or_default() += 1;
        }
        // The same real row twice in one batch.
        let (outcome, findings) = assessor.assess(0, &aps_2022[0], &published);
        assert_eq!(
            (outcome, findings[0].rule),
            (Outcome::Rejected, "duplicate_key")
        );
        for outcome in [Outcome::Accepted, Outcome::Quarantined, Outcome::Suppressed] {
            assert!(
                outcomes.get(&outcome).copied().unwrap_or_default() > 100,
                "{outcomes:?}"
            );
        }

        let digital = Footprint::parse("minor:213;minor:313").unwrap();
        let mut assessor = Assessor::new(known, "digital", digital, policy);
        let annual = &all[4].rows;
        let doctors = annual
            .iter()
            .position(|row| row.soc_code == "2211")
            .unwrap();
        let (outcome, findings) = assessor.assess(doctors as u64 + 1, &annual[doctors], &published);
        assert_eq!(
            (outcome, findings[0].rule, findings[0].row),
            (Outcome::Rejected, "footprint", doctors as u64 + 1)
        );
    }
}
