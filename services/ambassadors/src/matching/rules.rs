//! The hard rules. A pair is feasible only if every rule holds; the first that fails is
//! what the run reports for an unmatched request.

use chrono::{Days, NaiveDate};
use serde::Serialize;

use super::{Ambassador, Request, month_of};

/// A hard rule that removed an ambassador from a request, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Blocked {
    /// The school is beyond the ambassador's travel radius.
    OutOfRange,
    /// No day in the window is one the ambassador is available.
    NotAvailable,
    /// The DBS check is missing or not valid on any such day.
    DbsExpired,
    /// Every such day falls in a month whose capacity is used up.
    NoCapacity,
    /// Feasible ambassadors went to other requests, or one more engagement that month
    /// would cost more than the match is worth (reported by the run, not by `check`).
    MatchedElsewhere,
}

impl Blocked {
    pub fn code(self) -> &'static str {
        match self {
            Self::OutOfRange => "out_of_range",
            Self::NotAvailable => "not_available",
            Self::DbsExpired => "dbs_expired",
            Self::NoCapacity => "no_capacity",
            Self::MatchedElsewhere => "matched_elsewhere",
        }
    }
}

/// A feasible pair: the earliest day every rule allows, and the distance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Feasible {
    pub date: NaiveDate,
    pub distance_km: f64,
}

/// Checks every hard rule for one pair.
pub fn check(request: &Request, ambassador: &Ambassador) -> Result<Feasible, Blocked> {
    let distance_km = request.location.distance_km(ambassador.location);
    if distance_km > ambassador.travel_radius_km {
        return Err(Blocked::OutOfRange);
    }
    let mut failed = Blocked::NotAvailable;
    let (first, last) = request.window;
    let mut day = first;
    while day <= last {
        if ambassador.availability.allows(day) {
            // DBS valid on the activity date: the check expires on `dbs_expires_on`.
            if ambassador
                .dbs_expires_on
                .is_none_or(|expires| day >= expires)
            {
                failed = failed.max(Blocked::DbsExpired);
            } else {
                let held = ambassador.booked.get(&month_of(day)).copied().unwrap_or(0);
                if held < ambassador.monthly_capacity {
                    return Ok(Feasible {
                        date: day,
                        distance_km,
                    });
                }
                failed = Blocked::NoCapacity;
            }
        }
        let Some(next) = day.checked_add_days(Days::new(1)) else {
            break;
        };
        day = next;
    }
    Err(failed)
}
