//! The matcher: one global assignment of ambassadors to every open activity request.
//!
//! 1. Hard rules decide which (request, ambassador) pairs are feasible and on which date
//!    ([`rules`]); a rule is never traded against score.
//! 2. Each feasible pair gets a linear score whose terms are kept for the answer
//!    ([`Terms`]); an ambassador-month's load costs more with each engagement already in
//!    it ([`load_cost`], convex, so it is modelled as parallel arcs).
//! 3. A minimum-cost flow over the sparse graph request (slots) → pair (1) →
//!    ambassador-month (one arc per capacity unit, rising cost) → sink, with an
//!    "unfilled" arc from each request, gives the optimum ([`flow`]). Requests are routed
//!    in id order and the solver breaks ties by node, so the same input gives the same
//!    matches.
//! 4. A second pass ([`diversity`]) swaps within a multi-ambassador request's feasible set
//!    to widen its role models while the total drops by at most the diversity budget.
//!
//! [`greedy`] is the fixed baseline `make bench` compares against.

pub mod diversity;
pub mod flow;
mod rules;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use uuid::Uuid;

use crate::geo::Point;
pub use rules::{Blocked, Feasible, check};

/// A month as `year * 12 + month0`: the unit of an ambassador's capacity.
pub type Month = i32;

/// The month a date falls in.
pub fn month_of(date: NaiveDate) -> Month {
    date.year() * 12 + date.month0() as i32
}

/// When an ambassador can volunteer: on these weekdays within any of these date ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Availability {
    /// Bit 0 is Monday, bit 6 Sunday.
    pub weekdays: u8,
    /// Inclusive ranges.
    pub ranges: Vec<(NaiveDate, NaiveDate)>,
}

impl Availability {
    pub fn allows(&self, date: NaiveDate) -> bool {
        let weekday = date.weekday().num_days_from_monday();
        self.weekdays & (1 << weekday) != 0
            && self
                .ranges
                .iter()
                .any(|(from, to)| *from <= date && date <= *to)
    }
}

/// What the matcher needs of an ambassador.
#[derive(Debug, Clone)]
pub struct Ambassador {
    pub id: Uuid,
    pub location: Point,
    pub travel_radius_km: f64,
    /// The day the DBS check stops being valid; None when there is no check on record.
    pub dbs_expires_on: Option<NaiveDate>,
    pub availability: Availability,
    pub monthly_capacity: u32,
    /// Engagements already held (proposed, accepted or confirmed), per month.
    pub booked: BTreeMap<Month, u32>,
    pub subjects: BTreeSet<String>,
    /// The occupation's sector and STEM discipline, from the occupations projection.
    pub sectors: BTreeSet<String>,
    /// The occupation is in shortage by the latest LMI.
    pub in_shortage: bool,
    /// Consented role-model attributes as `kind:value` (`gender:female`); only the
    /// diversity pass reads them.
    pub attributes: BTreeSet<String>,
}

/// What the matcher needs of an open activity request.
#[derive(Debug, Clone)]
pub struct Request {
    /// UUID v7: id order is creation order, which the greedy baseline follows.
    pub id: Uuid,
    pub location: Point,
    /// Inclusive.
    pub window: (NaiveDate, NaiveDate),
    /// Ambassadors still wanted.
    pub slots: u32,
    pub subjects: BTreeSet<String>,
    pub sector: Option<String>,
    /// Gatsby benchmark 5 encounters the school has had this academic year.
    pub school_encounters: u32,
    pub wants_diversity: bool,
}

/// A pair's score, term by term, in points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Terms {
    /// Every feasible pair is worth filling: one slot filled beats none.
    pub base: i64,
    /// Share of the request's subjects the ambassador covers.
    pub subject: i64,
    pub sector: i64,
    /// Nearer is better, relative to the ambassador's own radius.
    pub distance: i64,
    pub shortage: i64,
    /// Schools with fewer encounters this academic year come first.
    pub fairness: i64,
    /// Minus the load cost of the ambassador's engagements that month (set on matches).
    pub load: i64,
}

impl Terms {
    pub fn total(&self) -> i64 {
        self.base + self.subject + self.sector + self.distance + self.shortage + self.fairness
            - self.load
    }
}

/// Weights of the score, in points.
pub mod weights {
    pub const BASE: i64 = 100;
    pub const SUBJECT: i64 = 300;
    pub const SECTOR: i64 = 150;
    pub const DISTANCE: i64 = 250;
    pub const SHORTAGE: i64 = 100;
    pub const FAIRNESS: i64 = 200;
    /// The marginal cost of an ambassador's k-th engagement in a month is `LOAD * k`
    /// (k from 0): increasing, so the total is convex.
    pub const LOAD: i64 = 60;
}

