//! What an occupation's LMI figures add up to: its UK employment and its top industries.
//! Pure: computed from the figures the occupation holds whenever it is read.

use careers_proto::{
    careers::occupations::v1::{Employment, Outlook, Sector},
    period,
};

use crate::store::figures::Model as Figure;

const UK: &str = "K02000001";
/// How many industries an occupation lists.
const TOP_SECTORS: usize = 5;
/// SIC 2007 sections, as the template's `industry_<section>` breakdowns name them.
const SECTIONS: [(&str, &str); 19] = [
    ("a", "Agriculture, forestry and fishing"),
    ("b", "Mining and quarrying"),
    ("c", "Manufacturing"),
    ("d", "Electricity, gas, steam and air conditioning supply"),
    (
        "e",
        "Water supply; sewerage, waste management and remediation activities",
    ),
    ("f", "Construction"),
    (
        "g",
        "Wholesale and retail trade; repair of motor vehicles and motorcycles",
    ),
    ("h", "Transportation and storage"),
    ("i", "Accommodation and food service activities"),
    ("j", "Information and communication"),
    ("k", "Financial and insurance activities"),
    ("l", "Real estate activities"),
    ("m", "Professional, scientific and technical activities"),
    ("n", "Administrative and support service activities"),
    (
        "o",
        "Public administration and defence; compulsory social security",
    ),
    ("p", "Education"),
    ("q", "Human health and social work activities"),
    ("r", "Arts, entertainment and recreation"),
    ("s", "Other service activities"),
];

/// The UK employment figures by industry section for the latest period that has any.
fn latest_sections(figures: &[Figure]) -> Vec<&Figure> {
    let sections: Vec<&Figure> = figures
        .iter()
        .filter(|figure| {
            figure.measure == "employment"
                && figure.region == UK
                && figure.breakdown.starts_with("industry_")
        })
        .collect();
    let Some(latest) = sections
        .iter()
        .map(|figure| period::order_key(&figure.period))
        .max()
    else {
        return Vec::new();
    };
    sections
        .into_iter()
        .filter(|figure| period::order_key(&figure.period) == latest)
        .collect()
}

/// The occupation's latest UK all-workers projection, if an SSC has submitted one, with
/// the replacement demand of the same horizon when there is one.
pub fn outlook(figures: &[Figure]) -> Option<Outlook> {
    let uk = |measure: &str| {
        figures.iter().find(|figure| {
            figure.measure == measure
                && figure.region == UK
                && figure.breakdown == "all"
                && !figure.suppressed
        })
    };
    let change = uk("projected_employment_change")?;
    Some(Outlook {
        projected_employment_change: change.value,
        replacement_demand: uk("replacement_demand")
            .filter(|demand| demand.horizon == change.horizon)
            .map(|demand| demand.value),
        horizon: change.horizon.clone(),
        source: change.source.clone(),
    })
}

/// The occupation's UK employment, if any figure gives it.
pub fn employment(figures: &[Figure]) -> Option<Employment> {
    let total = figures.iter().find(|figure| {
        figure.measure == "employment"
            && figure.region == UK
            && figure.breakdown == "all"
            && !figure.suppressed
    });
    let sections = latest_sections(figures);
    // A whole-occupation figure at least as recent as the sections wins.
    if let Some(total) = total
        && sections.first().is_none_or(|section| {
            period::order_key(&total.period) >= period::order_key(&section.period)
        })
    {
        return Some(Employment {
            value: total.value,
            lower_bound: false,
            suppressed_sections: 0,
            period: total.period.clone(),
            source: total.source.clone(),
        });
    }
    let first = sections.first()?;
    let suppressed = sections.iter().filter(|figure| figure.suppressed).count();
    let value = sections
        .iter()
        .filter(|figure| !figure.suppressed)
        .map(|figure| figure.value)
        .sum();
    Some(Employment {
        value,
        lower_bound: suppressed > 0 || sections.len() < SECTIONS.len(),
        suppressed_sections: u32::try_from(suppressed).unwrap_or(u32::MAX),
        period: first.period.clone(),
        source: first.source.clone(),
    })
}

