//! Acceptance 5 and 8: consent gates notes and referrals; bad input gets the contract's
//! status and writes nothing.

use careers_eventbus::testing::count;
use careers_proto::careers::casenotes::v1 as api;
use chrono::{Days, Utc};
use sea_orm::{ConnectionTrait, Database};
use tonic::Code;

use crate::{Secrets, Service, Stores, failure, new_client};

async fn consent(stores: Stores) -> anyhow::Result<()> {
    let secrets = Secrets::new()?;
    let mut service = Service::start(&stores, &secrets).await?;
    let org = "org-consent";
    let request = service.adviser(
        org,
        api::CreateClientRequest {
            recording_consent: Some(false),
            ..new_client("No Consent")
        },
    )?;
    let client_id = service
        .client
        .create_client(request)
        .await?
        .into_inner()
        .client
        .ok_or_else(|| anyhow::anyhow!("no client"))?
        .id;
    let note = |service: &Service| {
        service.adviser(
            org,
            api::RecordNoteRequest {
                client_id: client_id.clone(),
                text: "hello".into(),
            },
        )
    };
    let consent = |service: &Service, purpose: &str, granted: bool| {
        service.adviser(
            org,
            api::RecordConsentRequest {
                client_id: client_id.clone(),
                purpose: purpose.into(),
                granted: Some(granted),
            },
        )
    };
    let window = (Utc::now().date_naive() + Days::new(20)).to_string();
    let referral = |service: &Service| {
        service.adviser(
            org,
            api::RequestReferralRequest {
                client_id: client_id.clone(),
                activity_type: "workplace_visit".into(),
                subjects: vec!["engineering".into()],
                soc_codes: vec!["2122".into()],
                earliest: window.clone(),
                latest: window.clone(),
            },
        )
    };
    let consent_required = (Code::FailedPrecondition, "consent_required".to_owned());
    assert_eq!(
        failure(service.client.record_note(note(&service)?).await),
        consent_required
    );
    service
        .client
        .record_consent(consent(&service, "recording", true)?)
        .await?;
    service.client.record_note(note(&service)?).await?;
    service
        .client
        .record_consent(consent(&service, "recording", false)?)
        .await?;
    assert_eq!(
        failure(service.client.record_note(note(&service)?).await),
        consent_required
    );

    assert_eq!(
        failure(service.client.request_referral(referral(&service)?).await),
        consent_required
    );
    service
        .client
        .record_consent(consent(&service, "ambassador_sharing", true)?)
        .await?;
    let made = service
        .client
        .request_referral(referral(&service)?)
        .await?
        .into_inner();
    assert!(made.referral.is_some());

    let ledger = service
        .client
        .list_consents(service.adviser(
            org,
            api::ListConsentsRequest {
                client_id: client_id.clone(),
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(
        ledger.items.len(),
        4,
        "creation, grant, withdrawal, sharing"
    );
    let current: Vec<(&str, bool)> = ledger
        .current
        .iter()
        .map(|c| (c.purpose.as_str(), c.granted))
        .collect();
    assert_eq!(
        current,
        [("recording", false), ("ambassador_sharing", true)]
    );

    let db = Database::connect(stores.main.as_str()).await?;
    assert_eq!(count(&db, "SELECT COUNT(*) FROM notes").await?, 1);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM outbox WHERE subject = 'careers.casenotes.v1.referral_requested'"
        )
        .await?,
        1
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM outbox WHERE subject = 'careers.casenotes.v1.note_recorded'"
        )
        .await?,
        1
    );
    service.stop().await
}

#[tokio::test]
async fn consent_gates_notes_and_referrals_on_sqlite() -> anyhow::Result<()> {
    consent(Stores::sqlite()?).await
}

#[tokio::test]
async fn consent_gates_notes_and_referrals_on_postgres() -> anyhow::Result<()> {
    consent(Stores::postgres().await?).await
}

