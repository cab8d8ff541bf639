//! The register's rules: what a valid ambassador and a valid activity request are, and
//! how stored rows become the API's messages and the matcher's inputs.

use std::collections::{BTreeMap, BTreeSet};

use careers_proto::careers::ambassadors::v1 as api;
use chrono::{Datelike, Months, NaiveDate};

use crate::{
    error::AmbassadorsError,
    geo::{Places, Point},
    matching,
    store::{AmbassadorRow, RequestRow},
};

mod messages;
pub use messages::*;

/// Subjects requests ask for and ambassadors offer.
pub const SUBJECTS: [&str; 8] = [
    "maths",
    "physics",
    "chemistry",
    "biology",
    "computing",
    "design_technology",
    "engineering",
    "careers",
];

/// Activity types; the same words casenotes' referrals carry.
pub const ACTIVITY_TYPES: [&str; 6] = [
    "talk",
    "workshop",
    "careers_fair",
    "mentoring",
    "workplace_visit",
    "mock_interview",
];

const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// STEM disciplines a request may prefer (or a SOC 2020 sub-major group code).
const DISCIPLINES: [&str; 5] = [
    "science",
    "engineering",
    "technology",
    "mathematics",
    "health",
];

/// A DBS check counts for three years.
const DBS_VALID_MONTHS: u32 = 36;

/// The longest window a request may give.
const MAX_WINDOW_DAYS: i64 = 366;

fn date(
    field: &'static str,
    value: &str,
    problems: &mut Vec<(&'static str, String)>,
) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(date) => Some(date),
        Err(_) => {
            problems.push((field, format!("{value:?} is not a date (YYYY-MM-DD)")));
            None
        }
    }
}

fn words(
    field: &'static str,
    values: &[String],
    vocabulary: &[&str],
    required: bool,
    problems: &mut Vec<(&'static str, String)>,
) -> BTreeSet<String> {
    if required && values.is_empty() {
        problems.push((
            field,
            format!("give at least one of: {}", vocabulary.join(", ")),
        ));
    }
    for value in values {
        if !vocabulary.contains(&value.as_str()) {
            problems.push((
                field,
                format!("{value:?} is not one of: {}", vocabulary.join(", ")),
            ));
        }
    }
    values.iter().cloned().collect()
}

fn text(field: &'static str, value: &str, max: usize, problems: &mut Vec<(&'static str, String)>) {
    if value.trim().is_empty() {
        problems.push((field, "must not be empty".to_owned()));
    } else if value.chars().count() > max {
        problems.push((field, format!("at most {max} characters")));
    }
}

fn free_list(field: &'static str, values: &[String], problems: &mut Vec<(&'static str, String)>) {
    if values.len() > 20 {
        problems.push((field, "at most 20 entries".to_owned()));
    }
    for value in values {
        text(field, value, 100, problems);
    }
}

fn json(values: &impl serde::Serialize) -> String {
    serde_json::to_string(values).unwrap_or_else(|_| "[]".to_owned())
}

