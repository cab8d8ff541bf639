//! A deterministic synthetic register and request book, labelled synthetic wherever it is
//! used: ambassadors at real postcode districts in proportion to the schools there, with
//! real SOC codes, and requests from real secondary schools and colleges.
//!
//! `make bench` measures the matcher on `generate(.., 10_000, 2_000, 42, ..)`. Do not tune
//! this generator to the matcher: change it only with a new seed and say so, or the
//! bench's figures stop being comparable.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::{Builder, Uuid};

use crate::{
    domain::SUBJECTS,
    geo::{Places, Point},
    matching::{Ambassador, Availability, Request, month_of},
};

/// A real occupation an ambassador may hold, with its sectors (discipline, sub-major group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Occupation {
    pub soc_code: String,
    pub sectors: BTreeSet<String>,
}

/// A generated ambassador and where it came from.
#[derive(Debug, Clone)]
pub struct GeneratedAmbassador {
    pub ambassador: Ambassador,
    pub soc_code: String,
    pub postcode_district: String,
}

/// A generated request and its school.
#[derive(Debug, Clone)]
pub struct GeneratedRequest {
    pub request: Request,
    pub urn: String,
}

/// The generated set.
#[derive(Debug, Clone)]
pub struct Generated {
    pub ambassadors: Vec<GeneratedAmbassador>,
    pub requests: Vec<GeneratedRequest>,
}

/// Why nothing could be generated.
#[derive(Debug, thiserror::Error)]
pub enum SyntheticError {
    #[error("no located school whose postcode district has a centroid")]
    NoSchools,
    #[error("no occupations to give ambassadors")]
    NoOccupations,
}

/// Phases of education whose schools ask for STEM encounters.
const SECONDARY_PHASES: [&str; 4] = [
    "Secondary",
    "All-through",
    "16 plus",
    "Middle deemed secondary",
];

