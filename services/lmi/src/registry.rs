//! The SSC registry as operators manage it: each entry checked before it is stored.

use careers_proto::careers::lmi::v1::Ssc;

use crate::{LmiError, domain::Footprint, store::sscs::SscEntry};

/// The longest SSC name accepted.
const MAX_NAME: usize = 200;

/// A contract slug: `^[a-z][a-z0-9_]{1,31}$`.
pub fn is_slug(id: &str) -> bool {
    let mut bytes = id.bytes();
    (2..=32).contains(&id.len())
        && bytes.next().is_some_and(|first| first.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Every problem with `entry`, by field.
pub fn check(entry: &SscEntry) -> Result<(), LmiError> {
    let mut problems = Vec::new();
    if !is_slug(&entry.id) {
        problems.push((
            "id",
            format!("{:?} is not a slug (a lowercase letter, then 1 to 31 lowercase letters, digits or _)", entry.id),
        ));
    }
    let name = entry.name.trim();
    if name.is_empty() || name.len() > MAX_NAME {
        problems.push(("name", format!("must be 1 to {MAX_NAME} characters")));
    }
    if let Err(reason) = Footprint::parse(&entry.footprint) {
        problems.push(("footprint", reason));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LmiError::InvalidSsc(problems))
    }
}

/// The entry an API message describes, checked.
pub fn entry_of(ssc: Option<Ssc>) -> Result<SscEntry, LmiError> {
    let ssc = ssc.unwrap_or_default();
    let entry = SscEntry {
        id: ssc.id,
        name: ssc.name.trim().to_owned(),
        footprint: ssc.footprint.trim().to_owned(),
        synthetic: ssc.synthetic,
        change_rule: ssc.change_rule,
    };
    check(&entry)?;
    Ok(entry)
}

/// The API form of an entry.
pub fn message_of(entry: SscEntry) -> Ssc {
    Ssc {
        id: entry.id,
        name: entry.name,
        footprint: entry.footprint,
        synthetic: entry.synthetic,
        change_rule: entry.change_rule,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_with_every_field_wrong_names_each() {
        let entry = SscEntry {
            id: "Digital SSC".into(),
            name: " ".into(),
            footprint: "minor:2".into(),
            synthetic: false,
            change_rule: true,
        };
        let Err(LmiError::InvalidSsc(problems)) = check(&entry) else {
            panic!("accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, ["id", "name", "footprint"]);
        for slug in ["ons", "digital_2", "ab"] {
            assert!(is_slug(slug), "{slug}");
        }
        for bad in ["a", "2ons", "Ons", "o-ns", &"a".repeat(33)] {
            assert!(!is_slug(bad), "{bad}");
        }
    }
}
