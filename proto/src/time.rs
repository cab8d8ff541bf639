//! Instants between protobuf's `Timestamp` and chrono: the one conversion every service and
//! the gateway need, written once.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

/// `at` as a protobuf `Timestamp`.
pub fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        // Under 10^9 by construction, so it always fits.
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// The instant `timestamp` names, or `None` when it names none: nanos outside
/// `0..1_000_000_000` (which protobuf forbids) or seconds beyond chrono's range.
pub fn instant(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_survives_the_round_trip_to_the_nanosecond() {
        let at = DateTime::from_timestamp(1_733_000_000, 123_456_789).unwrap();
        assert_eq!(instant(&timestamp(at)), Some(at));
    }

    #[test]
    fn a_timestamp_protobuf_forbids_names_no_instant() {
        for nanos in [-1, 1_000_000_000] {
            let bad = Timestamp { seconds: 0, nanos };
            assert_eq!(instant(&bad), None, "nanos {nanos}");
        }
        let beyond = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(instant(&beyond), None);
    }
}
