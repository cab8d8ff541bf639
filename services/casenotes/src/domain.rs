//! The client record's rules, checked before anything is stored: every problem of a
//! request is reported at once, each naming its field.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};

/// CONTRACT.md's stages.
pub const STAGES: [&str; 13] = [
    "school_year_7",
    "school_year_8",
    "school_year_9",
    "school_year_10",
    "school_year_11",
    "school_year_12",
    "school_year_13",
    "further_education",
    "higher_education",
    "employed",
    "unemployed",
    "career_changer",
    "other",
];

/// Priority groups an adviser may record (the National Careers Service's priority groups,
/// as codes).
pub const PRIORITY_GROUPS: [&str; 8] = [
    "care_experienced",
    "send",
    "neet_or_at_risk",
    "low_income",
    "disabled",
    "carer",
    "ex_offender",
    "refugee_or_asylum_seeker",
];

/// Ages a client may have when the record is created.
pub const AGES: std::ops::RangeInclusive<i32> = 11..=120;
const MAX_NAME_CHARS: usize = 200;

/// A client as an adviser submits it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewClient {
    pub name: String,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    pub stage: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Unique Learner Number: ten digits.
    pub uln: Option<String>,
    /// The outward code of a UK postcode, for example `SW1A` or `M1`.
    pub postcode_district: Option<String>,
    /// The six-digit URN of the client's school or college, where one applies.
    pub school_urn: Option<String>,
    pub priority_groups: Vec<String>,
}

/// A client that passed every rule, normalised (postcode district upper case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidClient {
    pub client: NewClient,
    pub date_of_birth: NaiveDate,
}

/// Whole years from `born` to `on`.
pub fn age_on(born: NaiveDate, on: NaiveDate) -> i32 {
    let years = on.year() - born.year();
    if (on.month(), on.day()) < (born.month(), born.day()) {
        years - 1
    } else {
        years
    }
}

fn is_postcode_district(text: &str) -> bool {
    // One or two letters, a digit, then optionally a letter or digit: A9, A99, A9A, AA9,
    // AA99, AA9A.
    let bytes = text.as_bytes();
    let letters = bytes
        .iter()
        .take_while(|byte| byte.is_ascii_uppercase())
        .count();
    (1..=2).contains(&letters)
        && match &bytes[letters..] {
            [digit] => digit.is_ascii_digit(),
            [digit, last] => digit.is_ascii_digit() && last.is_ascii_alphanumeric(),
            _ => false,
        }
}

/// Checks `client` as created on `today`.
pub fn check_new_client(
    client: NewClient,
    today: NaiveDate,
) -> Result<ValidClient, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let name = client.name.trim();
    if name.is_empty() {
        problems.push(("name", "give the client's name".to_owned()));
    } else if name.chars().count() > MAX_NAME_CHARS {
        problems.push(("name", format!("at most {MAX_NAME_CHARS} characters")));
    } else if name.chars().any(char::is_control) {
        problems.push(("name", "control characters are not allowed".to_owned()));
    }
    let born = NaiveDate::parse_from_str(&client.date_of_birth, "%Y-%m-%d").ok();
    match born {
        None => problems.push((
            "date_of_birth",
            format!("{:?} is not a date (YYYY-MM-DD)", client.date_of_birth),
        )),
        Some(born) if born > today => {
            problems.push(("date_of_birth", "is in the future".to_owned()));
        }
        Some(born) if !AGES.contains(&age_on(born, today)) => problems.push((
            "date_of_birth",
            format!(
                "gives an age of {}; clients are {} to {}",
                age_on(born, today),
                AGES.start(),
                AGES.end()
            ),
        )),
        Some(_) => {}
    }
    if !STAGES.contains(&client.stage.as_str()) {
        problems.push((
            "stage",
            format!("{:?} is not one of {}", client.stage, STAGES.join(", ")),
        ));
    }
    if let Some(email) = &client.email
        && !(email.len() <= 254
            && email
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
            && !email.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        problems.push(("email", "is not an email address".to_owned()));
    }
    if let Some(phone) = &client.phone {
        let digits = phone.chars().filter(char::is_ascii_digit).count();
        if !(10..=15).contains(&digits)
            || phone
                .chars()
                .any(|c| !(c.is_ascii_digit() || " +()-".contains(c)))
        {
            problems.push((
                "phone",
                "is not a phone number (10 to 15 digits)".to_owned(),
            ));
        }
    }
    if let Some(uln) = &client.uln
        && !(uln.len() == 10
            && uln.bytes().all(|byte| byte.is_ascii_digit())
            && !uln.starts_with('0'))
    {
        problems.push((
            "uln",
            "a Unique Learner Number is ten digits, the first not 0".to_owned(),
        ));
    }
    let postcode_district = client
        .postcode_district
        .as_ref()
        .map(|district| district.trim().to_ascii_uppercase());
    if let Some(district) = &postcode_district
        && !is_postcode_district(district)
    {
        problems.push((
            "postcode_district",
            format!("{district:?} is not the first half of a UK postcode (for example M1 or SW1A)"),
        ));
    }
    if let Some(urn) = &client.school_urn
        && !(urn.len() == 6 && urn.bytes().all(|byte| byte.is_ascii_digit()))
    {
        problems.push(("school_urn", "a URN is six digits".to_owned()));
    }
    for group in &client.priority_groups {
        if !PRIORITY_GROUPS.contains(&group.as_str()) {
            problems.push((
                "priority_groups",
                format!("{group:?} is not one of {}", PRIORITY_GROUPS.join(", ")),
            ));
        }
    }
    match (born, problems.is_empty()) {
        (Some(date_of_birth), true) => Ok(ValidClient {
            client: NewClient {
                name: name.to_owned(),
                postcode_district,
                ..client
            },
            date_of_birth,
        }),
        _ => Err(problems),
    }
}

