//! Case notes through the gateway over HTTP/JSON: the contract's routes, shapes and
//! statuses, scoped to the caller's organisation.

use careers_casenotes::Casenotes;
use careers_gateway::App;
use careers_platform::identity::Identity;
use careers_testkit::{
    free_port,
    service::{TestKeys, spawn_trusting},
    sqlite::TestSqlite,
};
use common::{call, gateway_settings};
use serde_json::{Value, json};

mod common;

struct Gateway {
    port: u16,
    bearer: TestKeys,
}

impl Gateway {
    fn token(&self, roles: &[&str], org: &str) -> anyhow::Result<String> {
        Ok(self.bearer.signer.sign_for(
            &Identity {
                sub: format!("{}@{org}", roles.join("+")),
                roles: roles.iter().map(|role| (*role).to_owned()).collect(),
                org: Some(org.to_owned()),
                ssc: None,
            },
            "careers-dev",
            "careers",
            std::time::Duration::from_secs(600),
        )?)
    }

    async fn send(
        &self,
        token: &str,
        method: &'static str,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value, Option<String>)> {
        let mut headers = vec![
            ("Authorization".to_owned(), format!("Bearer {token}")),
            ("Content-Type".to_owned(), "application/json".to_owned()),
        ];
        headers.extend(
            extra
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
        );
        let response = call(
            self.port,
            method,
            path.to_owned(),
            headers,
            body.map(|body| body.to_string().into_bytes())
                .unwrap_or_default(),
        )
        .await?;
        let etag = response.header("etag").map(str::to_owned);
        Ok((
            response.status,
            serde_json::from_str(&response.body).unwrap_or(Value::Null),
            etag,
        ))
    }
}