async fn bad_input(stores: Stores) -> anyhow::Result<()> {
    let secrets = Secrets::new()?;
    let mut service = Service::start_with(&stores, &secrets, &[("notes.max_bytes", "100")]).await?;
    let org = "org-input";
    let client_id = service.create_client(org, "Valid Person").await?;
    let db = Database::connect(stores.main.as_str()).await?;
    let keys = Database::connect(stores.keys.as_str()).await?;
    let rows = || async {
        anyhow::Ok((
            count(&db, "SELECT COUNT(*) FROM clients").await?,
            count(&db, "SELECT COUNT(*) FROM notes").await?,
            count(&db, "SELECT COUNT(*) FROM interactions").await?,
            count(&db, "SELECT COUNT(*) FROM consents").await?,
            count(&db, "SELECT COUNT(*) FROM referrals").await?,
            count(&db, "SELECT COUNT(*) FROM outbox").await?,
            count(&keys, "SELECT COUNT(*) FROM data_keys").await?,
        ))
    };
    let before = rows().await?;
    let today = Utc::now().date_naive();
    let tomorrow = (today + Days::new(1)).to_string();
    let invalid = (Code::InvalidArgument, "validation_failed".to_owned());

    let bad_clients = [
        (
            "missing name",
            api::CreateClientRequest {
                name: String::new(),
                ..new_client("")
            },
        ),
        (
            "malformed date",
            api::CreateClientRequest {
                date_of_birth: "14/03/2010".into(),
                ..new_client("A")
            },
        ),
        (
            "future birth",
            api::CreateClientRequest {
                date_of_birth: tomorrow.clone(),
                ..new_client("A")
            },
        ),
        (
            "aged 10",
            api::CreateClientRequest {
                date_of_birth: (today - Days::new(10 * 366)).to_string(),
                ..new_client("A")
            },
        ),
        (
            "aged 121",
            api::CreateClientRequest {
                date_of_birth: (today - Days::new(122 * 366)).to_string(),
                ..new_client("A")
            },
        ),
        (
            "unknown stage",
            api::CreateClientRequest {
                stage: "year_14".into(),
                ..new_client("A")
            },
        ),
        (
            "missing stage",
            api::CreateClientRequest {
                stage: String::new(),
                ..new_client("A")
            },
        ),
        (
            "bad email",
            api::CreateClientRequest {
                email: Some("not-an-email".into()),
                ..new_client("A")
            },
        ),
        (
            "bad urn",
            api::CreateClientRequest {
                school_urn: Some("12345".into()),
                ..new_client("A")
            },
        ),
        (
            "bad district",
            api::CreateClientRequest {
                postcode_district: Some("123".into()),
                ..new_client("A")
            },
        ),
        (
            "bad uln",
            api::CreateClientRequest {
                uln: Some("123".into()),
                ..new_client("A")
            },
        ),
    ];
    for (case, request) in bad_clients {
        let outcome = failure(
            service
                .client
                .create_client(service.adviser(org, request)?)
                .await,
        );
        assert_eq!(outcome, invalid, "{case}");
    }
    // Every problem of a request at once, each naming its field.
    let status = service
        .client
        .create_client(service.adviser(org, api::CreateClientRequest::default())?)
        .await
        .err()
        .ok_or_else(|| anyhow::anyhow!("an empty client was accepted"))?;
    let fields: Vec<String> = tonic_types::StatusExt::get_details_bad_request(&status)
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["name", "date_of_birth", "stage"]);

    let too_long = "x".repeat(101);
    let note = service.adviser(
        org,
        api::RecordNoteRequest {
            client_id: client_id.clone(),
            text: too_long,
        },
    )?;
    assert_eq!(
        failure(service.client.record_note(note).await),
        (Code::InvalidArgument, "note_too_long".into())
    );
    let empty = service.adviser(
        org,
        api::RecordNoteRequest {
            client_id: client_id.clone(),
            text: " ".into(),
        },
    )?;
    assert_eq!(failure(service.client.record_note(empty).await), invalid);
    let unknown = service.adviser(
        org,
        api::RecordNoteRequest {
            client_id: "0190a0a0-0000-7000-8000-000000000000".into(),
            text: "hello".into(),
        },
    )?;
    assert_eq!(
        failure(service.client.record_note(unknown).await),
        (Code::NotFound, "not_found".into())
    );
    let amend_unknown = service.adviser(
        org,
        api::AmendNoteRequest {
            client_id: client_id.clone(),
            note_id: "0190a0a0-0000-7000-8000-000000000001".into(),
            text: "hello".into(),
        },
    )?;
    assert_eq!(
        failure(service.client.amend_note(amend_unknown).await).0,
        Code::NotFound
    );

    let interactions = [
        ("future", tomorrow.as_str(), "telephone", "information"),
        ("malformed", "2025-13-01", "telephone", "information"),
        ("channel", "2025-01-01", "pigeon", "information"),
        ("type", "2025-01-01", "telephone", "gossip"),
    ];
    for (case, date, channel, kind) in interactions {
        let request = service.adviser(
            org,
            api::RecordInteractionRequest {
                client_id: client_id.clone(),
                date: date.into(),
                channel: channel.into(),
                r#type: kind.into(),
            },
        )?;
        assert_eq!(
            failure(service.client.record_interaction(request).await),
            invalid,
            "{case}"
        );
    }
    let consents = [
        ("unknown purpose", "marketing", Some(true)),
        ("granted missing", "research", None),
    ];
    for (case, purpose, granted) in consents {
        let request = service.adviser(
            org,
            api::RecordConsentRequest {
                client_id: client_id.clone(),
                purpose: purpose.into(),
                granted,
            },
        )?;
        assert_eq!(
            failure(service.client.record_consent(request).await),
            invalid,
            "{case}"
        );
    }
    let referrals = [
        (
            "activity",
            "party",
            vec!["2122".to_owned()],
            tomorrow.clone(),
            tomorrow.clone(),
        ),
        (
            "soc",
            "talk",
            vec!["212".to_owned()],
            tomorrow.clone(),
            tomorrow.clone(),
        ),
        (
            "window",
            "talk",
            vec![],
            tomorrow.clone(),
            today.to_string(),
        ),
        (
            "ended",
            "talk",
            vec![],
            "2020-01-01".to_owned(),
            "2020-02-01".to_owned(),
        ),
    ];
    for (case, activity, soc_codes, earliest, latest) in referrals {
        let request = service.adviser(
            org,
            api::RequestReferralRequest {
                client_id: client_id.clone(),
                activity_type: activity.into(),
                soc_codes,
                earliest,
                latest,
                ..Default::default()
            },
        )?;
        assert_eq!(
            failure(service.client.request_referral(request).await),
            invalid,
            "{case}"
        );
    }
    let update = service.adviser(
        org,
        api::UpdateClientRequest {
            client_id: client_id.clone(),
            expected_version: 0,
            ..Default::default()
        },
    )?;
    assert_eq!(
        failure(service.client.update_client(update).await),
        (Code::FailedPrecondition, "if_match_required".into())
    );
    let stale = service.adviser(
        org,
        api::UpdateClientRequest {
            client_id: client_id.clone(),
            expected_version: 7,
            stage: Some("employed".into()),
            ..Default::default()
        },
    )?;
    assert_eq!(
        failure(service.client.update_client(stale).await),
        (Code::Aborted, "version_conflict".into())
    );
    let limit = service.adviser(
        org,
        api::ListClientsRequest {
            limit: 101,
            cursor: String::new(),
        },
    )?;
    assert_eq!(failure(service.client.list_clients(limit).await), invalid);
    let cursor = service.adviser(
        org,
        api::ListClientsRequest {
            limit: 5,
            cursor: "forged".into(),
        },
    )?;
    assert_eq!(
        failure(service.client.list_clients(cursor).await),
        (Code::InvalidArgument, "bad_cursor".into())
    );

    // Action plans: SOC codes must be in casenotes' projection of the catalogue.
    db.execute_unprepared("INSERT INTO known_occupations (soc_code, version) VALUES ('2122', 1)")
        .await?;
    let action = |soc: &str, status: &str, due: &str| api::Action {
        goal: "Shadow a mechanical engineer".into(),
        due_date: due.into(),
        status: status.into(),
        soc_codes: vec![soc.into()],
    };
    let plans = [
        ("unknown soc", action("9999", "not_started", "2026-12-01")),
        ("status", action("2122", "finished", "2026-12-01")),
        ("due date", action("2122", "done", "soon")),
    ];
    for (case, action) in plans {
        let request = service.adviser(
            org,
            api::PutActionPlanRequest {
                client_id: client_id.clone(),
                actions: vec![action],
                expected_version: 0,
            },
        )?;
        assert_eq!(
            failure(service.client.put_action_plan(request).await),
            invalid,
            "{case}"
        );
    }

    let outcomes = [
        ("future", tomorrow.as_str(), "employment", None),
        ("type", "2025-07-01", "retired", None),
        ("unknown soc", "2025-07-01", "employment", Some("9999")),
        ("malformed soc", "2025-07-01", "employment", Some("21")),
    ];
    for (case, date, kind, soc_code) in outcomes {
        let request = service.adviser(
            org,
            api::RecordOutcomeRequest {
                client_id: client_id.clone(),
                date: date.into(),
                r#type: kind.into(),
                soc_code: soc_code.map(str::to_owned),
            },
        )?;
        assert_eq!(
            failure(service.client.record_outcome(request).await),
            invalid,
            "{case}"
        );
    }

    assert_eq!(rows().await?, before, "a refused request wrote something");
    assert_eq!(count(&db, "SELECT COUNT(*) FROM action_plans").await?, 0);
    assert_eq!(count(&db, "SELECT COUNT(*) FROM outcomes").await?, 0);
    let outcome = service.adviser(
        org,
        api::RecordOutcomeRequest {
            client_id: client_id.clone(),
            date: "2025-07-01".into(),
            r#type: "apprenticeship".into(),
            soc_code: Some("2122".into()),
        },
    )?;
    service.client.record_outcome(outcome).await?;

    let mut client = service.client.clone();
    let put = |expected_version: i64| {
        service.adviser(
            org,
            api::PutActionPlanRequest {
                client_id: client_id.clone(),
                actions: vec![action("2122", "in_progress", "2026-12-01")],
                expected_version,
            },
        )
    };
    let plan = client
        .put_action_plan(put(0)?)
        .await?
        .into_inner()
        .plan
        .ok_or_else(|| anyhow::anyhow!("no plan"))?;
    assert_eq!((plan.version, plan.actions.len()), (1, 1));
    assert_eq!(
        failure(client.put_action_plan(put(7)?).await),
        (Code::Aborted, "version_conflict".into())
    );
    let plan = client
        .put_action_plan(put(1)?)
        .await?
        .into_inner()
        .plan
        .ok_or_else(|| anyhow::anyhow!("no plan"))?;
    assert_eq!(plan.version, 2);

    // A good update moves the version on.
    let update = service.adviser(
        org,
        api::UpdateClientRequest {
            client_id: client_id.clone(),
            expected_version: 1,
            stage: Some("school_year_11".into()),
            clear: vec!["email".into()],
            ..Default::default()
        },
    )?;
    let updated = service
        .client
        .update_client(update)
        .await?
        .into_inner()
        .client
        .ok_or_else(|| anyhow::anyhow!("no client"))?;
    assert_eq!(
        (updated.version, updated.stage.as_str(), updated.email),
        (2, "school_year_11", None)
    );
    service.stop().await
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing_on_sqlite() -> anyhow::Result<()> {
    bad_input(Stores::sqlite()?).await
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing_on_postgres() -> anyhow::Result<()> {
    bad_input(Stores::postgres().await?).await
}
