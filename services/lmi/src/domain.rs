//! The LMI template (v1) and its row rules: pure, no I/O. The known SOC codes are
//! passed in, so the same rules run for JSON, CSV and gRPC submissions.

use std::collections::{HashMap, HashSet};

/// A template row as received; optional columns are empty when absent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub soc_code: String,
    pub region: String,
    pub period: String,
    pub measure: String,
    pub value: f64,
    pub unit: String,
    pub source: String,
    pub breakdown: String,
    pub horizon: String,
    pub sample_size: Option<u64>,
    pub quality: String,
    /// The CSV line the record starts on; 0 for JSON and gRPC.
    pub line: u64,
}

/// One finding about one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// 1-based index of the data record.
    pub row: u64,
    pub line: u64,
    pub field: &'static str,
    pub rule: &'static str,
    pub severity: &'static str,
    pub message: String,
}

/// The regions of the template: UK, GB, England and Wales, the four nations, and the nine
/// English regions.
const REGIONS: [&str; 16] = [
    "K02000001",
    "K03000001",
    "K04000001",
    "E92000001",
    "W92000004",
    "S92000003",
    "N92000002",
    "E12000001",
    "E12000002",
    "E12000003",
    "E12000004",
    "E12000005",
    "E12000006",
    "E12000007",
    "E12000008",
    "E12000009",
];

const BREAKDOWNS: [&str; 10] = [
    "all",
    "full_time",
    "part_time",
    "male",
    "female",
    "age_16_24",
    "age_25_34",
    "age_35_49",
    "age_50_64",
    "age_65_plus",
];

const QUALITIES: [&str; 4] = ["precise", "reasonable", "acceptable", "unreliable"];

/// A measure's fixed unit and the range a value must fall in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureRule {
    pub unit: &'static str,
    pub min: f64,
    pub max: f64,
    /// Projections need a horizon year.
    pub needs_horizon: bool,
}

/// The rule of a measure, or `None` for a measure the template does not have.
pub fn measure_rule(measure: &str) -> Option<MeasureRule> {
    let rule = |unit, min, max| MeasureRule {
        unit,
        min,
        max,
        needs_horizon: false,
    };
    if let Some(pay) = measure.strip_suffix("_pay") {
        let (statistic, period) = pay.rsplit_once('_')?;
        let statistics = [
            "median", "mean", "p10", "p20", "p25", "p30", "p40", "p60", "p70", "p75", "p80", "p90",
        ];
        if !statistics.contains(&statistic) {
            return None;
        }
        // Upper bounds far above any real pay, to catch unit slips (pence, thousands).
        return match period {
            "annual" => Some(rule("GBP", 0.0, 5_000_000.0)),
            "weekly" => Some(rule("GBP", 0.0, 100_000.0)),
            "hourly" => Some(rule("GBP", 0.0, 5_000.0)),
            _ => None,
        };
    }
    match measure {
        "employment" => Some(rule("persons", 0.0, 40_000_000.0)),
        "vacancies" => Some(rule("count", 0.0, 5_000_000.0)),
        "hard_to_fill_vacancy_rate" => Some(rule("percent", 0.0, 100.0)),
        "projected_employment_change" => Some(MeasureRule {
            needs_horizon: true,
            ..rule("percent", -100.0, 1_000.0)
        }),
        "replacement_demand" => Some(MeasureRule {
            needs_horizon: true,
            ..rule("persons", 0.0, 40_000_000.0)
        }),
        "skills_shortage" => Some(rule("flag", 0.0, 1.0)),
        _ => None,
    }
}

/// `YYYY`, `YYYY-Qn` or `YYYY-MM`.
pub fn is_period(period: &str) -> bool {
    careers_proto::period::months(period).is_some()
}

fn is_year(text: &str) -> bool {
    text.len() == 4 && text.bytes().all(|b| b.is_ascii_digit())
}