/// How an interaction happened.
pub const CHANNELS: [&str; 6] = [
    "face_to_face",
    "telephone",
    "video",
    "email",
    "webchat",
    "group_session",
];

/// What an interaction was; three of them are Gatsby encounters (see [`benchmark_of`]).
pub const INTERACTION_TYPES: [&str; 7] = [
    "guidance_interview",
    "employer_encounter",
    "workplace_experience",
    "careers_event",
    "information",
    "follow_up",
    "other",
];

/// Consent purposes.
pub const PURPOSES: [&str; 3] = ["recording", "ambassador_sharing", "research"];

/// Activities a referral can ask a STEM Ambassador for.
pub const ACTIVITY_TYPES: [&str; 6] = [
    "talk",
    "workshop",
    "careers_fair",
    "mentoring",
    "workplace_visit",
    "mock_interview",
];

/// The Gatsby benchmark an interaction type counts towards: 5 (encounters with employers
/// and employees), 6 (experiences of workplaces), 8 (personal guidance).
pub fn benchmark_of(interaction_type: &str) -> Option<i32> {
    match interaction_type {
        "employer_encounter" => Some(5),
        "workplace_experience" => Some(6),
        "guidance_interview" => Some(8),
        _ => None,
    }
}

/// The Gatsby benchmark a completed ambassador activity counts towards.
pub fn benchmark_of_activity(activity_type: &str) -> i32 {
    if activity_type == "workplace_visit" {
        6
    } else {
        5
    }
}

/// The academic year (1 September to 31 August) holding `date`, by its starting year.
pub fn academic_year_of(date: NaiveDate) -> i32 {
    if date.month() >= 9 {
        date.year()
    } else {
        date.year() - 1
    }
}