/// Generates `ambassadors` and `requests` from `seed`, dated from `reference` (a Monday
/// keeps weekdays aligned across runs).
pub fn generate(
    places: &Places,
    occupations: &[Occupation],
    ambassadors: usize,
    requests: usize,
    seed: u64,
    reference: NaiveDate,
) -> Result<Generated, SyntheticError> {
    if occupations.is_empty() {
        return Err(SyntheticError::NoOccupations);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Districts weighted by their schools: drawing a school draws its district.
    let homes: Vec<(String, Point)> = places
        .schools()
        .into_iter()
        .filter(|school| school.location.is_some())
        .filter_map(|school| {
            places
                .district(&school.outcode)
                .map(|district| (school.outcode.clone(), district.centroid))
        })
        .collect();
    let secondary: Vec<(String, Point)> = places
        .schools()
        .into_iter()
        .filter(|school| SECONDARY_PHASES.contains(&school.phase.as_str()))
        .filter_map(|school| {
            school
                .location
                .map(|location| (school.urn.clone(), location))
        })
        .collect();
    if homes.is_empty() || secondary.is_empty() {
        return Err(SyntheticError::NoSchools);
    }
    let days = |offset: u64| {
        reference
            .checked_add_days(Days::new(offset))
            .unwrap_or(reference)
    };
    let start_ms = 1_800_000_000_000_u64;

    let mut generated_ambassadors = Vec::with_capacity(ambassadors);
    for index in 0..ambassadors {
        let (outcode, location) = homes[rng.random_range(0..homes.len())].clone();
        let occupation = &occupations[rng.random_range(0..occupations.len())];
        let checked_days_ago: u64 = rng.random_range(0..(365 * 7 / 2));
        let dbs_expires_on = reference
            .checked_sub_days(Days::new(checked_days_ago))
            .and_then(|checked| checked.checked_add_months(chrono::Months::new(36)));
        let mut weekdays = 0_u8;
        while weekdays == 0 {
            for bit in 0..5 {
                if rng.random_bool(0.5) {
                    weekdays |= 1 << bit;
                }
            }
        }
        let from = rng.random_range(0..60);
        let length = rng.random_range(30..180);
        let monthly_capacity = rng.random_range(1..=4);
        let mut booked = BTreeMap::new();
        for month in 0..4 {
            if rng.random_bool(0.2) {
                booked.insert(month_of(days(month * 30)), 1);
            }
        }
        let subjects = pick_subjects(&mut rng, 1, 3);
        let in_shortage = rng.random_bool(0.25);
        let mut attributes = BTreeSet::new();
        if rng.random_bool(0.6) {
            let gender = if rng.random_bool(0.4) {
                "female"
            } else {
                "male"
            };
            attributes.insert(format!("gender:{gender}"));
            if rng.random_bool(0.3) {
                attributes.insert("route:apprenticeship".to_owned());
            }
            if rng.random_bool(0.3) {
                attributes.insert("first_in_family:yes".to_owned());
            }
        }
        generated_ambassadors.push(GeneratedAmbassador {
            ambassador: Ambassador {
                id: minted(&mut rng, start_ms + index as u64),
                location,
                travel_radius_km: rng.random_range(5.0..=40.0),
                dbs_expires_on,
                availability: Availability {
                    weekdays,
                    ranges: vec![(days(from), days(from + length))],
                },
                monthly_capacity,
                booked,
                subjects,
                sectors: occupation.sectors.clone(),
                in_shortage,
                attributes,
            },
            soc_code: occupation.soc_code.clone(),
            postcode_district: outcode,
        });
    }

    let sectors: Vec<&String> = occupations
        .iter()
        .flat_map(|occupation| &occupation.sectors)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut generated_requests = Vec::with_capacity(requests);
    for index in 0..requests {
        let (urn, location) = secondary[rng.random_range(0..secondary.len())].clone();
        let from = rng.random_range(7..90);
        let weeks = rng.random_range(2..=8);
        let sector = (!sectors.is_empty() && rng.random_bool(0.3))
            .then(|| sectors[rng.random_range(0..sectors.len())].clone());
        generated_requests.push(GeneratedRequest {
            request: Request {
                id: minted(&mut rng, start_ms + (ambassadors + index) as u64),
                location,
                window: (days(from), days(from + weeks * 7 - 1)),
                slots: rng.random_range(1..=3),
                subjects: pick_subjects(&mut rng, 1, 2),
                sector,
                school_encounters: rng.random_range(0..=4),
                wants_diversity: rng.random_bool(0.3),
            },
            urn,
        });
    }
    Ok(Generated {
        ambassadors: generated_ambassadors,
        requests: generated_requests,
    })
}

fn pick_subjects(rng: &mut ChaCha8Rng, at_least: usize, at_most: usize) -> BTreeSet<String> {
    let wanted = rng.random_range(at_least..=at_most);
    let mut subjects = BTreeSet::new();
    while subjects.len() < wanted {
        subjects.insert(SUBJECTS[rng.random_range(0..SUBJECTS.len())].to_owned());
    }
    subjects
}

/// A UUID v7 at a fixed instant with seeded random bits: ids sort in creation order and
/// the same seed gives the same ids.
fn minted(rng: &mut ChaCha8Rng, millis: u64) -> Uuid {
    let mut random = [0_u8; 10];
    rng.fill(&mut random);
    Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn occupations() -> Vec<Occupation> {
        ["2122", "2134", "3112"]
            .map(|code| Occupation {
                soc_code: code.to_owned(),
                sectors: BTreeSet::from(["engineering".to_owned()]),
            })
            .to_vec()
    }

    #[test]
    fn the_same_seed_gives_the_same_set() -> Result<(), Box<dyn std::error::Error>> {
        let places = Places::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds"))?;
        let monday = NaiveDate::from_ymd_opt(2027, 1, 4).ok_or("date")?;
        let first = generate(&places, &occupations(), 300, 50, 42, monday)?;
        let second = generate(&places, &occupations(), 300, 50, 42, monday)?;
        let other = generate(&places, &occupations(), 300, 50, 43, monday)?;
        let ids = |set: &Generated| -> Vec<Uuid> {
            set.ambassadors
                .iter()
                .map(|generated| generated.ambassador.id)
                .collect()
        };
        assert_eq!(ids(&first), ids(&second));
        assert_ne!(ids(&first), ids(&other));
        assert!(ids(&first).windows(2).all(|pair| pair[0] < pair[1]));
        for generated in &first.requests {
            let school = places.school(&generated.urn).ok_or("school")?;
            assert!(SECONDARY_PHASES.contains(&school.phase.as_str()));
            assert!((1..=3).contains(&generated.request.slots));
            let (from, to) = generated.request.window;
            assert!((13..=55).contains(&(to - from).num_days()));
        }
        for generated in &first.ambassadors {
            assert!(places.district(&generated.postcode_district).is_some());
            assert!((5.0..=40.0).contains(&generated.ambassador.travel_radius_km));
        }
        Ok(())
    }
}
