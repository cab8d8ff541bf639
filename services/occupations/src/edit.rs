//! Editors' changes to an occupation: the fields an update may set, checked, and the
//! difference each makes, for the history.

use careers_proto::careers::occupations::v1::Occupation;
use serde_json::json;

use crate::{OccupationsError, store::history::FieldChange, store::occupations::Content};

/// The fields an editor may set; the rest come from ONS's classification or are derived.
pub const EDITABLE: [&str; 5] = [
    "title",
    "description",
    "tasks",
    "entry_routes_text",
    "related_job_titles",
];

const MAX_TITLE: usize = 200;
const MAX_TEXT: usize = 20_000;
const MAX_ITEMS: usize = 100;
const MAX_ITEM: usize = 1_000;

fn check_text(
    field: &'static str,
    text: &str,
    max: usize,
    problems: &mut Vec<(&'static str, String)>,
) {
    if text.trim().is_empty() {
        problems.push((field, "must not be empty".to_owned()));
    } else if text.chars().count() > max {
        problems.push((field, format!("is longer than {max} characters")));
    } else if text
        .chars()
        .any(|character| character.is_control() && character != '\n')
    {
        problems.push((field, "must not hold control characters".to_owned()));
    }
}

fn check_items(field: &'static str, items: &[String], problems: &mut Vec<(&'static str, String)>) {
    if items.len() > MAX_ITEMS {
        problems.push((field, format!("holds more than {MAX_ITEMS} items")));
    }
    for item in items {
        check_text(field, item, MAX_ITEM, problems);
    }
}

/// Sets the fields `paths` name from `from` on `content`, every problem named; the
/// fields that changed, with their old and new values.
pub fn apply(
    content: &mut Content,
    paths: &[String],
    from: &Occupation,
) -> Result<Vec<FieldChange>, OccupationsError> {
    let mut problems = Vec::new();
    if paths.is_empty() {
        problems.push((
            "update_mask",
            format!("names no field; editable: {}", EDITABLE.join(", ")),
        ));
    }
    let mut changes = Vec::new();
    for path in paths {
        let (old, new) = match path.as_str() {
            "title" => {
                check_text("title", &from.title, MAX_TITLE, &mut problems);
                let old = std::mem::replace(&mut content.title, from.title.clone());
                (json!(old), json!(from.title))
            }
            "description" => {
                check_text("description", &from.description, MAX_TEXT, &mut problems);
                let old = std::mem::replace(&mut content.description, from.description.clone());
                (json!(old), json!(from.description))
            }
            "entry_routes_text" => {
                check_text(
                    "entry_routes_text",
                    &from.entry_routes_text,
                    MAX_TEXT,
                    &mut problems,
                );
                let old = std::mem::replace(
                    &mut content.entry_routes_text,
                    from.entry_routes_text.clone(),
                );
                (json!(old), json!(from.entry_routes_text))
            }
            "tasks" => {
                check_items("tasks", &from.tasks, &mut problems);
                let old = std::mem::replace(&mut content.tasks, from.tasks.clone());
                (json!(old), json!(from.tasks))
            }
            "related_job_titles" => {
                check_items(
                    "related_job_titles",
                    &from.related_job_titles,
                    &mut problems,
                );
                let old = std::mem::replace(
                    &mut content.related_job_titles,
                    from.related_job_titles.clone(),
                );
                (json!(old), json!(from.related_job_titles))
            }
            other => {
                problems.push((
                    "update_mask",
                    format!(
                        "{other:?} is not editable; editable: {}",
                        EDITABLE.join(", ")
                    ),
                ));
                continue;
            }
        };
        if old != new
            && !changes
                .iter()
                .any(|change: &FieldChange| change.field == *path)
        {
            changes.push(FieldChange {
                field: path.clone(),
                old,
                new,
            });
        }
    }
    // In the order of EDITABLE, whatever order the mask gave.
    changes.sort_by_key(|change| EDITABLE.iter().position(|field| *field == change.field));
    if problems.is_empty() {
        Ok(changes)
    } else {
        Err(OccupationsError::InvalidEdit(problems))
    }
}

/// What a seeded row changes against what was stored, every field (a new row: from null).
pub fn seeded_changes(old: Option<&Content>, new: &Content) -> Vec<FieldChange> {
    let fields = |content: Option<&Content>| -> [(&'static str, serde_json::Value); 5] {
        [
            ("title", content.map_or(json!(null), |c| json!(c.title))),
            (
                "description",
                content.map_or(json!(null), |c| json!(c.description)),
            ),
            ("tasks", content.map_or(json!(null), |c| json!(c.tasks))),
            (
                "entry_routes_text",
                content.map_or(json!(null), |c| json!(c.entry_routes_text)),
            ),
            (
                "related_job_titles",
                content.map_or(json!(null), |c| json!(c.related_job_titles)),
            ),
        ]
    };
    fields(old)
        .into_iter()
        .zip(fields(Some(new)))
        .filter(|((_, old), (_, new))| old != new)
        .map(|((field, old), (_, new))| FieldChange {
            field: field.to_owned(),
            old,
            new,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content() -> Content {
        Content {
            soc_code: "2134".to_owned(),
            title: "Programmers".to_owned(),
            major_group: "2".to_owned(),
            sub_major_group: "21".to_owned(),
            minor_group: "213".to_owned(),
            description: "Writes code.".to_owned(),
            tasks: vec!["codes".to_owned()],
            entry_routes_text: "A degree.".to_owned(),
            related_job_titles: vec![],
        }
    }

    #[test]
    fn named_fields_change_and_the_rest_stay() {
        let mut stored = content();
        let from = Occupation {
            title: "Software developers".to_owned(),
            description: "ignored: not in the mask".to_owned(),
            tasks: vec!["designs".to_owned(), "codes".to_owned()],
            ..Occupation::default()
        };
        let changes = apply(&mut stored, &["title".into(), "tasks".into()], &from).unwrap();
        assert_eq!(stored.title, "Software developers");
        assert_eq!(stored.description, "Writes code.");
        assert_eq!(
            changes,
            [
                FieldChange {
                    field: "title".into(),
                    old: json!("Programmers"),
                    new: json!("Software developers")
                },
                FieldChange {
                    field: "tasks".into(),
                    old: json!(["codes"]),
                    new: json!(["designs", "codes"])
                },
            ]
        );
    }

    #[test]
    fn bad_edits_name_each_problem() {
        let from = Occupation {
            title: " ".to_owned(),
            tasks: vec!["x\u{7}".to_owned()],
            ..Occupation::default()
        };
        let error = apply(
            &mut content(),
            &["title".into(), "tasks".into(), "soc_code".into()],
            &from,
        )
        .unwrap_err();
        let OccupationsError::InvalidEdit(problems) = error else {
            panic!("{error:?}")
        };
        let fields: Vec<&str> = problems.iter().map(|(field, _)| *field).collect();
        assert_eq!(fields, ["title", "tasks", "update_mask"]);
        assert!(apply(&mut content(), &[], &Occupation::default()).is_err());
    }

    #[test]
    fn a_new_seeded_row_changes_every_field() {
        assert_eq!(seeded_changes(None, &content()).len(), 5);
        assert!(seeded_changes(Some(&content()), &content()).is_empty());
    }
}