/// A template breakdown: `all`, a listed one or `industry_a` … `industry_s`.
pub fn is_breakdown(breakdown: &str) -> bool {
    BREAKDOWNS.contains(&breakdown)
        || breakdown.strip_prefix("industry_").is_some_and(|section| {
            section.len() == 1 && ('a'..='s').contains(&section.chars().next().unwrap_or('z'))
        })
}

/// A template region code.
pub fn is_region(region: &str) -> bool {
    REGIONS.contains(&region)
}

/// The SOC groups an SSC may submit for, as the registry holds it: `all`, or
/// `level:code` entries separated by `;` (`minor:213;sub_major:22`). SOC 2020 codes are
/// hierarchical, so a unit group lies in a group exactly when its code starts with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Footprint {
    All,
    Groups(Vec<(String, String)>),
}

impl Footprint {
    /// Parses the registry's text; the error names the bad entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.trim() == "all" {
            return Ok(Self::All);
        }
        let groups = text
            .split(';')
            .map(|entry| {
                let (level, code) = entry
                    .trim()
                    .split_once(':')
                    .ok_or_else(|| format!("{entry:?} is not level:code"))?;
                let digits = match level {
                    "major" => 1,
                    "sub_major" => 2,
                    "minor" => 3,
                    "unit" => 4,
                    _ => return Err(format!("{level:?} is not major, sub_major, minor or unit")),
                };
                if code.len() != digits || !code.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!(
                        "{code:?} is not a {level} group code ({digits} digits)"
                    ));
                }
                Ok((level.to_owned(), code.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if groups.is_empty() {
            return Err("an empty footprint".to_owned());
        }
        Ok(Self::Groups(groups))
    }

    /// Whether the unit group `soc_code` lies in the footprint.
    pub fn covers(&self, soc_code: &str) -> bool {
        match self {
            Self::All => true,
            Self::Groups(groups) => groups.iter().any(|(_, code)| soc_code.starts_with(code)),
        }
    }
}

impl std::fmt::Display for Footprint {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::All => formatter.write_str("all"),
            Self::Groups(groups) => {
                let names: Vec<String> = groups
                    .iter()
                    .map(|(level, code)| format!("{} group {code}", level.replace('_', "-")))
                    .collect();
                formatter.write_str(&names.join(", "))
            }
        }
    }
}

/// Every error of a row (empty when it is accepted). `index` is 1-based; `ssc` submits
/// within `footprint`.
pub fn check_row(
    index: u64,
    row: &Row,
    known: &HashSet<String>,
    ssc: &str,
    footprint: &Footprint,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut fail = |field: &'static str, rule: &'static str, message: String| {
        findings.push(Finding {
            row: index,
            line: row.line,
            field,
            rule,
            severity: "error",
            message,
        });
    };
    if !careers_proto::soc::is_soc_code(&row.soc_code) {
        fail(
            "soc_code",
            "soc_code_format",
            format!(
                "{:?} is not a SOC 2020 unit group code (four digits)",
                row.soc_code
            ),
        );
    } else if !known.contains(&row.soc_code) {
        fail(
            "soc_code",
            "soc_code_known",
            format!("{} is not a SOC 2020 unit group", row.soc_code),
        );
    } else if !footprint.covers(&row.soc_code) {
        fail(
            "soc_code",
            "footprint",
            format!(
                "{} is outside the footprint of SSC {ssc} ({footprint})",
                row.soc_code
            ),
        );
    }
    if !is_region(&row.region) {
        fail(
            "region",
            "region_known",
            format!(
                "{:?} is not a template region (for example K02000001 for the UK)",
                row.region
            ),
        );
    }
    if !is_period(&row.period) {
        fail(
            "period",
            "period_format",
            format!("{:?} is not YYYY, YYYY-Qn or YYYY-MM", row.period),
        );
    }
    match measure_rule(&row.measure) {
        None => fail(
            "measure",
            "measure_known",
            format!("{:?} is not a template measure", row.measure),
        ),
        Some(rule) => {
            if row.unit != rule.unit {
                fail(
                    "unit",
                    "unit_matches_measure",
                    format!(
                        "{} is measured in {}, not {:?}",
                        row.measure, rule.unit, row.unit
                    ),
                );
            }
            if !row.value.is_finite() || row.value < rule.min || row.value > rule.max {
                fail(
                    "value",
                    "value_in_range",
                    format!(
                        "{} must be between {} and {} for {}",
                        row.value, rule.min, rule.max, row.measure
                    ),
                );
            } else if rule.unit == "flag" && row.value.fract() != 0.0 {
                fail(
                    "value",
                    "value_in_range",
                    format!("{} must be 0 or 1", row.measure),
                );
            }
            if rule.needs_horizon && !is_year(&row.horizon) {
                fail(
                    "horizon",
                    "horizon_required",
                    format!("{} needs a horizon year (YYYY)", row.measure),
                );
            }
            if !rule.needs_horizon && !row.horizon.is_empty() {
                fail(
                    "horizon",
                    "horizon_not_applicable",
                    format!("{} takes no horizon", row.measure),
                );
            }
        }
    }
    if !is_breakdown(&row.breakdown) {
        fail(
            "breakdown",
            "breakdown_known",
            format!("{:?} is not a template breakdown", row.breakdown),
        );
    }
    if row.source.trim().is_empty() {
        fail(
            "source",
            "source_required",
            "source (dataset and release) is required".into(),
        );
    }
    if !row.quality.is_empty() && !QUALITIES.contains(&row.quality.as_str()) {
        fail(
            "quality",
            "quality_known",
            format!(
                "{:?} is not precise, reasonable, acceptable or unreliable",
                row.quality
            ),
        );
    }
    findings
}