/// Checks a registration against the register's rules and the places and catalogue it
/// names; `today` decides whether the DBS check is still valid.
pub fn new_ambassador(
    message: &api::RegisterAmbassadorRequest,
    places: &Places,
    known_occupation: bool,
    today: NaiveDate,
    id: String,
    created_at: i64,
) -> Result<AmbassadorRow, AmbassadorsError> {
    let mut problems = Vec::new();
    text("name", &message.name, 200, &mut problems);
    text("employer", &message.employer, 200, &mut problems);
    if !careers_proto::soc::is_soc_code(&message.soc_code) {
        problems.push((
            "soc_code",
            format!(
                "{:?} is not a SOC 2020 unit group code (four digits)",
                message.soc_code
            ),
        ));
    }
    words(
        "subjects",
        &message.subjects,
        &SUBJECTS,
        true,
        &mut problems,
    );
    free_list("expertise", &message.expertise, &mut problems);
    free_list("training", &message.training, &mut problems);
    if !(1.0..=200.0).contains(&message.travel_radius_km) {
        problems.push(("travel_radius_km", "from 1 to 200 km".to_owned()));
    }
    if !(1..=20).contains(&message.monthly_capacity) {
        problems.push((
            "monthly_capacity",
            "from 1 to 20 engagements a month".to_owned(),
        ));
    }
    let availability = message.availability.clone().unwrap_or_default();
    words(
        "availability.weekdays",
        &availability.weekdays,
        &WEEKDAYS,
        true,
        &mut problems,
    );
    if availability.ranges.is_empty() {
        problems.push((
            "availability.ranges",
            "give at least one date range".to_owned(),
        ));
    }
    let mut empty_range = false;
    for range in &availability.ranges {
        let from = date("availability.ranges", &range.from, &mut problems);
        let to = date("availability.ranges", &range.to, &mut problems);
        if let (Some(from), Some(to)) = (from, to) {
            empty_range |= to < from;
        }
    }
    let checked_on = date("dbs_checked_on", &message.dbs_checked_on, &mut problems);
    if checked_on.is_some_and(|checked| checked > today) {
        problems.push(("dbs_checked_on", "is in the future".to_owned()));
    }
    if !problems.is_empty() {
        return Err(AmbassadorsError::Invalid(problems));
    }
    if empty_range {
        return Err(AmbassadorsError::Rejected {
            code: "empty_window",
            field: "availability.ranges",
            message: "a range ends before it starts".to_owned(),
        });
    }
    let Some(district) = places.district(&message.postcode_district) else {
        return Err(AmbassadorsError::Rejected {
            code: "unknown_postcode_district",
            field: "postcode_district",
            message: format!(
                "{:?} is not a UK postcode district (the outward code, such as M1 or SW1A)",
                message.postcode_district
            ),
        });
    };
    if !known_occupation {
        return Err(AmbassadorsError::Rejected {
            code: "unknown_soc_code",
            field: "soc_code",
            message: format!("{} is not a unit group of the catalogue", message.soc_code),
        });
    }
    let expires = checked_on
        .and_then(|checked| checked.checked_add_months(Months::new(DBS_VALID_MONTHS)))
        .unwrap_or(today);
    if expires <= today {
        return Err(AmbassadorsError::Rejected {
            code: "dbs_expired",
            field: "dbs_checked_on",
            message: format!("the DBS check expired on {expires}; register after a new check"),
        });
    }
    Ok(AmbassadorRow {
        id,
        name: message.name.trim().to_owned(),
        employer: message.employer.trim().to_owned(),
        soc_code: message.soc_code.clone(),
        subjects: json(&message.subjects.iter().collect::<BTreeSet<_>>()),
        expertise: json(&message.expertise),
        training: json(&message.training),
        postcode_district: message.postcode_district.trim().to_ascii_uppercase(),
        latitude: district.centroid.latitude,
        longitude: district.centroid.longitude,
        district_terminated: district.terminated,
        travel_radius_km: message.travel_radius_km,
        availability: json(&availability),
        monthly_capacity: i64::from(message.monthly_capacity),
        dbs_checked_on: message.dbs_checked_on.clone(),
        dbs_expires_on: expires.to_string(),
        synthetic: false,
        erased: false,
        created_at,
        version: 1,
    })
}