#[tokio::test]
async fn case_notes_over_http() -> anyhow::Result<()> {
    // First, so the gateway and casenotes in this process log here.
    let logs = careers_testkit::logs::capture()?;
    let store = TestSqlite::new()?;
    let internal = std::sync::Arc::new(TestKeys::new()?);
    let casenotes = spawn_trusting::<Casenotes>(&store.url, &[], &internal).await?;
    let bearer = TestKeys::new()?;
    let closed = free_port()?;
    let app = App::build(gateway_settings(
        [
            ("occupations", closed),
            ("lmi", closed),
            ("casenotes", casenotes.port),
            ("ambassadors", closed),
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
    let adviser = gateway.token(&["adviser"], "org-http")?;
    let supervisor = gateway.token(&["supervisor"], "org-http")?;
    let stranger = gateway.token(&["adviser"], "org-other")?;

    let body = json!({"name": "Hana Okafor", "date_of_birth": "2009-05-01", "stage": "school_year_11",
                      "postcode_district": "LS6", "priority_groups": ["care_experienced"]});
    let (status, created, etag) = gateway
        .send(&adviser, "POST", "/v1/clients", Some(body), &[])
        .await?;
    assert_eq!(status, 201, "{created}");
    assert_eq!(etag.as_deref(), Some("\"1\""));
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    assert_eq!(created["name"], "Hana Okafor");
    assert_eq!(created["postcode_district"], "LS6");
    let client = format!("/v1/clients/{id}");

    // Bad bodies: an unknown field, a wrong type, a missing field.
    let typo = json!({"name": "A", "date_of_birth": "2009-05-01", "stage": "other", "nmae": "x"});
    assert_eq!(
        gateway
            .send(&adviser, "POST", "/v1/clients", Some(typo), &[])
            .await?
            .0,
        400
    );
    let (status, problem, _) = gateway
        .send(
            &adviser,
            "POST",
            "/v1/clients",
            Some(json!({"name": "A", "stage": "other"})),
            &[],
        )
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed"))
    );
    assert_eq!(problem["errors"][0]["field"], "date_of_birth");

    assert_eq!(
        gateway.send(&adviser, "GET", &client, None, &[]).await?.0,
        200
    );
    let (status, problem, _) = gateway.send(&stranger, "GET", &client, None, &[]).await?;
    assert_eq!((status, problem["code"].as_str()), (404, Some("not_found")));
    let (status, listed, _) = gateway
        .send(&adviser, "GET", "/v1/clients?limit=5", None, &[])
        .await?;
    assert_eq!(
        (status, listed["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    assert_eq!(listed["next_cursor"], Value::Null);

    // PATCH: If-Match required, a stale one refused, a merge patch applied.
    let patch = json!({"stage": "school_year_12", "postcode_district": null});
    let (status, problem, _) = gateway
        .send(&adviser, "PATCH", &client, Some(patch.clone()), &[])
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (428, Some("if_match_required"))
    );
    let (status, problem, _) = gateway
        .send(
            &adviser,
            "PATCH",
            &client,
            Some(patch.clone()),
            &[("If-Match", "\"9\"")],
        )
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("version_conflict"))
    );
    let (status, patched, etag) = gateway
        .send(
            &adviser,
            "PATCH",
            &client,
            Some(patch),
            &[("If-Match", "\"1\"")],
        )
        .await?;
    assert_eq!((status, etag.as_deref()), (200, Some("\"2\"")), "{patched}");
    assert_eq!(
        (patched["stage"].as_str(), &patched["postcode_district"]),
        (Some("school_year_12"), &Value::Null)
    );

    // Notes, consent, interactions, referrals.
    let (status, note, _) = gateway
        .send(
            &adviser,
            "POST",
            &format!("{client}/notes"),
            Some(json!({"text": "Interested in robotics."})),
            &[],
        )
        .await?;
    assert_eq!(status, 201, "{note}");
    let note_id = note["id"].as_str().unwrap_or_default();
    let (status, amended, _) = gateway
        .send(
            &adviser,
            "POST",
            &format!("{client}/notes/{note_id}/amendments"),
            Some(json!({"text": "And AI."})),
            &[],
        )
        .await?;
    assert_eq!((status, amended["amends"].as_str()), (201, Some(note_id)));
    let (status, notes, _) = gateway
        .send(&adviser, "GET", &format!("{client}/notes"), None, &[])
        .await?;
    assert_eq!(
        (status, notes["items"].as_array().map(Vec::len)),
        (200, Some(2))
    );
    let long = "x".repeat(20_001);
    let (status, problem, _) = gateway
        .send(
            &adviser,
            "POST",
            &format!("{client}/notes"),
            Some(json!({"text": long})),
            &[],
        )
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("note_too_long"))
    );
    let referral =
        json!({"activity_type": "talk", "earliest": "2099-01-01", "latest": "2099-02-01"});
    let (status, problem, _) = gateway
        .send(
            &adviser,
            "POST",
            &format!("{client}/referrals"),
            Some(referral.clone()),
            &[],
        )
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (409, Some("consent_required"))
    );
    let consent = json!({"purpose": "ambassador_sharing", "granted": true});
    assert_eq!(
        gateway
            .send(
                &adviser,
                "POST",
                &format!("{client}/consents"),
                Some(consent),
                &[]
            )
            .await?
            .0,
        201
    );
    assert_eq!(
        gateway
            .send(
                &adviser,
                "POST",
                &format!("{client}/referrals"),
                Some(referral),
                &[]
            )
            .await?
            .0,
        201
    );
    let interaction =
        json!({"date": "2025-10-01", "channel": "face_to_face", "type": "guidance_interview"});
    assert_eq!(
        gateway
            .send(
                &adviser,
                "POST",
                &format!("{client}/interactions"),
                Some(interaction),
                &[]
            )
            .await?
            .0,
        201
    );
    let (status, gatsby, _) = gateway
        .send(&adviser, "GET", &format!("{client}/gatsby"), None, &[])
        .await?;
    assert_eq!(
        (status, &gatsby["benchmarks"][2]["encounters"]),
        (200, &json!(1))
    );

    let outcome = json!({"date": "2025-09-01", "type": "further_education"});
    let (status, recorded, _) = gateway
        .send(
            &adviser,
            "POST",
            &format!("{client}/outcomes"),
            Some(outcome),
            &[],
        )
        .await?;
    assert_eq!(
        (status, recorded["type"].as_str()),
        (201, Some("further_education")),
        "{recorded}"
    );
    let (status, outcomes, _) = gateway
        .send(&adviser, "GET", &format!("{client}/outcomes"), None, &[])
        .await?;
    assert_eq!(
        (status, outcomes["items"].as_array().map(Vec::len)),
        (200, Some(1))
    );

    // The action plan: empty at first; SOC codes must be in the catalogue (none here).
    let (status, plan, etag) = gateway
        .send(&adviser, "GET", &format!("{client}/action-plan"), None, &[])
        .await?;
    assert_eq!(
        (status, &plan["version"], etag.as_deref()),
        (200, &json!(0), Some("\"0\""))
    );
    let actions = json!({"actions": [{"goal": "Try a taster day", "due_date": "2026-12-01",
                                      "status": "not_started", "soc_codes": ["2122"]}]});
    let (status, problem, _) = gateway
        .send(
            &adviser,
            "PUT",
            &format!("{client}/action-plan"),
            Some(actions),
            &[],
        )
        .await?;
    assert_eq!(
        (status, problem["code"].as_str()),
        (400, Some("validation_failed")),
        "{problem}"
    );
    let actions = json!({"actions": [{"goal": "Try a taster day", "due_date": "2026-12-01",
                                      "status": "not_started", "soc_codes": []}]});
    let (status, plan, etag) = gateway
        .send(
            &adviser,
            "PUT",
            &format!("{client}/action-plan"),
            Some(actions),
            &[("If-Match", "\"0\"")],
        )
        .await?;
    assert_eq!((status, etag.as_deref()), (200, Some("\"1\"")), "{plan}");

    // Audit: supervisors only; verify holds.
    assert_eq!(
        gateway
            .send(
                &adviser,
                "GET",
                &format!("/v1/audit?client_id={id}"),
                None,
                &[]
            )
            .await?
            .0,
        403
    );
    let (status, trail, _) = gateway
        .send(
            &supervisor,
            "GET",
            &format!("/v1/audit?client_id={id}"),
            None,
            &[],
        )
        .await?;
    assert_eq!(status, 200);
    assert!(
        trail["items"].as_array().map(Vec::len).unwrap_or(0) >= 8,
        "{trail}"
    );
    let (status, verified, _) = gateway
        .send(&supervisor, "POST", "/v1/audit/verify", None, &[])
        .await?;
    assert_eq!((status, &verified["valid"]), (200, &json!(true)));

    // Export, then erasure: 204, and 404 afterwards everywhere.
    let (status, export, _) = gateway
        .send(&adviser, "GET", &format!("{client}/export"), None, &[])
        .await?;
    assert_eq!(status, 200);
    assert_eq!(export["notes"].as_array().map(Vec::len), Some(2));
    assert!(
        export["audit"]
            .as_array()
            .is_some_and(|audit| !audit.is_empty())
    );
    assert_eq!(
        gateway
            .send(&adviser, "DELETE", &client, None, &[])
            .await?
            .0,
        403
    );
    assert_eq!(
        gateway
            .send(&supervisor, "DELETE", &client, None, &[])
            .await?
            .0,
        204
    );
    for path in [
        client.clone(),
        format!("{client}/export"),
        format!("{client}/notes"),
    ] {
        assert_eq!(
            gateway.send(&adviser, "GET", &path, None, &[]).await?.0,
            404,
            "{path}"
        );
    }
    assert_eq!(
        gateway
            .send(&supervisor, "DELETE", &client, None, &[])
            .await?
            .0,
        404
    );

    stop.send(()).ok();
    running.await??;
    casenotes.shutdown().await?;

    // What the gateway and casenotes logged on the way: one access line per request, and
    // never a token, a client's name or a note's text.
    let logged = logs.text();
    assert!(
        logged.matches(r#""target":"careers::access""#).count() >= 20,
        "the access lines are missing:\n{logged}"
    );
    for secret in [
        adviser.as_str(),
        supervisor.as_str(),
        stranger.as_str(),
        "Hana Okafor",
        "2009-05-01",
        "Interested in robotics.",
        "And AI.",
    ] {
        assert!(
            !logged.contains(secret),
            "the logs hold {:.24}…:\n{logged}",
            secret
        );
    }
    Ok(())
}
