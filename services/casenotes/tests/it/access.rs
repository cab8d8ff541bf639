//! Acceptance 1: every operation, own organisation versus another, adviser versus
//! supervisor; another organisation's client is always NOT_FOUND.

use careers_proto::careers::casenotes::v1 as api;
use tonic::Code;

use crate::{Secrets, Service, Stores, failure};

/// Every client-scoped operation against `client_id` as `org`'s adviser: (name, outcome).
async fn every_client_operation(
    service: &mut Service,
    org: &str,
    client_id: &str,
    note_id: &str,
) -> anyhow::Result<Vec<(&'static str, (Code, String))>> {
    let id = || client_id.to_owned();
    let client = &mut service.client.clone();
    let s = &*service;
    let tomorrow = (chrono_today() + chrono::Days::new(30)).to_string();
    Ok(vec![
        (
            "get",
            failure(
                client
                    .get_client(s.adviser(org, api::GetClientRequest { client_id: id() })?)
                    .await,
            ),
        ),
        (
            "update",
            failure(
                client
                    .update_client(s.adviser(
                        org,
                        api::UpdateClientRequest {
                            client_id: id(),
                            expected_version: 1,
                            stage: Some("school_year_11".into()),
                            ..Default::default()
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "note",
            failure(
                client
                    .record_note(s.adviser(
                        org,
                        api::RecordNoteRequest {
                            client_id: id(),
                            text: "x".into(),
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "amend",
            failure(
                client
                    .amend_note(s.adviser(
                        org,
                        api::AmendNoteRequest {
                            client_id: id(),
                            note_id: note_id.to_owned(),
                            text: "y".into(),
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "notes",
            failure(
                client
                    .list_notes(s.adviser(org, api::ListNotesRequest { client_id: id() })?)
                    .await,
            ),
        ),
        (
            "interaction",
            failure(
                client
                    .record_interaction(s.adviser(
                        org,
                        api::RecordInteractionRequest {
                            client_id: id(),
                            date: "2025-01-10".into(),
                            channel: "telephone".into(),
                            r#type: "information".into(),
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "interactions",
            failure(
                client
                    .list_interactions(
                        s.adviser(org, api::ListInteractionsRequest { client_id: id() })?,
                    )
                    .await,
            ),
        ),
        (
            "consent",
            failure(
                client
                    .record_consent(s.adviser(
                        org,
                        api::RecordConsentRequest {
                            client_id: id(),
                            purpose: "research".into(),
                            granted: Some(true),
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "consents",
            failure(
                client
                    .list_consents(s.adviser(org, api::ListConsentsRequest { client_id: id() })?)
                    .await,
            ),
        ),
        (
            "referral",
            failure(
                client
                    .request_referral(s.adviser(
                        org,
                        api::RequestReferralRequest {
                            client_id: id(),
                            activity_type: "talk".into(),
                            earliest: tomorrow.clone(),
                            latest: tomorrow.clone(),
                            ..Default::default()
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "referrals",
            failure(
                client
                    .list_referrals(s.adviser(org, api::ListReferralsRequest { client_id: id() })?)
                    .await,
            ),
        ),
        (
            "outcome",
            failure(
                client
                    .record_outcome(s.adviser(
                        org,
                        api::RecordOutcomeRequest {
                            client_id: id(),
                            date: "2025-09-01".into(),
                            r#type: "apprenticeship".into(),
                            soc_code: None,
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "outcomes",
            failure(
                client
                    .list_outcomes(s.adviser(org, api::ListOutcomesRequest { client_id: id() })?)
                    .await,
            ),
        ),
        (
            "plan",
            failure(
                client
                    .get_action_plan(s.adviser(org, api::GetActionPlanRequest { client_id: id() })?)
                    .await,
            ),
        ),
        (
            "put plan",
            failure(
                client
                    .put_action_plan(s.adviser(
                        org,
                        api::PutActionPlanRequest {
                            client_id: id(),
                            actions: vec![api::Action {
                                goal: "Visit an engineering firm".into(),
                                due_date: "2026-12-01".into(),
                                status: "not_started".into(),
                                soc_codes: Vec::new(),
                            }],
                            expected_version: 0,
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "export",
            failure(
                client
                    .export_client(s.adviser(org, api::ExportClientRequest { client_id: id() })?)
                    .await,
            ),
        ),
        (
            "gatsby",
            failure(
                client
                    .get_client_gatsby(
                        s.adviser(org, api::GetClientGatsbyRequest { client_id: id() })?,
                    )
                    .await,
            ),
        ),
        (
            "transfer",
            failure(
                client
                    .request_transfer(s.adviser(
                        org,
                        api::RequestTransferRequest {
                            client_id: id(),
                            to_org: "org-elsewhere".into(),
                        },
                    )?)
                    .await,
            ),
        ),
        (
            "erase",
            failure(
                client
                    .erase_client(s.supervisor(org, api::EraseClientRequest { client_id: id() })?)
                    .await,
            ),
        ),
    ])
}

fn chrono_today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

async fn access_is_scoped(stores: Stores) -> anyhow::Result<()> {
    let secrets = Secrets::new()?;
    let mut service = Service::start(&stores, &secrets).await?;
    let client_id = service.create_client("org-a", "Amira Khan").await?;
    let request = service.adviser(
        "org-a",
        api::RecordConsentRequest {
            client_id: client_id.clone(),
            purpose: "ambassador_sharing".into(),
            granted: Some(true),
        },
    )?;
    service.client.record_consent(request).await?;
    let note = service
        .client
        .record_note(service.adviser(
            "org-a",
            api::RecordNoteRequest {
                client_id: client_id.clone(),
                text: "first".into(),
            },
        )?)
        .await?
        .into_inner()
        .note
        .ok_or_else(|| anyhow::anyhow!("no note"))?;

    // Another organisation: every operation is NOT_FOUND, exactly like an unknown id.
    for (operation, outcome) in
        every_client_operation(&mut service, "org-b", &client_id, &note.id).await?
    {
        assert_eq!(
            outcome,
            (Code::NotFound, "not_found".into()),
            "org-b {operation}"
        );
    }
    let unknown = "0190a0a0-0000-7000-8000-000000000000";
    for (operation, outcome) in
        every_client_operation(&mut service, "org-a", unknown, &note.id).await?
    {
        assert_eq!(
            outcome,
            (Code::NotFound, "not_found".into()),
            "unknown id {operation}"
        );
    }
    // Another organisation's list holds nothing of org-a's.
    let listed = service
        .client
        .list_clients(service.adviser("org-b", api::ListClientsRequest::default())?)
        .await?
        .into_inner();
    assert!(listed.items.is_empty());

    // Only a supervisor erases, reads or verifies the trail, accepts a transfer.
    let adviser_erase = service
        .client
        .erase_client(service.adviser(
            "org-a",
            api::EraseClientRequest {
                client_id: client_id.clone(),
            },
        )?)
        .await;
    assert_eq!(failure(adviser_erase).0, Code::PermissionDenied);
    let adviser_audit = service
        .client
        .list_audit_entries(service.adviser("org-a", api::ListAuditEntriesRequest::default())?)
        .await;
    assert_eq!(failure(adviser_audit).0, Code::PermissionDenied);
    let adviser_verify = service
        .client
        .verify_audit(service.adviser("org-a", api::VerifyAuditRequest {})?)
        .await;
    assert_eq!(failure(adviser_verify).0, Code::PermissionDenied);
    // Other roles, and a token without an organisation, are refused.
    for roles in [
        &["school_contact"][..],
        &["operator"],
        &["ambassador_coordinator"],
    ] {
        let request = service.as_(
            "someone",
            roles,
            "org-a",
            api::GetClientRequest {
                client_id: client_id.clone(),
            },
        )?;
        assert_eq!(
            failure(service.client.get_client(request).await).0,
            Code::PermissionDenied,
            "{roles:?}"
        );
    }
    let request = service.as_(
        "adviser@org-a",
        &["adviser"],
        "",
        api::GetClientRequest {
            client_id: client_id.clone(),
        },
    )?;
    assert_eq!(
        failure(service.client.get_client(request).await).0,
        Code::PermissionDenied
    );

    // The own organisation: the adviser reads and writes everything.
    for (operation, outcome) in
        every_client_operation(&mut service, "org-a", &client_id, &note.id).await?
    {
        // Everything answers, the supervisor's erase (last) included.
        assert_eq!(outcome.0, Code::Ok, "org-a {operation}: {outcome:?}");
    }
    // Erased: every operation is NOT_FOUND for its own organisation too.
    for (operation, outcome) in
        every_client_operation(&mut service, "org-a", &client_id, &note.id).await?
    {
        assert_eq!(
            outcome,
            (Code::NotFound, "not_found".into()),
            "after erasure {operation}"
        );
    }

    // The organisations and advisers were recorded the first time a token named them.
    let db = sea_orm::Database::connect(stores.main.as_str()).await?;
    let count = |sql: &'static str| careers_eventbus::testing::count(&db, sql);
    assert_eq!(
        count("SELECT COUNT(*) FROM organisations WHERE org IN ('org-a', 'org-b')").await?,
        2
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM advisers WHERE sub = 'adviser@org-b' AND org = 'org-b'")
            .await?,
        1
    );

    // Transfers: the receiving supervisor accepts; the client then belongs to org-b only.
    let moving = service.create_client("org-a", "Ben Ode").await?;
    let transfer = service
        .client
        .request_transfer(service.adviser(
            "org-a",
            api::RequestTransferRequest {
                client_id: moving.clone(),
                to_org: "org-b".into(),
            },
        )?)
        .await?
        .into_inner()
        .transfer
        .ok_or_else(|| anyhow::anyhow!("no transfer"))?;
    let incoming = service
        .client
        .list_transfers(service.adviser(
            "org-b",
            api::ListTransfersRequest {
                direction: "incoming".into(),
            },
        )?)
        .await?
        .into_inner();
    assert_eq!(incoming.items.len(), 1);
    let by_adviser = service
        .client
        .accept_transfer(service.adviser(
            "org-b",
            api::AcceptTransferRequest {
                transfer_id: transfer.id.clone(),
            },
        )?)
        .await;
    assert_eq!(failure(by_adviser).0, Code::PermissionDenied);
    let by_sender = service
        .client
        .accept_transfer(service.supervisor(
            "org-a",
            api::AcceptTransferRequest {
                transfer_id: transfer.id.clone(),
            },
        )?)
        .await;
    assert_eq!(failure(by_sender).0, Code::NotFound);
    service
        .client
        .accept_transfer(service.supervisor(
            "org-b",
            api::AcceptTransferRequest {
                transfer_id: transfer.id.clone(),
            },
        )?)
        .await?;
    let again = service
        .client
        .accept_transfer(service.supervisor(
            "org-b",
            api::AcceptTransferRequest {
                transfer_id: transfer.id,
            },
        )?)
        .await;
    assert_eq!(
        failure(again),
        (Code::FailedPrecondition, "invalid_transition".into())
    );
    let old_home = service
        .client
        .get_client(service.adviser(
            "org-a",
            api::GetClientRequest {
                client_id: moving.clone(),
            },
        )?)
        .await;
    assert_eq!(failure(old_home).0, Code::NotFound);
    service
        .client
        .get_client(service.adviser("org-b", api::GetClientRequest { client_id: moving })?)
        .await?;
    service.stop().await
}

#[tokio::test]
async fn access_is_scoped_to_the_organisation_on_sqlite() -> anyhow::Result<()> {
    access_is_scoped(Stores::sqlite()?).await
}

#[tokio::test]
async fn access_is_scoped_to_the_organisation_on_postgres() -> anyhow::Result<()> {
    access_is_scoped(Stores::postgres().await?).await
}