/// A stored registration as the request that would make it (no role model: it is
/// sealed and patched on its own).
pub fn registration_of(
    row: &AmbassadorRow,
) -> Result<api::RegisterAmbassadorRequest, AmbassadorsError> {
    Ok(api::RegisterAmbassadorRequest {
        name: row.name.clone(),
        employer: row.employer.clone(),
        soc_code: row.soc_code.clone(),
        subjects: list(&row.subjects)?,
        expertise: list(&row.expertise)?,
        postcode_district: row.postcode_district.clone(),
        travel_radius_km: row.travel_radius_km,
        availability: Some(
            serde_json::from_str(&row.availability)
                .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?,
        ),
        monthly_capacity: u32::try_from(row.monthly_capacity).unwrap_or(0),
        dbs_checked_on: row.dbs_checked_on.clone(),
        training: list(&row.training)?,
        role_model: None,
        role_model_consent: false,
    })
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(fields) = target {
        for (key, change) in changes {
            if change.is_null() {
                fields.remove(key);
            } else {
                merge_patch(
                    fields.entry(key.clone()).or_insert(serde_json::Value::Null),
                    change,
                );
            }
        }
    }
}

/// The role-model attributes given, checked; None when none are given. They need the
/// ambassador's consent.
pub fn role_model(
    message: &api::RegisterAmbassadorRequest,
) -> Result<Option<api::RoleModel>, AmbassadorsError> {
    let Some(model) = message
        .role_model
        .clone()
        .filter(|model| *model != api::RoleModel::default())
    else {
        return Ok(None);
    };
    if !message.role_model_consent {
        return Err(AmbassadorsError::ConsentRequired);
    }
    let mut problems = Vec::new();
    for (field, value) in [
        ("role_model.gender", &model.gender),
        ("role_model.ethnicity", &model.ethnicity),
    ] {
        if value.chars().count() > 50 {
            problems.push((field, "at most 50 characters".to_owned()));
        }
    }
    if problems.is_empty() {
        Ok(Some(model))
    } else {
        Err(AmbassadorsError::Invalid(problems))
    }
}

/// The matcher's `kind:value` attributes of a role model.
pub fn attributes(model: &api::RoleModel) -> BTreeSet<String> {
    let mut attributes = BTreeSet::new();
    for (kind, value) in [("gender", &model.gender), ("ethnicity", &model.ethnicity)] {
        let value = value.trim().to_lowercase();
        if !value.is_empty() {
            attributes.insert(format!("{kind}:{value}"));
        }
    }
    if model.first_in_family_at_university {
        attributes.insert("first_in_family:yes".to_owned());
    }
    if model.apprenticeship_route {
        attributes.insert("route:apprenticeship".to_owned());
    }
    attributes
}