/// How a row ends: published at once, held for QA review, refused, or published as
/// suppressed (never as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accepted,
    Quarantined,
    Rejected,
    Suppressed,
}

impl Outcome {
    /// The stored status of a figure with this outcome (rejected rows are not stored).
    pub fn status(self) -> &'static str {
        match self {
            Self::Accepted => "published",
            Self::Quarantined => "quarantined",
            Self::Rejected => "rejected",
            Self::Suppressed => "suppressed",
        }
    }
}

/// What decides outcomes beyond the template: the service's validation settings and the
/// submitting SSC's registry entry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// A change beyond this fraction of the last published value is held for review.
    pub quarantine_change: f64,
    /// A `sample_size` under this is suppressed.
    pub min_sample_size: u64,
    /// Off for SSCs whose figures are already assured (ONS).
    pub change_rule: bool,
}

/// A series: (SOC code, region, measure, breakdown).
pub type Series = (String, String, String, String);

/// The last published value of a series and the period it is for.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub value: f64,
    pub period: String,
}

/// Assesses the rows of one submission in order: the template rules of [`check_row`],
/// then duplicates within the batch, disclosure control and the change rule.
#[derive(Debug)]
pub struct Assessor {
    pub known: HashSet<String>,
    pub ssc: String,
    pub footprint: Footprint,
    pub policy: Policy,
    /// Figure keys seen so far, each as a 128-bit hash with the row that first had it:
    /// a few bytes a row, however wide the rows, for submissions that stream in.
    seen: HashMap<u128, u64>,
    hashers: (std::hash::RandomState, std::hash::RandomState),
}

impl Assessor {
    pub fn new(known: HashSet<String>, ssc: &str, footprint: Footprint, policy: Policy) -> Self {
        Self {
            known,
            ssc: ssc.to_owned(),
            footprint,
            policy,
            seen: HashMap::new(),
            hashers: Default::default(),
        }
    }

    /// Two independently keyed hashes of a figure key: collisions are out of reach.
    fn key_hash(&self, row: &Row) -> u128 {
        use std::hash::BuildHasher;
        let key = (
            &row.soc_code,
            &row.region,
            &row.measure,
            &row.breakdown,
            &row.period,
            &row.horizon,
        );
        let (high, low) = (self.hashers.0.hash_one(key), self.hashers.1.hash_one(key));
        (u128::from(high) << 64) | u128::from(low)
    }