/// The cost of one more engagement for an ambassador already holding `held` that month.
pub fn load_cost(held: u32) -> i64 {
    weights::LOAD * i64::from(held)
}

/// The score terms of a feasible pair, before load.
pub fn score(request: &Request, ambassador: &Ambassador, distance_km: f64) -> Terms {
    let subject = if request.subjects.is_empty() {
        0
    } else {
        let covered = request
            .subjects
            .iter()
            .filter(|subject| ambassador.subjects.contains(*subject))
            .count() as i64;
        weights::SUBJECT * covered / request.subjects.len() as i64
    };
    let sector = match &request.sector {
        Some(sector) if ambassador.sectors.contains(sector) => weights::SECTOR,
        _ => 0,
    };
    let nearness = if ambassador.travel_radius_km > 0.0 {
        (1.0 - distance_km / ambassador.travel_radius_km).clamp(0.0, 1.0)
    } else {
        1.0
    };
    Terms {
        base: weights::BASE,
        subject,
        sector,
        distance: (weights::DISTANCE as f64 * nearness).round() as i64,
        shortage: if ambassador.in_shortage {
            weights::SHORTAGE
        } else {
            0
        },
        fairness: weights::FAIRNESS / (1 + i64::from(request.school_encounters)),
        load: 0,
    }
}

/// A proposed engagement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub request_id: Uuid,
    pub ambassador_id: Uuid,
    pub activity_date: NaiveDate,
    pub score: i64,
    pub terms: Terms,
}

/// A request left with open slots, and the rules that kept ambassadors from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmatched {
    pub request_id: Uuid,
    pub open_slots: u32,
    pub blocked_by: Vec<Blocked>,
}

/// A run's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub matches: Vec<Match>,
    pub unmatched: Vec<Unmatched>,
    /// The total score of the matches given.
    pub total_score: i64,
    /// The optimum before the diversity pass (equal to `total_score` for greedy).
    pub optimal_score: i64,
}

impl Outcome {
    /// Requests with every slot filled.
    pub fn requests_filled(&self, requests: &[Request]) -> usize {
        let mut filled: HashMap<Uuid, u32> = HashMap::new();
        for assigned in &self.matches {
            *filled.entry(assigned.request_id).or_default() += 1;
        }
        requests
            .iter()
            .filter(|request| filled.get(&request.id).copied().unwrap_or(0) >= request.slots)
            .count()
    }
}

/// Options of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// Share of the optimal total the diversity pass may give up (0.05 is 5%).
    pub diversity_budget: f64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            diversity_budget: 0.05,
        }
    }
}

/// A feasible pair, indexed into the sorted inputs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pair {
    pub request: usize,
    pub ambassador: usize,
    pub date: NaiveDate,
    pub terms: Terms,
}

/// Every feasible pair and, per request, the rules that removed the others.
#[derive(Debug)]
pub(crate) struct Candidates {
    pub ambassadors: Vec<Ambassador>,
    pub requests: Vec<Request>,
    pub pairs: Vec<Pair>,
    pub blocked: Vec<BTreeSet<Blocked>>,
}

impl Candidates {
    /// Sorts both sides by id and finds the feasible pairs through a grid of cells as
    /// wide as the largest travel radius, so only neighbouring cells are measured.
    pub fn build(mut ambassadors: Vec<Ambassador>, mut requests: Vec<Request>) -> Self {
        ambassadors.sort_by_key(|ambassador| ambassador.id);
        requests.sort_by_key(|request| request.id);
        let grid = Grid::new(&ambassadors);
        let mut pairs = Vec::new();
        let mut blocked = Vec::with_capacity(requests.len());
        for (request_index, request) in requests.iter().enumerate() {
            let mut rules = BTreeSet::new();
            let mut feasible = 0;
            for ambassador_index in grid.near(request.location) {
                let ambassador = &ambassadors[ambassador_index];
                match check(request, ambassador) {
                    Ok(Feasible { date, distance_km }) => {
                        feasible += 1;
                        pairs.push(Pair {
                            request: request_index,
                            ambassador: ambassador_index,
                            date,
                            terms: score(request, ambassador, distance_km),
                        });
                    }
                    Err(rule) => {
                        rules.insert(rule);
                    }
                }
            }
            // Out of range is the answer only when nobody was in range at all.
            if feasible > 0 || rules.iter().any(|rule| *rule != Blocked::OutOfRange) {
                rules.remove(&Blocked::OutOfRange);
            } else {
                rules.insert(Blocked::OutOfRange);
            }
            blocked.push(rules);
        }
        Self {
            ambassadors,
            requests,
            pairs,
            blocked,
        }
    }

