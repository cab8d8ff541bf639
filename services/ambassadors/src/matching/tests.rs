use std::collections::{BTreeMap, BTreeSet};

use chrono::{Days, NaiveDate};
use pathfinding::{kuhn_munkres::kuhn_munkres, matrix::Matrix};
use proptest::prelude::*;
use uuid::Uuid;

use super::*;

fn day(offset: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2027, 1, 4)
        .and_then(|monday| monday.checked_add_days(Days::new(offset)))
        .unwrap_or_default()
}

fn point(latitude: f64, longitude: f64) -> Point {
    Point {
        latitude,
        longitude,
    }
}

fn ambassador(index: u128) -> Ambassador {
    Ambassador {
        id: Uuid::from_u128((1 << 64) + index),
        location: point(52.0, -1.0),
        travel_radius_km: 20.0,
        dbs_expires_on: Some(day(365)),
        availability: Availability {
            weekdays: 0b0011111,
            ranges: vec![(day(0), day(200))],
        },
        monthly_capacity: 2,
        booked: BTreeMap::new(),
        subjects: BTreeSet::new(),
        sectors: BTreeSet::new(),
        in_shortage: false,
        attributes: BTreeSet::new(),
    }
}

fn request(index: u128) -> Request {
    Request {
        id: Uuid::from_u128((2 << 64) + index),
        location: point(52.05, -1.0),
        window: (day(7), day(20)),
        slots: 1,
        subjects: BTreeSet::new(),
        sector: None,
        school_encounters: 0,
        wants_diversity: false,
    }
}

fn blocked(outcome: &Outcome) -> Vec<Vec<&'static str>> {
    outcome
        .unmatched
        .iter()
        .map(|unmatched| {
            unmatched
                .blocked_by
                .iter()
                .map(|rule| rule.code())
                .collect()
        })
        .collect()
}

#[test]
fn each_rule_is_reported_when_it_alone_blocks() {
    let far = Ambassador {
        location: point(53.0, -1.0),
        ..ambassador(1)
    };
    let expired = Ambassador {
        dbs_expires_on: Some(day(7)),
        ..ambassador(2)
    };
    let unchecked = Ambassador {
        dbs_expires_on: None,
        ..ambassador(3)
    };
    let later = Ambassador {
        availability: Availability {
            weekdays: 0b0011111,
            ranges: vec![(day(100), day(200))],
        },
        ..ambassador(4)
    };
    let full = Ambassador {
        booked: BTreeMap::from([(month_of(day(7)), 2)]),
        ..ambassador(5)
    };
    let cases: [(Vec<Ambassador>, &str); 5] = [
        (vec![far], "out_of_range"),
        (vec![expired], "dbs_expired"),
        (vec![unchecked], "dbs_expired"),
        (vec![later], "not_available"),
        (vec![full], "no_capacity"),
    ];
    for (ambassadors, rule) in cases {
        let outcome = optimal(ambassadors, vec![request(1)], Options::default());
        assert!(outcome.matches.is_empty(), "{rule}: {outcome:?}");
        assert_eq!(blocked(&outcome), vec![vec![rule]], "{rule}");
    }
}

#[test]
fn a_request_whose_ambassadors_went_elsewhere_says_so() {
    let only = Ambassador {
        monthly_capacity: 1,
        ..ambassador(1)
    };
    let outcome = optimal(
        vec![
            only,
            Ambassador {
                dbs_expires_on: Some(day(1)),
                ..ambassador(2)
            },
        ],
        vec![request(1), request(2)],
        Options::default(),
    );
    assert_eq!(outcome.matches.len(), 1);
    assert_eq!(
        blocked(&outcome),
        vec![vec!["dbs_expired", "matched_elsewhere"]]
    );
}

#[test]
fn the_optimum_beats_greedy_where_order_misleads_it() {
    // The first request likes both ambassadors; the second can only have the first.
    // Greedy gives the first request its favourite and leaves the second empty.
    let near_both = Ambassador {
        location: point(52.02, -1.0),
        monthly_capacity: 1,
        ..ambassador(1)
    };
    let only_first = Ambassador {
        location: point(52.0, -1.3),
        travel_radius_km: 24.0,
        ..ambassador(2)
    };
    let first = Request {
        location: point(52.02, -1.05),
        ..request(1)
    };
    let second = Request {
        location: point(52.05, -0.8),
        ..request(2)
    };
    let ambassadors = vec![near_both, only_first];
    let requests = vec![first, second];
    let best = optimal(ambassadors.clone(), requests.clone(), Options::default());
    let baseline = greedy(ambassadors, requests.clone());
    assert_eq!(best.requests_filled(&requests), 2, "{best:?}");
    assert_eq!(baseline.requests_filled(&requests), 1, "{baseline:?}");
    assert!(best.total_score > baseline.total_score);
}