    /// The outcome of row `index` (1-based) and every finding about it.
    /// `published` holds at least the series of this row's SOC code.
    pub fn assess(
        &mut self,
        index: u64,
        row: &Row,
        published: &HashMap<Series, Published>,
    ) -> (Outcome, Vec<Finding>) {
        let errors = check_row(index, row, &self.known, &self.ssc, &self.footprint);
        if !errors.is_empty() {
            return (Outcome::Rejected, errors);
        }
        let finding = |field: &'static str,
                       rule: &'static str,
                       severity: &'static str,
                       message: String| Finding {
            row: index,
            line: row.line,
            field,
            rule,
            severity,
            message,
        };
        let key = self.key_hash(row);
        if let Some(first) = self.seen.get(&key) {
            let message = format!(
                "the same figure (soc_code, region, measure, breakdown, period, horizon) as row {first}"
            );
            return (
                Outcome::Rejected,
                vec![finding("soc_code", "duplicate_key", "error", message)],
            );
        }
        self.seen.insert(key, index);

        let mut disclosure = Vec::new();
        if let Some(size) = row.sample_size
            && size < self.policy.min_sample_size
        {
            disclosure.push(finding(
                "sample_size",
                "disclosure_control",
                "info",
                format!(
                    "a sample of {size} is under {}: published as suppressed",
                    self.policy.min_sample_size
                ),
            ));
        }
        if row.quality == "unreliable" {
            disclosure.push(finding(
                "quality",
                "disclosure_control",
                "info",
                "an unreliable estimate (CV over 20%): published as suppressed".to_owned(),
            ));
        }
        if !disclosure.is_empty() {
            return (Outcome::Suppressed, disclosure);
        }

        let is_flag = measure_rule(&row.measure).is_some_and(|rule| rule.unit == "flag");
        if self.policy.change_rule && !is_flag {
            let series = (
                row.soc_code.clone(),
                row.region.clone(),
                row.measure.clone(),
                row.breakdown.clone(),
            );
            if let Some(last) = published.get(&series) {
                let change = if last.value == 0.0 {
                    if row.value == 0.0 { 0.0 } else { f64::INFINITY }
                } else {
                    (row.value - last.value).abs() / last.value.abs()
                };
                if change > self.policy.quarantine_change {
                    let message = format!(
                        "{} is a change of {:.1}% from the last published {} ({}), over the {:.0}% limit: held for QA review",
                        row.value,
                        change * 100.0,
                        last.value,
                        last.period,
                        self.policy.quarantine_change * 100.0
                    );
                    return (
                        Outcome::Quarantined,
                        vec![finding("value", "change_limit", "warning", message)],
                    );
                }
            }
        }
        (Outcome::Accepted, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> HashSet<String> {
        ["2134".to_owned()].into()
    }

    fn programmers_pay() -> Row {
        Row {
            soc_code: "2134".into(),
            region: "K02000001".into(),
            period: "2024".into(),
            measure: "median_annual_pay".into(),
            value: 54669.0,
            unit: "GBP".into(),
            source: "ONS ASHE 2024 provisional, table 14".into(),
            breakdown: "full_time".into(),
            ..Row::default()
        }
    }

    #[test]
    fn the_real_ashe_row_is_accepted() {
        assert_eq!(
            check_row(1, &programmers_pay(), &known(), "ons", &Footprint::All),
            vec![]
        );
    }

    #[test]
    fn each_broken_field_is_reported_by_name_and_rule() {
        let row = Row {
            soc_code: "9999".into(),
            region: "X1".into(),
            period: "2024-13".into(),
            unit: "persons".into(),
            value: 54_669_000.0,
            breakdown: "everyone".into(),
            source: " ".into(),
            quality: "great".into(),
            ..programmers_pay()
        };
        let rules: Vec<(&str, &str)> = check_row(3, &row, &known(), "ons", &Footprint::All)
            .iter()
            .map(|finding| (finding.field, finding.rule))
            .collect();
        assert_eq!(
            rules,
            vec![
                ("soc_code", "soc_code_known"),
                ("region", "region_known"),
                ("period", "period_format"),
                ("unit", "unit_matches_measure"),
                ("value", "value_in_range"),
                ("breakdown", "breakdown_known"),
                ("source", "source_required"),
                ("quality", "quality_known"),
            ]
        );
    }

    #[test]
    fn projections_need_a_horizon_and_others_refuse_one() {
        let projection = Row {
            measure: "projected_employment_change".into(),
            unit: "percent".into(),
            value: 4.2,
            ..programmers_pay()
        };
        let rules: Vec<&str> = check_row(1, &projection, &known(), "ons", &Footprint::All)
            .iter()
            .map(|finding| finding.rule)
            .collect();
        assert_eq!(rules, vec!["horizon_required"]);
        let with_horizon = Row {
            horizon: "2035".into(),
            ..projection
        };
        assert!(check_row(1, &with_horizon, &known(), "ons", &Footprint::All).is_empty());
    }

    #[test]
    fn periods_and_measures_follow_the_template() {
        for period in ["2024", "2024-Q3", "2024-09"] {
            assert!(is_period(period), "{period}");
        }
        for period in ["24", "2024-Q5", "2024-00", "2024-1", "2024/09"] {
            assert!(!is_period(period), "{period}");
        }
        assert_eq!(
            measure_rule("p90_hourly_pay").map(|rule| rule.unit),
            Some("GBP")
        );
        assert_eq!(measure_rule("p95_hourly_pay"), None);
        assert!(is_breakdown("industry_c") && !is_breakdown("industry_z"));
    }

    #[test]
    fn a_row_outside_the_footprint_is_rejected_naming_it() {
        let digital = Footprint::parse("minor:213;minor:313").unwrap();
        let health = Row {
            soc_code: "2211".into(),
            ..programmers_pay()
        };
        let known: HashSet<String> = ["2134".to_owned(), "2211".to_owned()].into();
        assert!(check_row(1, &programmers_pay(), &known, "digital", &digital).is_empty());
        let findings = check_row(2, &health, &known, "digital", &digital);
        assert_eq!(
            findings
                .iter()
                .map(|finding| (finding.field, finding.rule))
                .collect::<Vec<_>>(),
            [("soc_code", "footprint")]
        );
        assert!(
            findings[0].message.contains("minor group 213"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn footprints_parse_by_level_and_cover_by_code_prefix() {
        let footprint = Footprint::parse("major:8; sub_major:22;unit:2134").unwrap();
        for (code, covered) in [
            ("8111", true),
            ("2211", true),
            ("2134", true),
            ("2133", false),
        ] {
            assert_eq!(footprint.covers(code), covered, "{code}");
        }
        assert_eq!(Footprint::parse("all").unwrap(), Footprint::All);
        for bad in ["", "minor:21", "group:213", "213", "minor:21x"] {
            assert!(Footprint::parse(bad).is_err(), "{bad:?}");
        }
    }

    fn policy() -> Policy {
        Policy {
            quarantine_change: 0.25,
            min_sample_size: 10,
            change_rule: true,
        }
    }

    fn outcomes(
        rows: &[Row],
        policy: &Policy,
        published: &HashMap<Series, Published>,
    ) -> Vec<(Outcome, Vec<&'static str>)> {
        let known = known();
        let mut assessor = Assessor::new(known, "ons", Footprint::All, *policy);
        rows.iter()
            .enumerate()
            .map(|(index, row)| {
                let (outcome, findings) = assessor.assess(index as u64 + 1, row, published);
                (
                    outcome,
                    findings.iter().map(|finding| finding.rule).collect(),
                )
            })
            .collect()
    }

    #[test]
    fn each_outcome_has_its_rule_and_severity() {
        let last = HashMap::from([(
            (
                "2134".to_owned(),
                "K02000001".to_owned(),
                "median_annual_pay".to_owned(),
                "full_time".to_owned(),
            ),
            Published {
                value: 50000.0,
                period: "2023".to_owned(),
            },
        )]);
        let row = programmers_pay(); // 54,669: a 9.3% rise
        let jump = Row {
            value: 80000.0,
            period: "2025".into(),
            ..programmers_pay()
        };
        let small_sample = Row {
            sample_size: Some(4),
            period: "2022".into(),
            ..programmers_pay()
        };
        let unreliable = Row {
            quality: "unreliable".into(),
            period: "2021".into(),
            ..programmers_pay()
        };
        let bad = Row {
            region: "nowhere".into(),
            ..programmers_pay()
        };
        let rows = [
            row.clone(),
            row,
            jump.clone(),
            small_sample,
            unreliable,
            bad,
        ];
        assert_eq!(
            outcomes(&rows, &policy(), &last),
            [
                (Outcome::Accepted, vec![]),
                (Outcome::Rejected, vec!["duplicate_key"]),
                (Outcome::Quarantined, vec!["change_limit"]),
                (Outcome::Suppressed, vec!["disclosure_control"]),
                (Outcome::Suppressed, vec!["disclosure_control"]),
                (Outcome::Rejected, vec!["region_known"]),
            ]
        );
        let known = known();
        let policy = policy();
        let mut assessor = Assessor::new(known, "ons", Footprint::All, policy);
        let (_, findings) = assessor.assess(3, &jump, &last);
        assert_eq!(
            (findings[0].severity, findings[0].field),
            ("warning", "value")
        );
        assert!(
            findings[0].message.contains("60.0%"),
            "{}",
            findings[0].message
        );

        // An SSC with the change rule off (ONS) publishes the jump at once.
        let assured = Policy {
            change_rule: false,
            ..policy
        };
        assert_eq!(
            outcomes(&[jump], &assured, &last),
            [(Outcome::Accepted, vec![])]
        );
    }

    /// The JSON Schema SSCs are given (docs/) says what these rules say.
    #[test]
    fn the_published_json_schema_matches_the_rules() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/lmi-template.schema.json"
        );
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let row = &schema["$defs"]["row"];
        let strings = |value: &serde_json::Value| -> Vec<String> {
            value
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item.as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(strings(&row["properties"]["region"]["enum"]), REGIONS);
        assert_eq!(strings(&row["properties"]["quality"]["enum"]), QUALITIES);
        let measures = strings(&row["properties"]["measure"]["enum"]);
        let pay = ["annual", "weekly", "hourly"].iter().flat_map(|period| {
            [
                "median", "mean", "p10", "p20", "p25", "p30", "p40", "p60", "p70", "p75", "p80",
                "p90",
            ]
            .map(|statistic| format!("{statistic}_{period}_pay"))
        });
        let mut expected: Vec<String> = pay
            .chain(
                [
                    "employment",
                    "vacancies",
                    "hard_to_fill_vacancy_rate",
                    "projected_employment_change",
                    "replacement_demand",
                    "skills_shortage",
                ]
                .map(str::to_owned),
            )
            .collect();
        let mut listed = measures.clone();
        expected.sort();
        listed.sort();
        assert_eq!(listed, expected);
        let blocks = row["allOf"].as_array().unwrap();
        for block in blocks {
            let named = strings(&block["if"]["properties"]["measure"]["enum"]);
            match block["then"]["properties"]["unit"]["const"].as_str() {
                Some(unit) => {
                    for measure in named {
                        assert_eq!(measure_rule(&measure).unwrap().unit, unit, "{measure}");
                    }
                }
                None => {
                    let mut named = named;
                    named.sort();
                    let mut horizon: Vec<String> = measures
                        .iter()
                        .filter(|measure| measure_rule(measure).unwrap().needs_horizon)
                        .cloned()
                        .collect();
                    horizon.sort();
                    assert_eq!(named, horizon);
                }
            }
        }
        let breakdown = row["properties"]["breakdown"]["pattern"].as_str().unwrap();
        for known in BREAKDOWNS {
            assert!(breakdown.contains(known), "{known}");
        }
    }
}