    /// Matches from chosen pairs, with each ambassador-month's load costs given to its
    /// matches in date then request order, and the unmatched requests with their rules.
    fn outcome(&self, chosen: &[usize], optimal_score: Option<i64>) -> Outcome {
        let mut order: Vec<usize> = chosen.to_vec();
        order.sort_by_key(|&index| {
            let pair = &self.pairs[index];
            (
                self.ambassadors[pair.ambassador].id,
                pair.date,
                self.requests[pair.request].id,
            )
        });
        let mut held: HashMap<(usize, Month), u32> = HashMap::new();
        let mut matches = Vec::with_capacity(order.len());
        for index in order {
            let pair = &self.pairs[index];
            let month = month_of(pair.date);
            let ambassador = &self.ambassadors[pair.ambassador];
            let count = held.entry((pair.ambassador, month)).or_default();
            let before = ambassador.booked.get(&month).copied().unwrap_or(0) + *count;
            *count += 1;
            let terms = Terms {
                load: load_cost(before),
                ..pair.terms
            };
            matches.push(Match {
                request_id: self.requests[pair.request].id,
                ambassador_id: ambassador.id,
                activity_date: pair.date,
                score: terms.total(),
                terms,
            });
        }
        matches.sort_by_key(|found| (found.request_id, found.ambassador_id));
        let mut filled = vec![0_u32; self.requests.len()];
        for &index in chosen {
            filled[self.pairs[index].request] += 1;
        }
        let unmatched = self
            .requests
            .iter()
            .enumerate()
            .filter(|(index, request)| filled[*index] < request.slots)
            .map(|(index, request)| {
                let mut blocked_by = self.blocked[index].clone();
                let feasible = self
                    .pairs
                    .iter()
                    .filter(|pair| pair.request == index)
                    .count();
                if feasible as u32 > filled[index] {
                    // Ambassadors who could go went to other requests, or one more
                    // engagement that month would cost more than the match is worth.
                    blocked_by.insert(Blocked::MatchedElsewhere);
                }
                Unmatched {
                    request_id: request.id,
                    open_slots: request.slots - filled[index],
                    blocked_by: blocked_by.into_iter().collect(),
                }
            })
            .collect();
        let total_score = matches.iter().map(|found| found.score).sum();
        Outcome {
            matches,
            unmatched,
            total_score,
            optimal_score: optimal_score.unwrap_or(total_score),
        }
    }
}

/// The optimal assignment, then the diversity pass.
pub fn optimal(ambassadors: Vec<Ambassador>, requests: Vec<Request>, options: Options) -> Outcome {
    let candidates = Candidates::build(ambassadors, requests);
    let chosen = solve(&candidates);
    let optimum = candidates.outcome(&chosen, None).total_score;
    let chosen = diversity::widen(&candidates, chosen, options.diversity_budget);
    candidates.outcome(&chosen, Some(optimum))
}