#[test]
fn diversity_swaps_within_budget_and_reports_both_scores() {
    let mut ambassadors: Vec<Ambassador> = (1..=3)
        .map(|index| Ambassador {
            attributes: BTreeSet::from(["gender:male".to_owned()]),
            ..ambassador(index)
        })
        .collect();
    // Slightly farther, so a little worse, but a different role model.
    ambassadors.push(Ambassador {
        location: point(51.99, -1.0),
        attributes: BTreeSet::from(["gender:female".to_owned()]),
        ..ambassador(4)
    });
    let wanting = Request {
        slots: 2,
        wants_diversity: true,
        ..request(1)
    };
    let outcome = optimal(
        ambassadors.clone(),
        vec![wanting.clone()],
        Options::default(),
    );
    let chosen: BTreeSet<Uuid> = outcome.matches.iter().map(|m| m.ambassador_id).collect();
    assert!(chosen.contains(&ambassadors[3].id), "{outcome:?}");
    assert!(outcome.total_score < outcome.optimal_score);
    assert!(outcome.optimal_score - outcome.total_score <= outcome.optimal_score / 20);
    // With no budget the optimum stands.
    let strict = optimal(
        ambassadors,
        vec![wanting],
        Options {
            diversity_budget: 0.0,
        },
    );
    assert_eq!(strict.total_score, strict.optimal_score);
}

#[test]
fn a_convex_load_spreads_engagements() {
    // Two requests in one month, two equal ambassadors: one each, not both on one.
    let outcome = optimal(
        vec![ambassador(1), ambassador(2)],
        vec![request(1), request(2)],
        Options::default(),
    );
    let people: BTreeSet<Uuid> = outcome.matches.iter().map(|m| m.ambassador_id).collect();
    assert_eq!(people.len(), 2, "{outcome:?}");
    assert!(outcome.matches.iter().all(|m| m.terms.load == 0));
}

fn assert_rules_hold(ambassadors: &[Ambassador], requests: &[Request], outcome: &Outcome) {
    let found = verify::violations(ambassadors, requests, outcome);
    assert!(found.is_empty(), "{found:#?}");
}

/// The optimum by Kuhn-Munkres for one-slot requests: a column per unit of each
/// ambassador-month's capacity (its load cost rising), and a zero-weight column per
/// request for leaving it unmatched.
fn kuhn_munkres_optimum(ambassadors: Vec<Ambassador>, requests: Vec<Request>) -> i64 {
    let candidates = Candidates::build(ambassadors, requests);
    let mut columns: Vec<(usize, Month, i64)> = Vec::new();
    let months: BTreeSet<(usize, Month)> = candidates
        .pairs
        .iter()
        .map(|pair| (pair.ambassador, month_of(pair.date)))
        .collect();
    for (ambassador, month) in months {
        let held = candidates.ambassadors[ambassador]
            .booked
            .get(&month)
            .copied()
            .unwrap_or(0);
        for unit in held..candidates.ambassadors[ambassador].monthly_capacity {
            columns.push((ambassador, month, load_cost(unit)));
        }
    }
    let rows = candidates.requests.len();
    let mut weights = Matrix::new(rows, columns.len() + rows, 0_i64);
    for row in 0..rows {
        for (column, _) in columns.iter().enumerate() {
            weights[(row, column)] = -1_000_000;
        }
    }
    for pair in &candidates.pairs {
        for (column, &(ambassador, month, load)) in columns.iter().enumerate() {
            if ambassador == pair.ambassador && month == month_of(pair.date) {
                weights[(pair.request, column)] = pair.terms.total() - load;
            }
        }
    }
    kuhn_munkres(&weights).0
}

fn subset(names: &'static [&'static str]) -> impl Strategy<Value = BTreeSet<String>> {
    proptest::sample::subsequence(names, 0..=names.len())
        .prop_map(|chosen| chosen.into_iter().map(str::to_owned).collect())
}

const SUBJECTS: &[&str] = &["maths", "physics", "computing", "biology"];
const SECTORS: &[&str] = &["engineering", "technology", "science"];
const ATTRIBUTES: &[&str] = &[
    "gender:female",
    "gender:male",
    "route:apprenticeship",
    "first_in_family:yes",
];

