//! UK SOC 2020 codes as the catalogue keys occupations: the unit group, four digits, the
//! first (the major group) never 0.

/// Whether `code` is a well-formed SOC 2020 unit group code (`2134`). Whether that unit
/// group exists is the catalogue's business.
pub fn is_soc_code(code: &str) -> bool {
    code.len() == 4 && code.bytes().all(|byte| byte.is_ascii_digit()) && !code.starts_with('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soc_codes_are_four_digits_not_starting_with_zero() {
        assert!(is_soc_code("2134"));
        for bad in ["0134", "213", "21345", "21a4", "", "２１３４"] {
            assert!(!is_soc_code(bad), "{bad:?}");
        }
    }
}