/// Checks a request; `school_contact` is the caller's URN when a school asks for itself.
pub fn new_request(
    message: &api::CreateActivityRequestRequest,
    places: &Places,
    today: NaiveDate,
    id: String,
    created_at: i64,
) -> Result<RequestRow, AmbassadorsError> {
    let mut problems = Vec::new();
    let urn = &message.school_urn;
    if !(urn.len() == 6 && urn.bytes().all(|byte| byte.is_ascii_digit())) {
        problems.push(("school_urn", format!("{urn:?} is not a URN (six digits)")));
    }
    if !ACTIVITY_TYPES.contains(&message.activity_type.as_str()) {
        problems.push((
            "activity_type",
            format!(
                "{:?} is not one of: {}",
                message.activity_type,
                ACTIVITY_TYPES.join(", ")
            ),
        ));
    }
    words(
        "subjects",
        &message.subjects,
        &SUBJECTS,
        false,
        &mut problems,
    );
    if !(message.year_group == 0 || (7..=13).contains(&message.year_group)) {
        problems.push((
            "year_group",
            "7 to 13, or 0 for a college or adult audience".to_owned(),
        ));
    }
    if !(1..=2000).contains(&message.audience_size) {
        problems.push(("audience_size", "from 1 to 2,000".to_owned()));
    }
    if !(1..=10).contains(&message.ambassadors_wanted) {
        problems.push(("ambassadors_wanted", "from 1 to 10".to_owned()));
    }
    let sector = message.preferred_sector.as_str();
    if !(sector.is_empty()
        || DISCIPLINES.contains(&sector)
        || (sector.len() == 2 && sector.bytes().all(|byte| byte.is_ascii_digit())))
    {
        problems.push((
            "preferred_sector",
            format!(
                "{sector:?} is neither a STEM discipline ({}) nor a SOC 2020 sub-major group",
                DISCIPLINES.join(", ")
            ),
        ));
    }
    let window = message.window.clone().unwrap_or_default();
    let from = date("window.from", &window.from, &mut problems);
    let to = date("window.to", &window.to, &mut problems);
    if !problems.is_empty() {
        return Err(AmbassadorsError::Invalid(problems));
    }
    let (Some(from), Some(to)) = (from, to) else {
        return Err(AmbassadorsError::Invalid(vec![(
            "window",
            "give from and to".to_owned(),
        )]));
    };
    if to < from || to < today {
        return Err(AmbassadorsError::Rejected {
            code: "empty_window",
            field: "window",
            message: if to < from {
                format!("the window ends ({to}) before it starts ({from})")
            } else {
                format!("the window ended on {to}")
            },
        });
    }
    if (to - from).num_days() >= MAX_WINDOW_DAYS {
        return Err(AmbassadorsError::Invalid(vec![(
            "window",
            format!("at most {MAX_WINDOW_DAYS} days"),
        )]));
    }
    let Some(school) = places.school(urn) else {
        return Err(AmbassadorsError::Rejected {
            code: "unknown_school",
            field: "school_urn",
            message: format!("{urn} is not an open school or college in the DfE list"),
        });
    };
    let Some(location) = school.location else {
        return Err(AmbassadorsError::Rejected {
            code: "school_location_unknown",
            field: "school_urn",
            message: format!(
                "{} ({urn}) has no postcode with coordinates, so nobody can be matched by distance",
                school.name
            ),
        });
    };
    Ok(RequestRow {
        id,
        school_urn: urn.clone(),
        school_name: school.name.clone(),
        latitude: location.latitude,
        longitude: location.longitude,
        activity_type: message.activity_type.clone(),
        subjects: json(&message.subjects.iter().collect::<BTreeSet<_>>()),
        year_group: i64::from(message.year_group),
        audience_size: i64::from(message.audience_size),
        window_from: from.max(today).to_string(),
        window_to: to.to_string(),
        ambassadors_wanted: i64::from(message.ambassadors_wanted),
        preferred_sector: message.preferred_sector.clone(),
        wants_diversity: message.wants_diversity,
        status: "open".to_owned(),
        referral_id: None,
        client_id: None,
        created_at,
    })
}