fn date(
    field: &'static str,
    text: &str,
    problems: &mut Vec<(&'static str, String)>,
) -> Option<NaiveDate> {
    let parsed = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
    if parsed.is_none() {
        problems.push((field, format!("{text:?} is not a date (YYYY-MM-DD)")));
    }
    parsed
}

fn one_of(
    field: &'static str,
    value: &str,
    allowed: &[&str],
    problems: &mut Vec<(&'static str, String)>,
) {
    if !allowed.contains(&value) {
        problems.push((
            field,
            format!("{value:?} is not one of {}", allowed.join(", ")),
        ));
    }
}

/// Checks an interaction: a real date, not in the future; known channel and type.
pub fn check_interaction(
    on: &str,
    channel: &str,
    kind: &str,
    today: NaiveDate,
) -> Result<NaiveDate, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let parsed = date("date", on, &mut problems);
    if let Some(parsed) = parsed
        && parsed > today
    {
        problems.push(("date", "is in the future".to_owned()));
    }
    one_of("channel", channel, &CHANNELS, &mut problems);
    one_of("type", kind, &INTERACTION_TYPES, &mut problems);
    match parsed {
        Some(parsed) if problems.is_empty() => Ok(parsed),
        _ => Err(problems),
    }
}

/// Checks a consent entry.
pub fn check_consent(
    purpose: &str,
    granted: Option<bool>,
) -> Result<bool, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    one_of("purpose", purpose, &PURPOSES, &mut problems);
    if granted.is_none() {
        problems.push((
            "granted",
            "say true to grant or false to withdraw".to_owned(),
        ));
    }
    match granted {
        Some(granted) if problems.is_empty() => Ok(granted),
        _ => Err(problems),
    }
}

/// A referral as an adviser submits it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewReferral {
    pub activity_type: String,
    pub subjects: Vec<String>,
    pub soc_codes: Vec<String>,
    pub earliest: String,
    pub latest: String,
}

