//! STEM Ambassadors end to end with case notes, through the gateway over HTTP, the two
//! services talking over a real nats-server: a referral becomes an activity request, a
//! run matches it, the engagement goes through its life cycle, its completion becomes a
//! Gatsby encounter on the client and the school, and erasing the client removes every
//! link to it in ambassadors.

use std::time::Duration;

use careers_ambassadors::{Ambassadors, Migrator as AmbassadorsMigrator, store};
use careers_casenotes::Casenotes;
use careers_gateway::App;
use careers_platform::identity::Identity;
use careers_testkit::{
    eventually, free_port,
    nats::NatsServer,
    service::{TestKeys, spawn_trusting},
    sqlite::TestSqlite,
};
use common::{call, gateway_settings};
use sea_orm::{ConnectionTrait, Database, Statement};
use sea_orm_migration::MigratorTrait;
use serde_json::{Value, json};

mod common;

struct Gateway {
    port: u16,
    bearer: TestKeys,
}

impl Gateway {
    fn token(&self, sub: &str, role: &str, org: Option<&str>) -> anyhow::Result<String> {
        Ok(self.bearer.signer.sign_for(
            &Identity {
                sub: sub.to_owned(),
                roles: vec![role.to_owned()],
                org: org.map(str::to_owned),
                ssc: None,
            },
            "careers-dev",
            "careers",
            Duration::from_secs(600),
        )?)
    }

    async fn send(
        &self,
        token: &str,
        method: &'static str,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.send_with(token, method, path, body, "").await
    }

    /// `send` with an `If-Match` header unless `if_match` is empty.
    async fn send_with(
        &self,
        token: &str,
        method: &'static str,
        path: &str,
        body: Option<Value>,
        if_match: &str,
    ) -> anyhow::Result<(u16, Value)> {
        let mut headers = vec![
            ("Authorization".to_owned(), format!("Bearer {token}")),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ];
        if !if_match.is_empty() {
            headers.push(("If-Match".to_owned(), if_match.to_owned()));
        }
        let response = call(
            self.port,
            method,
            path.to_owned(),
            headers,
            body.map(|body| body.to_string().into_bytes())
                .unwrap_or_default(),
        )
        .await?;
        Ok((
            response.status,
            serde_json::from_str(&response.body).unwrap_or(Value::Null),
        ))
    }
}

fn day(offset: u64) -> String {
    chrono::Utc::now()
        .date_naive()
        .checked_add_days(chrono::Days::new(offset))
        .map(|date| date.to_string())
        .unwrap_or_default()
}