fn ambassadors_strategy() -> impl Strategy<Value = Vec<Ambassador>> {
    prop::collection::vec(
        (
            (-0.3..0.3_f64, -0.4..0.4_f64, 5.0..40.0_f64),
            proptest::option::weighted(0.9, 0..200_u64),
            (1..128_u8, 0..60_u64, 0..90_u64),
            (
                0..4_u32,
                prop::collection::btree_map(0..3_i32, 0..3_u32, 0..3),
            ),
            (
                subset(SUBJECTS),
                subset(SECTORS),
                any::<bool>(),
                subset(ATTRIBUTES),
            ),
        ),
        1..8,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(
                |(index, (place, dbs, (weekdays, from, length), (capacity, booked), more))| {
                    let first_month = month_of(day(0));
                    Ambassador {
                        id: Uuid::from_u128((1 << 64) + index as u128),
                        location: point(52.0 + place.0, -1.0 + place.1),
                        travel_radius_km: place.2,
                        dbs_expires_on: dbs.map(day),
                        availability: Availability {
                            weekdays,
                            ranges: vec![(day(from), day(from + length))],
                        },
                        monthly_capacity: capacity,
                        booked: booked
                            .into_iter()
                            .map(|(month, count)| (first_month + month, count))
                            .collect(),
                        subjects: more.0,
                        sectors: more.1,
                        in_shortage: more.2,
                        attributes: more.3,
                    }
                },
            )
            .collect()
    })
}

fn requests_strategy(max_slots: u32) -> impl Strategy<Value = Vec<Request>> {
    prop::collection::vec(
        (
            (-0.3..0.3_f64, -0.4..0.4_f64),
            (0..60_u64, 0..56_u64),
            (
                1..=max_slots,
                subset(SUBJECTS),
                proptest::option::of(0..3_usize),
            ),
            (0..5_u32, any::<bool>()),
        ),
        1..6,
    )
    .prop_map(|rows| {
        rows.into_iter()
            .enumerate()
            .map(
                |(
                    index,
                    (place, (from, length), (slots, subjects, sector), (encounters, diverse)),
                )| {
                    Request {
                        id: Uuid::from_u128((2 << 64) + index as u128),
                        location: point(52.0 + place.0, -1.0 + place.1),
                        window: (day(from), day(from + length)),
                        slots,
                        subjects,
                        sector: sector.map(|index| SECTORS[index].to_owned()),
                        school_encounters: encounters,
                        wants_diversity: diverse,
                    }
                },
            )
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_match_breaks_a_rule_and_greedy_never_wins(
        ambassadors in ambassadors_strategy(),
        requests in requests_strategy(3),
    ) {
        let best = optimal(ambassadors.clone(), requests.clone(), Options::default());
        let baseline = greedy(ambassadors.clone(), requests.clone());
        assert_rules_hold(&ambassadors, &requests, &best);
        assert_rules_hold(&ambassadors, &requests, &baseline);
        prop_assert!(best.optimal_score >= baseline.total_score);
        let budget = (best.optimal_score.max(0) as f64 * 0.05).floor() as i64;
        prop_assert!(best.total_score >= best.optimal_score - budget);
        // Same input in another order: the same matches.
        let mut reversed = ambassadors.clone();
        reversed.reverse();
        let again = optimal(reversed, requests.into_iter().rev().collect(), Options::default());
        prop_assert_eq!(again, best);
    }

    #[test]
    fn the_flow_optimum_equals_kuhn_munkres(
        ambassadors in ambassadors_strategy(),
        requests in requests_strategy(1),
    ) {
        let best = optimal(ambassadors.clone(), requests.clone(), Options::default());
        prop_assert_eq!(best.optimal_score, kuhn_munkres_optimum(ambassadors, requests));
    }
}

#[test]
fn the_rule_check_catches_broken_matches() {
    let ambassadors = vec![Ambassador {
        monthly_capacity: 1,
        ..ambassador(1)
    }];
    let requests = vec![request(1)];
    let mut outcome = optimal(ambassadors.clone(), requests.clone(), Options::default());
    assert_rules_hold(&ambassadors, &requests, &outcome);
    outcome.matches[0].activity_date = day(300);
    outcome.matches.push(outcome.matches[0].clone());
    let found = verify::violations(&ambassadors, &requests, &outcome).join("\n");
    for rule in [
        "twice",
        "window",
        "not available",
        "over capacity",
        "more ambassadors than slots",
        "not the sum",
    ] {
        assert!(found.contains(rule), "{rule}: {found}");
    }
}