/// Checks a referral: a known activity, SOC 2020 unit group codes, short subject codes and
/// a date window that has not ended.
pub fn check_referral(
    referral: &NewReferral,
    today: NaiveDate,
) -> Result<(), Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    one_of(
        "activity_type",
        &referral.activity_type,
        &ACTIVITY_TYPES,
        &mut problems,
    );
    for subject in &referral.subjects {
        if subject.is_empty()
            || subject.len() > 50
            || !subject
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte == b'_')
        {
            problems.push((
                "subjects",
                format!("{subject:?} is not a subject code (lowercase letters and _, for example computing)"),
            ));
        }
    }
    for code in &referral.soc_codes {
        if !(code.len() == 4
            && code.bytes().all(|byte| byte.is_ascii_digit())
            && !code.starts_with('0'))
        {
            problems.push((
                "soc_codes",
                format!("{code:?} is not a SOC 2020 unit group code"),
            ));
        }
    }
    let earliest = date("earliest", &referral.earliest, &mut problems);
    let latest = date("latest", &referral.latest, &mut problems);
    if let (Some(earliest), Some(latest)) = (earliest, latest) {
        if earliest > latest {
            problems.push(("latest", "is before earliest".to_owned()));
        }
        if latest < today {
            problems.push(("latest", "the window has already ended".to_owned()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Where an action stands.
pub const ACTION_STATUSES: [&str; 4] = ["not_started", "in_progress", "done", "dropped"];
/// The most actions a plan holds.
pub const MAX_ACTIONS: usize = 50;
const MAX_GOAL_CHARS: usize = 1_000;

/// One action as submitted: (goal, due date, status, SOC codes).
pub type NewAction<'a> = (&'a str, &'a str, &'a str, &'a [String]);

/// Checks a plan's actions; `known` says whether a SOC code is in the catalogue.
pub fn check_actions(
    actions: &[NewAction<'_>],
    known: impl Fn(&str) -> bool,
) -> Result<(), Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    if actions.len() > MAX_ACTIONS {
        problems.push(("actions", format!("at most {MAX_ACTIONS} actions")));
    }
    for (index, (goal, due_date, status, soc_codes)) in actions.iter().enumerate() {
        let at = |problem: String| ("actions", format!("action {}: {problem}", index + 1));
        if goal.trim().is_empty() {
            problems.push(at("give the goal".to_owned()));
        } else if goal.chars().count() > MAX_GOAL_CHARS {
            problems.push(at(format!(
                "the goal is at most {MAX_GOAL_CHARS} characters"
            )));
        }
        if NaiveDate::parse_from_str(due_date, "%Y-%m-%d").is_err() {
            problems.push(at(format!(
                "due_date {due_date:?} is not a date (YYYY-MM-DD)"
            )));
        }
        if !ACTION_STATUSES.contains(status) {
            problems.push(at(format!(
                "status {status:?} is not one of {}",
                ACTION_STATUSES.join(", ")
            )));
        }
        for code in *soc_codes {
            if !known(code) {
                problems.push(at(format!(
                    "SOC code {code:?} is not an occupation in the catalogue"
                )));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Destinations a client can reach.
pub const OUTCOME_TYPES: [&str; 8] = [
    "employment",
    "apprenticeship",
    "further_education",
    "higher_education",
    "training",
    "volunteering",
    "not_in_education_employment_or_training",
    "other",
];

/// Checks an outcome: a real date, not in the future; a known type; a catalogue SOC code.
pub fn check_outcome(
    on: &str,
    kind: &str,
    soc_code: Option<&str>,
    known: impl Fn(&str) -> bool,
    today: NaiveDate,
) -> Result<NaiveDate, Vec<(&'static str, String)>> {
    let mut problems = Vec::new();
    let parsed = date("date", on, &mut problems);
    if let Some(parsed) = parsed
        && parsed > today
    {
        problems.push(("date", "is in the future".to_owned()));
    }
    one_of("type", kind, &OUTCOME_TYPES, &mut problems);
    if let Some(code) = soc_code
        && !known(code)
    {
        problems.push((
            "soc_code",
            format!("{code:?} is not an occupation in the catalogue"),
        ));
    }
    match parsed {
        Some(parsed) if problems.is_empty() => Ok(parsed),
        _ => Err(problems),
    }
}

/// An instant as the store keeps it: microseconds since the epoch.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A stored instant as the API shows it: RFC 3339, UTC, to the microsecond.
pub(crate) fn instant(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
    }

    fn client(date_of_birth: &str) -> NewClient {
        NewClient {
            name: "Sam Taylor".into(),
            date_of_birth: date_of_birth.into(),
            stage: "school_year_9".into(),
            postcode_district: Some("sw1a".into()),
            ..NewClient::default()
        }
    }

    fn fields(result: Result<ValidClient, Vec<(&'static str, String)>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|(field, _)| field)
            .collect()
    }

    #[test]
    fn ages_11_to_120_on_the_day_of_creation_are_accepted() {
        let valid = check_new_client(client("2015-11-23"), today()).unwrap();
        assert_eq!(valid.client.postcode_district.as_deref(), Some("SW1A"));
        assert!(
            check_new_client(client("1906-11-24"), today()).is_ok(),
            "120"
        );
        assert_eq!(
            fields(check_new_client(client("2015-11-24"), today())),
            ["date_of_birth"]
        );
        assert_eq!(
            fields(check_new_client(client("1905-11-23"), today())),
            ["date_of_birth"]
        );
        let future = check_new_client(client("2027-01-01"), today()).unwrap_err();
        assert!(future[0].1.contains("future"));
        assert_eq!(
            fields(check_new_client(client("23/11/2010"), today())),
            ["date_of_birth"]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_naming_its_field() {
        let all_wrong = NewClient {
            name: " ".into(),
            date_of_birth: "2010-02-30".into(),
            stage: "year_9".into(),
            email: Some("sam at example".into()),
            phone: Some("12".into()),
            uln: Some("012345678".into()),
            postcode_district: Some("SW1A 1AA".into()),
            school_urn: Some("12345".into()),
            priority_groups: vec!["vip".into()],
        };
        assert_eq!(
            fields(check_new_client(all_wrong, today())),
            [
                "name",
                "date_of_birth",
                "stage",
                "email",
                "phone",
                "uln",
                "postcode_district",
                "school_urn",
                "priority_groups"
            ]
        );
    }

    #[test]
    fn optional_details_pass_when_well_formed() {
        let full = NewClient {
            email: Some("sam@example.org".into()),
            phone: Some("+44 161 496 0000".into()),
            uln: Some("1234567890".into()),
            postcode_district: Some("M1".into()),
            school_urn: Some("100000".into()),
            priority_groups: vec!["send".into(), "care_experienced".into()],
            ..client("2012-05-01")
        };
        assert!(check_new_client(full, today()).is_ok());
        for district in ["M1", "B33", "CR2", "DN55", "W1A", "EC1A"] {
            assert!(is_postcode_district(district), "{district}");
        }
        for district in ["1M", "SW1A1", "ABC1", "M", ""] {
            assert!(!is_postcode_district(district), "{district}");
        }
    }
}