/// Loreto High School Chorlton, Manchester (M21).
const SCHOOL: &str = "105574";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referral_is_matched_completed_and_forgotten() -> anyhow::Result<()> {
    let nats = NatsServer::start()?;
    let nats_url = nats.url();
    let internal = std::sync::Arc::new(TestKeys::new()?);
    let casenotes_store = TestSqlite::new()?;
    let casenotes = spawn_trusting::<Casenotes>(
        &casenotes_store.url,
        &[("nats.url", nats_url.as_str())],
        &internal,
    )
    .await?;
    // ambassadors' projection of the catalogue, as OccupationUpserted leaves it.
    let ambassadors_store = TestSqlite::new()?;
    let ambassadors_db = Database::connect(ambassadors_store.url.as_str()).await?;
    AmbassadorsMigrator::up(&ambassadors_db, None).await?;
    store::apply_occupation(&ambassadors_db, "2122", 1, "21", "engineering").await?;
    let ambassadors = spawn_trusting::<Ambassadors>(
        &ambassadors_store.url,
        &[("nats.url", nats_url.as_str())],
        &internal,
    )
    .await?;
    let bearer = TestKeys::new()?;
    let closed = free_port()?;
    let app = App::build(gateway_settings(
        [
            ("occupations", closed),
            ("lmi", closed),
            ("casenotes", casenotes.port),
            ("ambassadors", ambassadors.port),
        ],
        &bearer,
        &internal,
    )?)
    .await?;
    let gateway = Gateway {
        port: app.http_port(),
        bearer,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(app.run_until(async {
        stopped.await.ok();
    }));

    let coordinator = gateway.token("coordinator-1", "ambassador_coordinator", None)?;
    let adviser = gateway.token("adviser-1", "adviser", Some("college-9"))?;
    let supervisor = gateway.token("supervisor-1", "supervisor", Some("college-9"))?;
    let school = gateway.token("head@105574", "school_contact", Some(SCHOOL))?;

    // An ambassador near the school.
    let registration = json!({
        "name": "Grace Example", "employer": "Example Rail Ltd", "soc_code": "2122",
        "subjects": ["physics", "engineering"], "postcode_district": "M1",
        "travel_radius_km": 25.0,
        "availability": {"weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
                         "ranges": [{"from": day(0), "to": day(120)}]},
        "monthly_capacity": 2, "dbs_checked_on": day(0), "training": ["safeguarding"]
    });
    let (status, ambassador) = gateway
        .send(&coordinator, "POST", "/v1/ambassadors", Some(registration))
        .await?;
    assert_eq!(status, 201, "{ambassador}");
    assert!(
        ambassador["attribution"]
            .as_str()
            .unwrap_or_default()
            .contains("OGL")
    );
    let ambassador_id = ambassador["id"].as_str().unwrap_or_default().to_owned();
    let volunteer = gateway.token(&ambassador_id, "ambassador", None)?;

    // PATCH is a merge patch with If-Match: none is 428, a stale one 409.
    let path = format!("/v1/ambassadors/{ambassador_id}");
    let patch = json!({"expertise": ["signalling"]});
    let (status, problem) = gateway
        .send(&volunteer, "PATCH", &path, Some(patch.clone()))
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (428, Some("if_match_required"))
    );
    let (status, patched) = gateway
        .send_with(&volunteer, "PATCH", &path, Some(patch.clone()), "\"1\"")
        .await?;
    assert_eq!(
        (status, patched["version"].as_i64()),
        (200, Some(2)),
        "{patched}"
    );
    assert_eq!(patched["expertise"], json!(["signalling"]));
    let (status, problem) = gateway
        .send_with(&volunteer, "PATCH", &path, Some(patch), "\"1\"")
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("version_conflict"))
    );

    // A client at that school, consenting to ambassador sharing, is referred.
    let client = json!({"name": "Kai Mensah", "date_of_birth": "2011-02-03",
                        "stage": "school_year_10", "school_urn": SCHOOL, "postcode_district": "M21"});
    let (status, client) = gateway
        .send(&adviser, "POST", "/v1/clients", Some(client))
        .await?;
    assert_eq!(status, 201, "{client}");
    let client_id = client["id"].as_str().unwrap_or_default().to_owned();
    let consent = json!({"purpose": "ambassador_sharing", "granted": true});
    let path = format!("/v1/clients/{client_id}/consents");
    assert_eq!(
        gateway
            .send(&adviser, "POST", &path, Some(consent))
            .await?
            .0,
        201
    );
    let referral = json!({"activity_type": "mentoring", "subjects": ["physics"],
                          "earliest": day(7), "latest": day(35)});
    let path = format!("/v1/clients/{client_id}/referrals");
    let (status, referral) = gateway
        .send(&adviser, "POST", &path, Some(referral))
        .await?;
    assert_eq!(status, 201, "{referral}");
    let referral_id = referral["id"].as_str().unwrap_or_default().to_owned();

    // The referral becomes an activity request for the school.
    let mut request = Value::Null;
    for _ in 0..200 {
        let (_, page) = gateway
            .send(&coordinator, "GET", "/v1/activity-requests", None)
            .await?;
        request = page["items"]
            .as_array()
            .and_then(|items| {
                items
                    .iter()
                    .find(|item| item["referral_id"] == referral_id.as_str())
            })
            .cloned()
            .unwrap_or(Value::Null);
        if !request.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(request["school_urn"], SCHOOL, "{request}");
    assert_eq!(request["activity_type"], "mentoring");
    assert_eq!(request["year_group"], 10);
    let request_id = request["id"].as_str().unwrap_or_default().to_owned();

    // A run matches it with the ambassador.
    let (status, started) = gateway
        .send(&coordinator, "POST", "/v1/matching/runs", Some(json!({})))
        .await?;
    assert_eq!(
        (status, started["status"].as_str()),
        (202, Some("running")),
        "{started}"
    );
    let run_path = format!(
        "/v1/matching/runs/{}",
        started["id"].as_str().unwrap_or_default()
    );
    let mut run = Value::Null;
    for _ in 0..200 {
        run = gateway.send(&coordinator, "GET", &run_path, None).await?.1;
        if run["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(run["status"], "done", "{run}");
    let found = run["matches"]
        .as_array()
        .and_then(|matches| {
            matches
                .iter()
                .find(|found| found["request_id"] == request_id.as_str())
        })
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(found["ambassador_id"], ambassador_id.as_str(), "{run}");
    let engagement = found["engagement_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let act = |action: &str| format!("/v1/engagements/{engagement}/{action}");

    // The life cycle, each step by its role; the wrong role is 403, the wrong state 409.
    assert_eq!(
        gateway.send(&school, "POST", &act("accept"), None).await?.0,
        403
    );
    assert_eq!(
        gateway
            .send(&volunteer, "POST", &act("confirm"), None)
            .await?
            .0,
        403
    );
    assert_eq!(
        gateway
            .send(&school, "POST", &act("complete"), None)
            .await?
            .0,
        409
    );
    let (status, accepted) = gateway
        .send(&volunteer, "POST", &act("accept"), None)
        .await?;
    assert_eq!(
        (status, accepted["status"].as_str()),
        (200, Some("accepted")),
        "{accepted}"
    );
    assert_eq!(
        gateway
            .send(&volunteer, "POST", &act("accept"), None)
            .await?
            .0,
        409
    );
    assert_eq!(
        gateway
            .send(&school, "POST", &act("confirm"), None)
            .await?
            .0,
        200
    );
    let feedback = json!({"feedback": "Great questions about signalling.", "students_reached": 1});
    let (status, completed) = gateway
        .send(&school, "POST", &act("complete"), Some(feedback))
        .await?;
    assert_eq!(
        (status, completed["status"].as_str()),
        (200, Some("completed")),
        "{completed}"
    );
    let (_, mine) = gateway
        .send(&volunteer, "GET", "/v1/engagements", None)
        .await?;
    assert_eq!(mine["items"][0]["id"], engagement.as_str(), "{mine}");
    let (_, stranger) = gateway
        .send(
            &gateway.token("other", "ambassador", None)?,
            "GET",
            "/v1/engagements",
            None,
        )
        .await?;
    assert_eq!(stranger["items"], json!([]), "{stranger}");

    // The completion is a Gatsby benchmark 5 encounter on the client and the school.
    let client_gatsby = format!("/v1/clients/{client_id}/gatsby");
    eventually(
        Duration::from_secs(20),
        "the client's encounter",
        || async {
            let (_, gatsby) = gateway.send(&adviser, "GET", &client_gatsby, None).await?;
            Ok(gatsby.to_string().contains(&engagement))
        },
    )
    .await?;
    // The school's report counts it in the academic year of the activity.
    let activity: chrono::NaiveDate = completed["activity_date"]
        .as_str()
        .unwrap_or_default()
        .parse()?;
    use chrono::Datelike;
    let year = if activity.month() >= 9 {
        activity.year()
    } else {
        activity.year() - 1
    };
    let school_gatsby = format!("/v1/schools/{SCHOOL}/gatsby?academic_year={year}");
    let (status, gatsby) = gateway.send(&school, "GET", &school_gatsby, None).await?;
    assert_eq!(status, 200, "{gatsby}");
    assert!(
        gatsby["benchmarks"].as_array().is_some_and(|counts| counts
            .iter()
            .any(|count| count["benchmark"] == 5 && count["encounters"] == 1)),
        "{gatsby}"
    );

    // Erasing the client removes every link to it in ambassadors.
    let path = format!("/v1/clients/{client_id}");
    assert_eq!(
        gateway.send(&supervisor, "DELETE", &path, None).await?.0,
        204
    );
    let links = Statement::from_sql_and_values(
        ambassadors_db.get_database_backend(),
        "SELECT COUNT(*) FROM activity_requests WHERE client_id = $1 OR referral_id = $2",
        [client_id.clone().into(), referral_id.clone().into()],
    );
    eventually(Duration::from_secs(20), "the client forgotten", || async {
        let row = ambassadors_db.query_one_raw(links.clone()).await?;
        let count: i64 = row
            .map(|row| row.try_get_by_index(0))
            .transpose()?
            .unwrap_or(-1);
        Ok(count == 0)
    })
    .await?;
    let (_, request) = gateway
        .send(
            &coordinator,
            "GET",
            &format!("/v1/activity-requests/{request_id}"),
            None,
        )
        .await?;
    assert_eq!(request["referral_id"], "", "{request}");

    // Erasing the ambassador anonymises their past engagement: the school's feedback,
    // which may name them, goes; the engagement still counts.
    let path = format!("/v1/ambassadors/{ambassador_id}");
    assert_eq!(
        gateway.send(&coordinator, "DELETE", &path, None).await?.0,
        204
    );
    let (_, all) = gateway
        .send(&coordinator, "GET", "/v1/engagements", None)
        .await?;
    assert_eq!(all["items"][0]["feedback"], "", "{all}");
    assert_eq!(all["items"][0]["status"], "completed", "{all}");

    stop.send(()).ok();
    running.await??;
    ambassadors.shutdown().await?;
    casenotes.shutdown().await?;
    Ok(())
}