/// The industries employing most people in the occupation, largest first.
pub fn sectors(figures: &[Figure]) -> Vec<Sector> {
    let mut reported: Vec<&Figure> = latest_sections(figures)
        .into_iter()
        .filter(|figure| !figure.suppressed && figure.value > 0.0)
        .collect();
    let total: f64 = reported.iter().map(|figure| figure.value).sum();
    reported.sort_by(|a, b| {
        b.value
            .total_cmp(&a.value)
            .then_with(|| a.breakdown.cmp(&b.breakdown))
    });
    reported
        .into_iter()
        .take(TOP_SECTORS)
        .filter_map(|figure| {
            let letter = figure.breakdown.strip_prefix("industry_")?;
            let (_, title) = SECTIONS.iter().find(|(section, _)| *section == letter)?;
            Some(Sector {
                section: letter.to_ascii_uppercase(),
                title: (*title).to_owned(),
                employment: figure.value,
                share: figure.value / total,
                period: figure.period.clone(),
                source: figure.source.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(breakdown: &str, period: &str, value: f64, suppressed: bool) -> Figure {
        Figure {
            soc_code: "2134".into(),
            measure: "employment".into(),
            region: UK.into(),
            breakdown: breakdown.into(),
            period: period.into(),
            value,
            unit: "persons".into(),
            source: format!("APS {period}"),
            recorded_at: chrono::Utc::now(),
            figure_id: format!("{breakdown}-{period}"),
            suppressed,
            horizon: String::new(),
            period_order: period::order_key(period).0,
        }
    }

    #[test]
    fn the_outlook_is_the_uk_projection_with_the_replacement_demand_of_its_horizon() {
        let projection = |measure: &str, value: f64, horizon: &str| Figure {
            measure: measure.into(),
            horizon: horizon.into(),
            ..figure("all", "2024", value, false)
        };
        assert_eq!(outlook(&[figure("all", "2024", 10.0, false)]), None);
        let held = [
            projection("projected_employment_change", 4.5, "2035"),
            projection("replacement_demand", 120_000.0, "2035"),
        ];
        let found = outlook(&held).unwrap_or_default();
        assert_eq!(
            (
                found.projected_employment_change,
                found.replacement_demand,
                found.horizon.as_str()
            ),
            (4.5, Some(120_000.0), "2035")
        );
        let other_horizon = [
            projection("projected_employment_change", 4.5, "2035"),
            projection("replacement_demand", 120_000.0, "2030"),
        ];
        assert_eq!(
            outlook(&other_horizon)
                .unwrap_or_default()
                .replacement_demand,
            None
        );
    }

    #[test]
    fn employment_sums_the_latest_sections_as_a_lower_bound_when_some_are_suppressed() {
        let figures = [
            figure("industry_j", "2024", 300_000.0, false),
            figure("industry_k", "2024", 100_000.0, false),
            figure("industry_m", "2024", 0.0, true),
            // An older year's section is not added to the latest.
            figure("industry_c", "2023", 50_000.0, false),
        ];
        let employment = employment(&figures).unwrap();
        assert_eq!(
            (
                employment.value,
                employment.lower_bound,
                employment.suppressed_sections,
                employment.period.as_str()
            ),
            (400_000.0, true, 1, "2024")
        );
        let sectors = sectors(&figures);
        let shown: Vec<(&str, f64)> = sectors
            .iter()
            .map(|sector| (sector.section.as_str(), sector.share))
            .collect();
        assert_eq!(shown, [("J", 0.75), ("K", 0.25)]);
        assert_eq!(sectors[0].title, "Information and communication");
    }

    #[test]
    fn an_all_industry_figure_wins_and_no_figures_give_none() {
        let figures = [
            figure("industry_j", "2024", 300_000.0, false),
            figure("all", "2024", 335_000.0, false),
        ];
        let employment = employment(&figures).unwrap();
        assert_eq!(
            (employment.value, employment.lower_bound),
            (335_000.0, false)
        );
        assert_eq!(super::employment(&[]), None);
        assert!(sectors(&[]).is_empty());
    }
}
