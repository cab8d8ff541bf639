//! Periods of the LMI template (`YYYY`, `YYYY-Qn`, `YYYY-MM`), shared by every service
//! that orders or filters figures, so "the later period" means the same everywhere.

/// The months a period covers, each as `YYYY-MM` (so they sort in time order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Months {
    pub first: String,
    pub last: String,
}

/// The months `period` covers, or `None` if it is not `YYYY`, `YYYY-Qn` or `YYYY-MM`.
pub fn months(period: &str) -> Option<Months> {
    let year_ok = |year: &str| year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit());
    let span = |year: &str, first: u8, last: u8| Months {
        first: format!("{year}-{first:02}"),
        last: format!("{year}-{last:02}"),
    };
    match period.split_once('-') {
        None => year_ok(period).then(|| span(period, 1, 12)),
        Some((year, rest)) if year_ok(year) => match rest.strip_prefix('Q') {
            Some(quarter) => match quarter {
                "1" | "2" | "3" | "4" => {
                    let last = quarter.parse::<u8>().ok()? * 3;
                    Some(span(year, last - 2, last))
                }
                _ => None,
            },
            None if rest.len() == 2 => rest
                .parse::<u8>()
                .ok()
                .filter(|month| (1..=12).contains(month))
                .map(|month| span(year, month, month)),
            None => None,
        },
        Some(_) => None,
    }
}

/// The key that orders periods by when they end, then by their text: `2024-Q1` comes
/// before `2024-12`, and the year `2024` (text first) before `2024-12`.
pub fn order_key(period: &str) -> (String, &str) {
    let last = months(period).map_or_else(|| period.to_owned(), |months| months.last);
    (last, period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_form_covers_its_months() {
        let cases = [
            ("2024", "2024-01", "2024-12"),
            ("2024-Q1", "2024-01", "2024-03"),
            ("2024-Q4", "2024-10", "2024-12"),
            ("2024-07", "2024-07", "2024-07"),
        ];
        for (period, first, last) in cases {
            let covered = months(period).unwrap();
            assert_eq!(
                (covered.first.as_str(), covered.last.as_str()),
                (first, last)
            );
        }
        for bad in [
            "24", "2024-Q5", "2024-13", "2024-00", "2024-1", "abcd", "2024-", "2024-Q",
        ] {
            assert_eq!(months(bad), None, "{bad}");
        }
    }

    #[test]
    fn later_periods_order_after_earlier_ones_whatever_their_form() {
        let mut periods = vec!["2025-01", "2024", "2024-Q1", "2024-12", "2023-Q4"];
        periods.sort_by_key(|period| order_key(period));
        assert_eq!(
            periods,
            ["2023-Q4", "2024-Q1", "2024", "2024-12", "2025-01"]
        );
    }
}