/// The minimum-cost flow's choice of pairs. Costs are made non-negative by measuring
/// each pair against the best pair's total, C: a pair costs 2(C − total), each capacity
/// unit 2 × its load, and leaving a slot unfilled 2C − 1. Every slot is then routed
/// somewhere, a filled slot is worth exactly its total less load, and a match worth
/// nothing loses to leaving the slot open (the −1), as "only while it pays" would have it.
fn solve(candidates: &Candidates) -> Vec<usize> {
    const SINK: usize = 0;
    let best = candidates
        .pairs
        .iter()
        .map(|pair| pair.terms.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut network = flow::Network::new(1 + candidates.requests.len());
    for (index, request) in candidates.requests.iter().enumerate() {
        network.add_edge(1 + index, SINK, i64::from(request.slots), 2 * best - 1);
    }
    // Ambassador-month nodes, created in (ambassador, month) order for determinism.
    let mut months: BTreeMap<(usize, Month), usize> = BTreeMap::new();
    for pair in &candidates.pairs {
        months.insert((pair.ambassador, month_of(pair.date)), 0);
    }
    for (&(ambassador, month), node) in months.iter_mut() {
        *node = network.add_node();
        let ambassador = &candidates.ambassadors[ambassador];
        let held = ambassador.booked.get(&month).copied().unwrap_or(0);
        for unit in held..ambassador.monthly_capacity {
            network.add_edge(*node, SINK, 1, 2 * load_cost(unit));
        }
    }
    let arcs: Vec<flow::EdgeId> = candidates
        .pairs
        .iter()
        .map(|pair| {
            let month_node = months[&(pair.ambassador, month_of(pair.date))];
            network.add_edge(
                1 + pair.request,
                month_node,
                1,
                2 * (best - pair.terms.total()),
            )
        })
        .collect();
    for (index, request) in candidates.requests.iter().enumerate() {
        // Cannot fail: every request has its unfilled arc to the sink.
        let _ = network.route(1 + index, SINK, i64::from(request.slots));
    }
    arcs.iter()
        .enumerate()
        .filter(|(_, arc)| network.flow(**arc) > 0)
        .map(|(index, _)| index)
        .collect()
}

/// The fixed baseline: requests in creation order, each taking its highest-scoring
/// feasible ambassadors (after their load that month) while capacity is left and the
/// match is worth more than nothing. Ties go to the smaller ambassador id.
pub fn greedy(ambassadors: Vec<Ambassador>, requests: Vec<Request>) -> Outcome {
    let candidates = Candidates::build(ambassadors, requests);
    let mut by_request: Vec<Vec<usize>> = vec![Vec::new(); candidates.requests.len()];
    for (index, pair) in candidates.pairs.iter().enumerate() {
        by_request[pair.request].push(index);
    }
    let mut held: HashMap<(usize, Month), u32> = HashMap::new();
    let mut chosen = Vec::new();
    for (request, options) in by_request.iter().enumerate() {
        let mut taken = 0;
        let mut used = BTreeSet::new();
        while taken < candidates.requests[request].slots {
            let best = options
                .iter()
                .filter(|&&index| !used.contains(&index))
                .filter_map(|&index| {
                    let pair = &candidates.pairs[index];
                    let month = month_of(pair.date);
                    let ambassador = &candidates.ambassadors[pair.ambassador];
                    let now = ambassador.booked.get(&month).copied().unwrap_or(0)
                        + held.get(&(pair.ambassador, month)).copied().unwrap_or(0);
                    (now < ambassador.monthly_capacity)
                        .then(|| (pair.terms.total() - load_cost(now), index))
                })
                .filter(|(value, _)| *value > 0)
                .max_by(|(a, a_index), (b, b_index)| {
                    a.cmp(b).then_with(|| {
                        let id = |index: &usize| {
                            candidates.ambassadors[candidates.pairs[*index].ambassador].id
                        };
                        id(b_index).cmp(&id(a_index))
                    })
                });
            let Some((_, index)) = best else { break };
            let pair = &candidates.pairs[index];
            *held
                .entry((pair.ambassador, month_of(pair.date)))
                .or_default() += 1;
            used.insert(index);
            chosen.push(index);
            taken += 1;
        }
    }
    candidates.outcome(&chosen, None)
}

#[derive(Debug)]
struct Grid {
    cell_lat: f64,
    cell_lon: f64,
    cells: HashMap<(i64, i64), Vec<usize>>,
}

impl Grid {
    fn new(ambassadors: &[Ambassador]) -> Self {
        let widest = ambassadors
            .iter()
            .map(|ambassador| ambassador.travel_radius_km)
            .fold(1.0_f64, f64::max);
        // A degree of longitude shrinks towards the pole: size cells for the northernmost
        // ambassador so a cell is never narrower than the widest radius.
        let northmost = ambassadors
            .iter()
            .map(|ambassador| ambassador.location.latitude.abs())
            .fold(0.0_f64, f64::max);
        let cell_lat = widest / 110.574;
        // A request may lie up to one radius north of every ambassador.
        let northmost = (northmost + cell_lat).min(89.0);
        let cell_lon = widest / (111.320 * northmost.to_radians().cos());
        let mut grid = Self {
            cell_lat,
            cell_lon,
            cells: HashMap::new(),
        };
        for (index, ambassador) in ambassadors.iter().enumerate() {
            let cell = grid.cell(ambassador.location);
            grid.cells.entry(cell).or_default().push(index);
        }
        grid
    }

    fn cell(&self, point: Point) -> (i64, i64) {
        (
            (point.latitude / self.cell_lat).floor() as i64,
            (point.longitude / self.cell_lon).floor() as i64,
        )
    }

    /// Ambassadors in the 3×3 cells around a point, in index (id) order.
    fn near(&self, point: Point) -> Vec<usize> {
        let (row, column) = self.cell(point);
        let mut found: Vec<usize> = (-1..=1)
            .flat_map(|dr| (-1..=1).map(move |dc| (row + dr, column + dc)))
            .filter_map(|cell| self.cells.get(&cell))
            .flatten()
            .copied()
            .collect();
        found.sort_unstable();
        found
    }
}

#[cfg(test)]
mod tests;
