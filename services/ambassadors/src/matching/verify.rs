//! An independent re-check of a run's matches against the hard rules, written apart
//! from [`super::rules`] so a bug there cannot hide itself. The property tests and
//! `make bench` count what it finds; it must always find nothing.

use std::collections::{BTreeSet, HashMap};

use chrono::Datelike;
use uuid::Uuid;

use super::{Ambassador, Outcome, Request};

/// Every broken rule in `outcome`, one line each.
pub fn violations(
    ambassadors: &[Ambassador],
    requests: &[Request],
    outcome: &Outcome,
) -> Vec<String> {
    let ambassadors: HashMap<Uuid, &Ambassador> = ambassadors.iter().map(|a| (a.id, a)).collect();
    let requests: HashMap<Uuid, &Request> = requests.iter().map(|r| (r.id, r)).collect();
    let mut found = Vec::new();
    let mut per_month: HashMap<(Uuid, i32, u32), u32> = HashMap::new();
    let mut per_request: HashMap<Uuid, u32> = HashMap::new();
    let mut pairs = BTreeSet::new();
    for matched in &outcome.matches {
        let (Some(ambassador), Some(request)) = (
            ambassadors.get(&matched.ambassador_id),
            requests.get(&matched.request_id),
        ) else {
            found.push(format!("{matched:?}: unknown request or ambassador"));
            continue;
        };
        let date = matched.activity_date;
        let mut broken =
            |rule: &str| found.push(format!("{} → {}: {rule}", request.id, ambassador.id));
        if !pairs.insert((request.id, ambassador.id)) {
            broken("the same ambassador twice on one request");
        }
        if request.location.distance_km(ambassador.location) > ambassador.travel_radius_km {
            broken("beyond the travel radius");
        }
        if date < request.window.0 || date > request.window.1 {
            broken("outside the request's window");
        }
        let weekday = date.weekday().num_days_from_monday();
        let in_range = ambassador
            .availability
            .ranges
            .iter()
            .any(|(from, to)| *from <= date && date <= *to);
        if ambassador.availability.weekdays & (1 << weekday) == 0 || !in_range {
            broken("not available that day");
        }
        if ambassador
            .dbs_expires_on
            .is_none_or(|expires| date >= expires)
        {
            broken("DBS not valid on the day");
        }
        *per_month
            .entry((ambassador.id, date.year(), date.month()))
            .or_default() += 1;
        *per_request.entry(request.id).or_default() += 1;
    }
    for ((id, year, month), count) in per_month {
        if let Some(ambassador) = ambassadors.get(&id) {
            let key = year * 12 + month as i32 - 1;
            let booked = ambassador.booked.get(&key).copied().unwrap_or(0);
            if booked + count > ambassador.monthly_capacity {
                found.push(format!("{id}: over capacity in {year}-{month:02}"));
            }
        }
    }
    for (id, count) in per_request {
        if requests
            .get(&id)
            .is_some_and(|request| count > request.slots)
        {
            found.push(format!("{id}: more ambassadors than slots"));
        }
    }
    let total: i64 = outcome.matches.iter().map(|matched| matched.score).sum();
    if total != outcome.total_score {
        found.push(format!(
            "total {} is not the sum of the matches, {total}",
            outcome.total_score
        ));
    }
    found
}
