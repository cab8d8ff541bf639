//! The diversity pass, after the optimum: for each request that asks for diverse role
//! models and has two or more ambassadors, swap an assigned ambassador for a feasible
//! unassigned one when that widens the set of role-model attributes the request's
//! ambassadors show, taking the cheapest such swap first, while the total given up over
//! the whole run stays within `budget` of the optimum. Requests go in id order and swaps
//! tie-break by ids, so the pass is deterministic. It never breaks a hard rule: it only
//! uses feasible pairs and capacity left after the optimum.

use std::collections::{BTreeSet, HashMap};

use super::{Candidates, Month, load_cost, month_of};

/// The pairs chosen after widening; `chosen` is the optimum's choice.
pub(crate) fn widen(candidates: &Candidates, chosen: Vec<usize>, budget: f64) -> Vec<usize> {
    let mut held: HashMap<(usize, Month), u32> = HashMap::new();
    for &index in &chosen {
        let pair = &candidates.pairs[index];
        *held
            .entry((pair.ambassador, month_of(pair.date)))
            .or_default() += 1;
    }
    let booked = |ambassador: usize, month: Month| {
        candidates.ambassadors[ambassador]
            .booked
            .get(&month)
            .copied()
            .unwrap_or(0)
    };
    let optimum: i64 = chosen
        .iter()
        .map(|&index| candidates.pairs[index].terms.total())
        .sum::<i64>()
        - held
            .iter()
            .map(|(&(ambassador, month), &count)| {
                let from = booked(ambassador, month);
                (from..from + count).map(load_cost).sum::<i64>()
            })
            .sum::<i64>();
    let allowed = (optimum.max(0) as f64 * budget).floor() as i64;
    let mut spent = 0_i64;

    let mut by_request: Vec<Vec<usize>> = vec![Vec::new(); candidates.requests.len()];
    for (index, pair) in candidates.pairs.iter().enumerate() {
        by_request[pair.request].push(index);
    }
    let mut assigned: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); candidates.requests.len()];
    for &index in &chosen {
        assigned[candidates.pairs[index].request].insert(index);
    }
    let attributes = |pairs: &BTreeSet<usize>| -> usize {
        pairs
            .iter()
            .flat_map(|&index| {
                &candidates.ambassadors[candidates.pairs[index].ambassador].attributes
            })
            .collect::<BTreeSet<_>>()
            .len()
    };

    for (request, options) in by_request.iter().enumerate() {
        if !candidates.requests[request].wants_diversity || assigned[request].len() < 2 {
            continue;
        }
        loop {
            let current = attributes(&assigned[request]);
            let people: BTreeSet<usize> = assigned[request]
                .iter()
                .map(|&index| candidates.pairs[index].ambassador)
                .collect();
            // (change in total, out, in): the best is the largest change, then ids.
            let mut best: Option<(i64, usize, usize)> = None;
            for &out in &assigned[request] {
                let leaving = &candidates.pairs[out];
                let leaving_month = month_of(leaving.date);
                let leaving_held = booked(leaving.ambassador, leaving_month)
                    + held[&(leaving.ambassador, leaving_month)];
                let saved = leaving.terms.total() - load_cost(leaving_held - 1);
                for &incoming in options {
                    let arriving = &candidates.pairs[incoming];
                    if people.contains(&arriving.ambassador) {
                        continue;
                    }
                    let month = month_of(arriving.date);
                    let now = booked(arriving.ambassador, month)
                        + held
                            .get(&(arriving.ambassador, month))
                            .copied()
                            .unwrap_or(0);
                    if now >= candidates.ambassadors[arriving.ambassador].monthly_capacity {
                        continue;
                    }
                    let mut trial = assigned[request].clone();
                    trial.remove(&out);
                    trial.insert(incoming);
                    if attributes(&trial) <= current {
                        continue;
                    }
                    let change = arriving.terms.total() - load_cost(now) - saved;
                    if spent - change.min(0) > allowed {
                        continue;
                    }
                    let better = match best {
                        None => true,
                        Some((best_change, best_out, best_in)) => {
                            (change, std::cmp::Reverse((out, incoming)))
                                > (best_change, std::cmp::Reverse((best_out, best_in)))
                        }
                    };
                    if better {
                        best = Some((change, out, incoming));
                    }
                }
            }
            let Some((change, out, incoming)) = best else {
                break;
            };
            spent -= change.min(0);
            let leaving = &candidates.pairs[out];
            if let Some(count) = held.get_mut(&(leaving.ambassador, month_of(leaving.date))) {
                *count -= 1;
            }
            let arriving = &candidates.pairs[incoming];
            *held
                .entry((arriving.ambassador, month_of(arriving.date)))
                .or_default() += 1;
            assigned[request].remove(&out);
            assigned[request].insert(incoming);
        }
    }
    assigned.into_iter().flatten().collect()
}