/// The request a casenotes referral becomes (its id and time set by the caller): one
/// ambassador, for the client's school if it has coordinates, else at the centroid of the
/// client's postcode district. An error says why the referral cannot be placed.
pub fn referred_request(
    referral: &careers_proto::careers::casenotes::events::v1::ReferralRequested,
    places: &Places,
    today: NaiveDate,
) -> Result<RequestRow, String> {
    let school = places
        .school(&referral.school_urn)
        .and_then(|school| school.location.map(|location| (school, location)));
    let (school_urn, school_name, location) = match school {
        Some((school, location)) => (school.urn.clone(), school.name.clone(), location),
        None => match places.district(&referral.postcode_district) {
            Some(district) => (String::new(), String::new(), district.centroid),
            None => {
                return Err(format!(
                    "referral {}: neither school {:?} nor postcode district {:?} can be located",
                    referral.referral_id, referral.school_urn, referral.postcode_district
                ));
            }
        },
    };
    let parse = |text: &str| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    let from = parse(&referral.earliest).unwrap_or(today).max(today);
    let to = parse(&referral.latest)
        .filter(|to| *to >= from)
        .unwrap_or_else(|| from.checked_add_days(chrono::Days::new(55)).unwrap_or(from));
    let activity_type = if ACTIVITY_TYPES.contains(&referral.activity_type.as_str()) {
        referral.activity_type.clone()
    } else {
        "mentoring".to_owned()
    };
    let subjects: BTreeSet<&String> = referral
        .subjects
        .iter()
        .filter(|subject| SUBJECTS.contains(&subject.as_str()))
        .collect();
    let year_group = referral
        .stage
        .strip_prefix("school_year_")
        .and_then(|year| year.parse::<i64>().ok())
        .unwrap_or(0);
    Ok(RequestRow {
        id: String::new(),
        school_urn,
        school_name,
        latitude: location.latitude,
        longitude: location.longitude,
        activity_type,
        subjects: json(&subjects),
        year_group,
        audience_size: 1,
        window_from: from.to_string(),
        window_to: to.to_string(),
        ambassadors_wanted: 1,
        preferred_sector: String::new(),
        wants_diversity: false,
        status: "open".to_owned(),
        referral_id: Some(referral.referral_id.clone()),
        client_id: Some(referral.client_id.clone()),
        created_at: 0,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn places() -> Places {
        match Places::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../seeds")) {
            Ok(places) => places,
            Err(error) => panic!("{error}"),
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, 1, 4).unwrap_or_default()
    }

    fn registration() -> api::RegisterAmbassadorRequest {
        api::RegisterAmbassadorRequest {
            name: "Ada Example".into(),
            employer: "Example Engineering Ltd".into(),
            soc_code: "2122".into(),
            subjects: vec!["physics".into(), "engineering".into()],
            expertise: vec!["bridges".into()],
            postcode_district: "m1".into(),
            travel_radius_km: 25.0,
            availability: Some(api::Availability {
                weekdays: vec!["tuesday".into(), "thursday".into()],
                ranges: vec![api::DateRange {
                    from: "2027-01-01".into(),
                    to: "2027-07-31".into(),
                }],
            }),
            monthly_capacity: 2,
            dbs_checked_on: "2025-06-01".into(),
            training: vec!["safeguarding".into()],
            role_model: None,
            role_model_consent: false,
        }
    }

    fn code(result: Result<impl std::fmt::Debug, AmbassadorsError>) -> String {
        match result {
            Err(AmbassadorsError::Rejected { code, .. }) => code.to_owned(),
            Err(AmbassadorsError::Invalid(fields)) => format!("invalid {fields:?}"),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn a_registration_is_checked_against_places_catalogue_and_dbs() {
        let places = places();
        let register = |message: &api::RegisterAmbassadorRequest, known: bool| {
            new_ambassador(message, &places, known, today(), "a".into(), 0)
        };
        let Ok(row) = register(&registration(), true) else {
            panic!("a good registration was refused");
        };
        assert_eq!(row.postcode_district, "M1");
        assert_eq!(row.dbs_expires_on, "2028-06-01");
        assert!(!row.district_terminated);
        assert_eq!(code(register(&registration(), false)), "unknown_soc_code");
        let elsewhere = api::RegisterAmbassadorRequest {
            postcode_district: "ZZ99".into(),
            ..registration()
        };
        assert_eq!(
            code(register(&elsewhere, true)),
            "unknown_postcode_district"
        );
        let retired = api::RegisterAmbassadorRequest {
            postcode_district: "AB1".into(),
            ..registration()
        };
        assert!(register(&retired, true).is_ok_and(|row| row.district_terminated));
        let lapsed = api::RegisterAmbassadorRequest {
            dbs_checked_on: "2023-12-01".into(),
            ..registration()
        };
        assert_eq!(code(register(&lapsed, true)), "dbs_expired");
        let backwards = api::RegisterAmbassadorRequest {
            availability: Some(api::Availability {
                weekdays: vec!["monday".into()],
                ranges: vec![api::DateRange {
                    from: "2027-03-01".into(),
                    to: "2027-02-01".into(),
                }],
            }),
            ..registration()
        };
        assert_eq!(code(register(&backwards, true)), "empty_window");
        let sloppy = api::RegisterAmbassadorRequest {
            name: " ".into(),
            soc_code: "21".into(),
            subjects: vec!["alchemy".into()],
            ..registration()
        };
        let found = code(register(&sloppy, true));
        for field in ["name", "soc_code", "subjects"] {
            assert!(found.contains(field), "{field}: {found}");
        }
    }

    fn asking() -> api::CreateActivityRequestRequest {
        api::CreateActivityRequestRequest {
            school_urn: "100000".into(),
            activity_type: "talk".into(),
            subjects: vec!["physics".into()],
            year_group: 9,
            audience_size: 60,
            window: Some(api::DateRange {
                from: "2027-02-01".into(),
                to: "2027-02-26".into(),
            }),
            ambassadors_wanted: 2,
            preferred_sector: "engineering".into(),
            wants_diversity: true,
        }
    }

    #[test]
    fn a_request_needs_a_located_school_and_a_window() {
        let places = places();
        let create = |message: &api::CreateActivityRequestRequest| {
            new_request(message, &places, today(), "r".into(), 0)
        };
        let Ok(row) = create(&asking()) else {
            panic!("a good request was refused");
        };
        assert_eq!(row.school_name, "The Aldgate School");
        assert_eq!(row.status, "open");
        let unknown = api::CreateActivityRequestRequest {
            school_urn: "999999".into(),
            ..asking()
        };
        assert_eq!(code(create(&unknown)), "unknown_school");
        let unlocated = places
            .schools()
            .into_iter()
            .find(|school| school.location.is_none())
            .map(|school| school.urn.clone())
            .unwrap_or_default();
        let nowhere = api::CreateActivityRequestRequest {
            school_urn: unlocated,
            ..asking()
        };
        assert_eq!(code(create(&nowhere)), "school_location_unknown");
        let empty = api::CreateActivityRequestRequest {
            window: Some(api::DateRange {
                from: "2027-02-10".into(),
                to: "2027-02-09".into(),
            }),
            ..asking()
        };
        assert_eq!(code(create(&empty)), "empty_window");
        let past = api::CreateActivityRequestRequest {
            window: Some(api::DateRange {
                from: "2026-11-01".into(),
                to: "2026-11-30".into(),
            }),
            ..asking()
        };
        assert_eq!(code(create(&past)), "empty_window");
    }

    #[test]
    fn academic_years_start_in_september() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or_default();
        assert_eq!(academic_year_start(day(2027, 1, 4)), day(2026, 9, 1));
        assert_eq!(academic_year_start(day(2026, 9, 1)), day(2026, 9, 1));
        assert_eq!(academic_year_start(day(2026, 8, 31)), day(2025, 9, 1));
    }

    #[test]
    fn availability_counts_only_who_could_come() -> Result<(), AmbassadorsError> {
        let places = places();
        let row = new_ambassador(&registration(), &places, true, today(), "a".into(), 0)?;
        let query = |district: &str| {
            availability_query(
                &places,
                &api::CountAvailableAmbassadorsRequest {
                    soc_code: "2122".into(),
                    postcode_district: district.into(),
                },
            )
        };
        // Manchester M1 to M21 is a few km; to Aberdeen it is hundreds.
        assert!(available_for(&row, query("M21")?, today())?);
        assert!(available_for(&row, query("")?, today())?);
        assert!(!available_for(&row, query("AB10")?, today())?);
        // Availability over, or the DBS check expired: not available anywhere.
        let later = NaiveDate::from_ymd_opt(2027, 8, 1).unwrap_or_default();
        assert!(!available_for(&row, None, later)?);
        let expired = AmbassadorRow {
            dbs_expires_on: "2027-01-03".into(),
            ..row.clone()
        };
        assert!(!available_for(&expired, None, today())?);
        assert_eq!(code(query("ZZ99")), "unknown_postcode_district");
        let malformed = availability_query(
            &places,
            &api::CountAvailableAmbassadorsRequest {
                soc_code: "21".into(),
                postcode_district: String::new(),
            },
        );
        assert!(code(malformed).starts_with("invalid"));
        Ok(())
    }
}
