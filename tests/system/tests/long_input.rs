//! Hostile input, long values: a 100,000-character value in each string field of the
//! create routes, from a caller holding every role, through the gateway to the four
//! services. The answer is always a 4xx that names the field, never a 5xx (an echoed
//! value once made the gRPC status too large for HTTP/2's headers, which reached the
//! caller as a 500).

use common::{AllServices, call};
use serde_json::{Value, json};

mod common;

const LONG: usize = 100_000;

/// Every string leaf of `value`, as (path for messages, the key that names it).
fn string_leaves(value: &Value, path: &str, key: &str, found: &mut Vec<(String, String)>) {
    match value {
        Value::String(_) => found.push((path.to_owned(), key.to_owned())),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                string_leaves(item, &format!("{path}[{index}]"), key, found);
            }
        }
        Value::Object(fields) => {
            for (name, item) in fields {
                let inner = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                string_leaves(item, &inner, name, found);
            }
        }
        _ => {}
    }
}

/// `value` with the string at `path` replaced by a long one.
fn with_long(value: &Value, path: &str) -> Value {
    let mut copy = value.clone();
    let pointer = format!("/{}", path.replace(['.', '['], "/").replace(']', ""));
    if let Some(leaf) = copy.pointer_mut(&pointer) {
        *leaf = Value::String("x".repeat(LONG));
    }
    copy
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_value_in_any_string_field_is_a_400_naming_it() -> anyhow::Result<()> {
    let system = AllServices::start().await?;
    let port = system.gateway.http_port;
    let token = system.every_role("hostile")?;
    let send = |path: String, body: &Value| {
        call(
            port,
            "POST",
            path,
            vec![
                ("Authorization".into(), format!("Bearer {token}")),
                ("Content-Type".into(), "application/json".into()),
            ],
            body.to_string().into_bytes(),
        )
    };

    // A client to hang the client routes on, with consent to refer.
    let created = send(
        "/v1/clients".into(),
        &json!({"name": "Ada Long", "date_of_birth": "2009-05-01", "stage": "school_year_11"}),
    )
    .await?;
    assert_eq!(created.status, 201, "{}", created.body);
    let client: Value = serde_json::from_str(&created.body)?;
    let client = client["id"].as_str().unwrap_or_default().to_owned();
    let consent = json!({"purpose": "ambassador_sharing", "granted": true});
    let consented = send(format!("/v1/clients/{client}/consents"), &consent).await?;
    assert_eq!(consented.status, 201, "{}", consented.body);

    let routes: Vec<(String, Value)> = vec![
        (
            "/v1/clients".into(),
            json!({"name": "Ada Long", "date_of_birth": "2009-05-01", "stage": "school_year_11",
                   "school_urn": "105574", "postcode_district": "M21"}),
        ),
        (
            format!("/v1/clients/{client}/notes"),
            json!({"text": "Interested in robotics."}),
        ),
        (
            format!("/v1/clients/{client}/interactions"),
            json!({"date": "2025-10-01", "channel": "face_to_face", "type": "guidance_interview"}),
        ),
        (format!("/v1/clients/{client}/consents"), consent.clone()),
        (
            format!("/v1/clients/{client}/referrals"),
            json!({"activity_type": "mentoring", "subjects": ["physics"],
                   "earliest": "2027-01-10", "latest": "2027-02-10"}),
        ),
        (
            format!("/v1/clients/{client}/transfers"),
            json!({"to_org": "college-2"}),
        ),
        (
            "/v1/ambassadors".into(),
            json!({"name": "Grace Example", "employer": "Example Rail Ltd", "soc_code": "2122",
                   "subjects": ["physics"], "postcode_district": "M1", "travel_radius_km": 25.0,
                   "availability": {"weekdays": ["monday"],
                                    "ranges": [{"from": "2027-01-01", "to": "2027-03-01"}]},
                   "monthly_capacity": 2, "dbs_checked_on": "2026-11-01",
                   "training": ["safeguarding"]}),
        ),
        (
            "/v1/activity-requests".into(),
            json!({"school_urn": "105574", "activity_type": "careers_talk",
                   "subjects": ["physics"], "year_group": 10, "audience_size": 30,
                   "window": {"from": "2027-01-10", "to": "2027-02-10"},
                   "ambassadors_wanted": 1, "preferred_sector": "rail"}),
        ),
        (
            "/v1/lmi/sscs".into(),
            json!({"id": "energy", "name": "Energy SSC", "footprint": "minor:812"}),
        ),
        (
            "/v1/lmi/submissions".into(),
            json!({"submission_key": "long-1", "rows": []}),
        ),
    ];
    let mut checked = 0;
    let mut failures = Vec::new();
    for (path, body) in &routes {
        let mut leaves = Vec::new();
        string_leaves(body, "", "", &mut leaves);
        for (leaf, field) in leaves {
            let answer = send(path.clone(), &with_long(body, &leaf)).await?;
            checked += 1;
            let problem: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
            // The field itself, or the list or object holding it (`availability.ranges`).
            let names = |named: &str| {
                !named.is_empty() && (named.contains(&field) || leaf.starts_with(named))
            };
            let named = problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|error| error["field"].as_str().is_some_and(names))
                || problem["detail"]
                    .as_str()
                    .is_some_and(|detail| detail.contains(&field));
            let short = answer.body.len() < 4_000;
            if !(answer.status == 400 && named && short) {
                failures.push(format!(
                    "POST {path} with a long {leaf}: {} {}",
                    answer.status,
                    answer.body.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    println!("long input: {checked} fields checked");
    assert!(
        failures.is_empty(),
        "{} of {checked} fields not refused with a short 400 naming them:\n{}",
        failures.len(),
        failures.join("\n")
    );
    system.stop().await
}
