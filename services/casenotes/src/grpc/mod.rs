//! The `careers.casenotes.v1.CasenotesService` handlers.
//!
//! Every handler works for the caller's organisation only: a client row is looked up by
//! id *and* organisation, so another organisation's client is NOT_FOUND exactly like an
//! unknown id. Every read or write of client data appends one audit entry per client
//! touched, durable before the answer.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use careers_eventbus::{RelayWaker, enqueue};
use careers_platform::{cursor::Cursors, identity};
use careers_proto::careers::casenotes::{
    events::v1::{NoteRecorded, ReferralRequested},
    v1::{self as api, casenotes_service_server::CasenotesService},
};
use chrono::{NaiveDate, SecondsFormat, Utc};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    audit::AuditKey,
    audit_log::{self, Record},
    crypto::Cell,
    domain::{self, NewClient, instant, micros},
    erasure,
    error::CasenotesError,
    protection::{AuditSink, KeySource, Sealer},
    store::{self, ClientRow},
};

mod caller;
mod messages;
mod operations;

pub(crate) use caller::*;
pub(crate) use messages::*;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Handlers {
    pub db: DatabaseConnection,
    /// The key store's own connection, for erasure.
    pub keys: DatabaseConnection,
    /// Clients' data keys.
    pub vault: Arc<dyn KeySource>,
    pub audit: Arc<dyn AuditSink>,
    pub audit_key: Arc<AuditKey>,
    pub cursors: Cursors,
    pub waker: RelayWaker,
    /// `notes.max_bytes`.
    pub note_max_bytes: usize,
    /// (organisation, subject) pairs already recorded by this replica.
    pub seen: Arc<Mutex<HashSet<(String, String)>>>,
}

/// The personal fields of a client, sealed together in one cell.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Personal {
    pub name: String,
    pub date_of_birth: String,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub uln: Option<String>,
    pub postcode_district: Option<String>,
    pub priority_groups: Vec<String>,
}

/// The caller, as casenotes sees it.
#[derive(Debug, Clone)]
pub struct Actor {
    pub sub: String,
    pub org: String,
    pub supervisor: bool,
}

impl Actor {
    fn require_supervisor(&self, what: &str) -> Result<(), CasenotesError> {
        if self.supervisor {
            Ok(())
        } else {
            Err(CasenotesError::Forbidden(format!(
                "only a supervisor {what}"
            )))
        }
    }
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl CasenotesService for Handlers {
    async fn create_client(
        &self,
        request: Request<api::CreateClientRequest>,
    ) -> Answer<api::CreateClientResponse> {
        let actor = self.actor(&request).await?;
        let client = Handlers::create_client(self, &actor, request.into_inner()).await?;
        Ok(Response::new(api::CreateClientResponse {
            client: Some(client),
        }))
    }

    async fn get_client(
        &self,
        request: Request<api::GetClientRequest>,
    ) -> Answer<api::GetClientResponse> {
        let actor = self.actor(&request).await?;
        let (row, key) = self.open(&actor, &request.get_ref().client_id).await?;
        let client = self.client_message(&row, &key)?;
        self.audit(&actor, "client.read", "guidance", &[&row.id])
            .await?;
        Ok(Response::new(api::GetClientResponse {
            client: Some(client),
        }))
    }

    async fn list_clients(
        &self,
        request: Request<api::ListClientsRequest>,
    ) -> Answer<api::ListClientsResponse> {
        let actor = self.actor(&request).await?;
        let request = request.into_inner();
        let limit = page_limit(request.limit)?;
        let before: Option<String> = if request.cursor.is_empty() {
            None
        } else {
            Some(
                self.cursors
                    .decode("clients", &request.cursor)
                    .map_err(|_| CasenotesError::BadCursor)?,
            )
        };
        let mut rows = store::clients_page(&self.db, &actor.org, before.as_deref(), limit + 1)
            .await
            .map_err(CasenotesError::from)?;
        let more = u64::try_from(rows.len()).unwrap_or(u64::MAX) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            // A client erased between the page and its key is left out.
            if let Some(key) = self
                .vault
                .load(&row.id)
                .await
                .map_err(CasenotesError::from)?
            {
                items.push(self.client_message(row, &key)?);
            }
        }
        let ids: Vec<&str> = items.iter().map(|client| client.id.as_str()).collect();
        if !ids.is_empty() {
            self.audit(&actor, "client.list", "guidance", &ids).await?;
        }
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => self.cursors.encode("clients", &last.id),
            _ => String::new(),
        };
        Ok(Response::new(api::ListClientsResponse {
            items,
            next_cursor,
        }))
    }

    async fn update_client(
        &self,
        request: Request<api::UpdateClientRequest>,
    ) -> Answer<api::UpdateClientResponse> {
        let actor = self.actor(&request).await?;
        let client = Handlers::update_client(self, &actor, request.into_inner()).await?;
        Ok(Response::new(api::UpdateClientResponse {
            client: Some(client),
        }))
    }

    async fn erase_client(
        &self,
        request: Request<api::EraseClientRequest>,
    ) -> Answer<api::EraseClientResponse> {
        let actor = self.actor(&request).await?;
        Ok(Response::new(
            self.erase(&actor, &request.get_ref().client_id).await?,
        ))
    }

    async fn record_note(
        &self,
        request: Request<api::RecordNoteRequest>,
    ) -> Answer<api::RecordNoteResponse> {
        let actor = self.actor(&request).await?;
        let request = request.into_inner();
        let note =
            Handlers::record_note(self, &actor, &request.client_id, &request.text, None).await?;
        Ok(Response::new(api::RecordNoteResponse { note: Some(note) }))
    }

    async fn amend_note(
        &self,
        request: Request<api::AmendNoteRequest>,
    ) -> Answer<api::AmendNoteResponse> {
        let actor = self.actor(&request).await?;
        let request = request.into_inner();
        let note = Handlers::record_note(
            self,
            &actor,
            &request.client_id,
            &request.text,
            Some(&request.note_id),
        )
        .await?;
        Ok(Response::new(api::AmendNoteResponse { note: Some(note) }))
    }

    async fn list_notes(
        &self,
        request: Request<api::ListNotesRequest>,
    ) -> Answer<api::ListNotesResponse> {
        let actor = self.actor(&request).await?;
        let client_id = &request.get_ref().client_id;
        let (_, key) = self.open(&actor, client_id).await?;
        let items = store::notes(&self.db, client_id)
            .await
            .map_err(CasenotesError::from)?
            .iter()
            .map(|note| self.note_message(note, &key))
            .collect::<Result<_, _>>()?;
        self.audit(&actor, "note.list", "guidance", &[client_id])
            .await?;
        Ok(Response::new(api::ListNotesResponse { items }))
    }

    async fn record_interaction(
        &self,
        request: Request<api::RecordInteractionRequest>,
    ) -> Answer<api::RecordInteractionResponse> {
        let actor = self.actor(&request).await?;
        let interaction = Handlers::record_interaction(self, &actor, request.into_inner()).await?;
        Ok(Response::new(api::RecordInteractionResponse {
            interaction: Some(interaction),
        }))
    }

    async fn list_interactions(
        &self,
        request: Request<api::ListInteractionsRequest>,
    ) -> Answer<api::ListInteractionsResponse> {
        let actor = self.actor(&request).await?;
        let client_id = &request.get_ref().client_id;
        self.open(&actor, client_id).await?;
        let items = store::interactions(&self.db, client_id)
            .await
            .map_err(CasenotesError::from)?
            .into_iter()
            .map(interaction_message)
            .collect();
        self.audit(&actor, "interaction.list", "guidance", &[client_id])
            .await?;
        Ok(Response::new(api::ListInteractionsResponse { items }))
    }

    async fn record_consent(
        &self,
        request: Request<api::RecordConsentRequest>,
    ) -> Answer<api::RecordConsentResponse> {
        let actor = self.actor(&request).await?;
        let request = request.into_inner();
        let granted = domain::check_consent(&request.purpose, request.granted)
            .map_err(CasenotesError::Invalid)?;
        let (row, _) = self.open(&actor, &request.client_id).await?;
        let consent = store::ConsentRow {
            id: new_id(),
            client_id: row.id.clone(),
            purpose: request.purpose,
            granted,
            recorded_at: micros(Utc::now()),
            recorded_by: actor.sub.clone(),
        };
        store::insert_consent(&self.db, &consent)
            .await
            .map_err(CasenotesError::from)?;
        self.audit(&actor, "consent.record", "guidance", &[&row.id])
            .await?;
        Ok(Response::new(api::RecordConsentResponse {
            consent: Some(consent_message(consent)),
        }))
    }

    async fn list_consents(
        &self,
        request: Request<api::ListConsentsRequest>,
    ) -> Answer<api::ListConsentsResponse> {
        let actor = self.actor(&request).await?;
        let client_id = &request.get_ref().client_id;
        self.open(&actor, client_id).await?;
        let items: Vec<api::Consent> = store::consents(&self.db, client_id)
            .await
            .map_err(CasenotesError::from)?
            .into_iter()
            .map(consent_message)
            .collect();
        let current = domain::PURPOSES
            .iter()
            .filter_map(|purpose| {
                items
                    .iter()
                    .rev()
                    .find(|consent| consent.purpose == *purpose)
                    .cloned()
            })
            .collect();
        self.audit(&actor, "consent.list", "guidance", &[client_id])
            .await?;
        Ok(Response::new(api::ListConsentsResponse { items, current }))
    }

    async fn request_referral(
        &self,
        request: Request<api::RequestReferralRequest>,
    ) -> Answer<api::RequestReferralResponse> {
        let actor = self.actor(&request).await?;
        let referral = Handlers::request_referral(self, &actor, request.into_inner()).await?;
        Ok(Response::new(api::RequestReferralResponse {
            referral: Some(referral),
        }))
    }

    async fn list_referrals(
        &self,
        request: Request<api::ListReferralsRequest>,
    ) -> Answer<api::ListReferralsResponse> {
        let actor = self.actor(&request).await?;
        let client_id = &request.get_ref().client_id;
        self.open(&actor, client_id).await?;
        let items = store::referrals(&self.db, client_id)
            .await
            .map_err(CasenotesError::from)?
            .into_iter()
            .map(referral_message)
            .collect();
        self.audit(&actor, "referral.list", "guidance", &[client_id])
            .await?;
        Ok(Response::new(api::ListReferralsResponse { items }))
    }

    async fn export_client(
        &self,
        request: Request<api::ExportClientRequest>,
    ) -> Answer<api::ExportClientResponse> {
        let actor = self.actor(&request).await?;
        Ok(Response::new(
            self.export(&actor, &request.get_ref().client_id).await?,
        ))
    }

    async fn get_client_gatsby(
        &self,
        request: Request<api::GetClientGatsbyRequest>,
    ) -> Answer<api::GetClientGatsbyResponse> {
        let actor = self.actor(&request).await?;
        let client_id = &request.get_ref().client_id;
        self.open(&actor, client_id).await?;
        let encounters = store::encounters(
            &self.db,
            &format!("client:{client_id}"),
            "0000-01-01",
            "9999-12-31",
        )
        .await
        .map_err(CasenotesError::from)?;
        self.audit(&actor, "gatsby.read", "guidance", &[client_id])
            .await?;
        Ok(Response::new(api::GetClientGatsbyResponse {
            client_id: client_id.clone(),
            benchmarks: benchmark_counts(&encounters),
            encounters: encounters.into_iter().map(encounter_message).collect(),
        }))
    }

    async fn get_school_gatsby(
        &self,
        request: Request<api::GetSchoolGatsbyRequest>,
    ) -> Answer<api::GetSchoolGatsbyResponse> {
        let identity = identity::caller(&request)?;
        let urn = &request.get_ref().urn;
        if !["school_contact", "adviser", "supervisor"]
            .iter()
            .any(|role| identity.has_role(role))
        {
            return Err(CasenotesError::Forbidden(
                "a school's Gatsby report is for its school contact, advisers and supervisors"
                    .to_owned(),
            )
            .into());
        }
        if identity.org.as_deref() != Some(urn.as_str()) {
            return Err(CasenotesError::Forbidden(format!(
                "only callers whose organisation is school {urn} read its report"
            ))
            .into());
        }
        let year = match request.get_ref().academic_year {
            0 => domain::academic_year_of(Utc::now().date_naive()),
            year if (2000..=2100).contains(&year) => year,
            year => {
                return Err(CasenotesError::Invalid(vec![(
                    "academic_year",
                    format!("{year} is not a year from 2000 to 2100"),
                )])
                .into());
            }
        };
        let from = NaiveDate::from_ymd_opt(year, 9, 1)
            .unwrap_or_default()
            .to_string();
        let to = NaiveDate::from_ymd_opt(year + 1, 8, 31)
            .unwrap_or_default()
            .to_string();
        let encounters = store::encounters(&self.db, &format!("school:{urn}"), &from, &to)
            .await
            .map_err(CasenotesError::from)?;
        Ok(Response::new(api::GetSchoolGatsbyResponse {
            urn: urn.clone(),
            academic_year: format!("{year}/{:02}", (year + 1) % 100),
            benchmarks: benchmark_counts(&encounters),
        }))
    }

    async fn list_audit_entries(
        &self,
        request: Request<api::ListAuditEntriesRequest>,
    ) -> Answer<api::ListAuditEntriesResponse> {
        let actor = self.actor(&request).await?;
        actor.require_supervisor("reads the audit trail")?;
        let request = request.into_inner();
        let limit = page_limit(request.limit)?;
        let after: i64 = if request.cursor.is_empty() {
            0
        } else {
            self.cursors
                .decode("audit", &request.cursor)
                .map_err(|_| CasenotesError::BadCursor)?
        };
        let client = Some(request.client_id.as_str()).filter(|id| !id.is_empty());
        let mut rows = store::audit_page(&self.db, &actor.org, client, after, limit + 1)
            .await
            .map_err(CasenotesError::from)?;
        let more = u64::try_from(rows.len()).unwrap_or(u64::MAX) > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = match (more, rows.last()) {
            (true, Some(last)) => self.cursors.encode("audit", &last.0),
            _ => String::new(),
        };
        self.audit(&actor, "audit.read", "audit", &[]).await?;
        Ok(Response::new(api::ListAuditEntriesResponse {
            items: rows.into_iter().map(audit_message).collect(),
            next_cursor,
        }))
    }

    async fn verify_audit(
        &self,
        request: Request<api::VerifyAuditRequest>,
    ) -> Answer<api::VerifyAuditResponse> {
        let actor = self.actor(&request).await?;
        actor.require_supervisor("verifies the audit trail")?;
        let answer = match audit_log::verify(&self.db, &self.audit_key, &actor.org).await {
            Ok(held) => api::VerifyAuditResponse {
                valid: true,
                entries: i64::try_from(held).unwrap_or(i64::MAX),
                broken_at: None,
                problem: String::new(),
            },
            Err(audit_log::AuditLogError::Broken(broken)) => api::VerifyAuditResponse {
                valid: false,
                entries: 0,
                broken_at: Some(broken.seq),
                problem: broken.to_string(),
            },
            Err(error @ audit_log::AuditLogError::TailMissing { head, .. }) => {
                api::VerifyAuditResponse {
                    valid: false,
                    entries: 0,
                    broken_at: Some(head),
                    problem: error.to_string(),
                }
            }
            Err(error) => return Err(CasenotesError::from(error).into()),
        };
        self.audit(&actor, "audit.verify", "audit", &[]).await?;
        Ok(Response::new(answer))
    }

    async fn request_transfer(
        &self,
        request: Request<api::RequestTransferRequest>,
    ) -> Answer<api::RequestTransferResponse> {
        let actor = self.actor(&request).await?;
        let request = request.into_inner();
        let to_org = request.to_org.trim().to_owned();
        if to_org.is_empty() || to_org.len() > 100 || to_org.chars().any(char::is_control) {
            return Err(CasenotesError::Invalid(vec![(
                "to_org",
                "name the receiving organisation".to_owned(),
            )])
            .into());
        }
        if to_org == actor.org {
            return Err(CasenotesError::Invalid(vec![(
                "to_org",
                "the client is already held by this organisation".to_owned(),
            )])
            .into());
        }
        let (row, _) = self.open(&actor, &request.client_id).await?;
        let transfer = store::TransferRow {
            id: new_id(),
            client_id: row.id.clone(),
            from_org: actor.org.clone(),
            to_org,
            status: "pending".into(),
            requested_at: micros(Utc::now()),
            accepted_at: None,
        };
        store::insert_transfer(&self.db, &transfer)
            .await
            .map_err(CasenotesError::from)?;
        self.audit(&actor, "transfer.request", "transfer", &[&row.id])
            .await?;
        Ok(Response::new(api::RequestTransferResponse {
            transfer: Some(transfer_message(transfer)),
        }))
    }

    async fn list_transfers(
        &self,
        request: Request<api::ListTransfersRequest>,
    ) -> Answer<api::ListTransfersResponse> {
        let actor = self.actor(&request).await?;
        let incoming = match request.get_ref().direction.as_str() {
            "incoming" => true,
            "outgoing" => false,
            other => {
                return Err(CasenotesError::Invalid(vec![(
                    "direction",
                    format!("{other:?} is not incoming or outgoing"),
                )])
                .into());
            }
        };
        let items = store::transfers(&self.db, &actor.org, incoming)
            .await
            .map_err(CasenotesError::from)?
            .into_iter()
            .map(transfer_message)
            .collect();
        Ok(Response::new(api::ListTransfersResponse { items }))
    }

    async fn get_action_plan(
        &self,
        request: Request<api::GetActionPlanRequest>,
    ) -> Answer<api::GetActionPlanResponse> {
        let actor = self.actor(&request).await?;
        let client_id = &request.get_ref().client_id;
        let (row, key) = self.open(&actor, client_id).await?;
        let held = store::plan(&self.db, &row.id)
            .await
            .map_err(CasenotesError::from)?;
        let plan = self.plan_message(&row.id, held, &key)?;
        self.audit(&actor, "action_plan.read", "guidance", &[&row.id])
            .await?;
        Ok(Response::new(api::GetActionPlanResponse {
            plan: Some(plan),
        }))
    }

    async fn put_action_plan(
        &self,
        request: Request<api::PutActionPlanRequest>,
    ) -> Answer<api::PutActionPlanResponse> {
        let actor = self.actor(&request).await?;
        let plan = self.put_plan(&actor, request.into_inner()).await?;
        Ok(Response::new(api::PutActionPlanResponse {
            plan: Some(plan),
        }))
    }

    async fn record_outcome(
        &self,
        request: Request<api::RecordOutcomeRequest>,
    ) -> Answer<api::RecordOutcomeResponse> {
        let actor = self.actor(&request).await?;
        let request = request.into_inner();
        let codes: Vec<String> = request.soc_code.iter().cloned().collect();
        let known = store::known_occupations(&self.db, &codes)
            .await
            .map_err(CasenotesError::from)?;
        let now = Utc::now();
        let date = domain::check_outcome(
            &request.date,
            &request.r#type,
            request.soc_code.as_deref(),
            |code| known.contains(code),
            now.date_naive(),
        )
        .map_err(CasenotesError::Invalid)?;
        let (row, _) = self.open(&actor, &request.client_id).await?;
        let outcome = store::OutcomeRow {
            id: new_id(),
            client_id: row.id.clone(),
            date: date.to_string(),
            kind: request.r#type,
            soc_code: request.soc_code,
            recorded_by: actor.sub.clone(),
            recorded_at: micros(now),
        };
        let txn = careers_eventbus::begin_write(&self.db)
            .await
            .map_err(CasenotesError::from)?;
        store::insert_outcome(&txn, &outcome)
            .await
            .map_err(CasenotesError::from)?;
        store::touch(&txn, &row.id, &outcome.date)
            .await
            .map_err(CasenotesError::from)?;
        txn.commit().await.map_err(CasenotesError::from)?;
        self.audit(&actor, "outcome.create", "guidance", &[&row.id])
            .await?;
        Ok(Response::new(api::RecordOutcomeResponse {
            outcome: Some(outcome_message(outcome)),
        }))
    }

    async fn list_outcomes(
        &self,
        request: Request<api::ListOutcomesRequest>,
    ) -> Answer<api::ListOutcomesResponse> {
        let actor = self.actor(&request).await?;
        let client_id = &request.get_ref().client_id;
        self.open(&actor, client_id).await?;
        let items = store::outcomes(&self.db, client_id)
            .await
            .map_err(CasenotesError::from)?
            .into_iter()
            .map(outcome_message)
            .collect();
        self.audit(&actor, "outcome.list", "guidance", &[client_id])
            .await?;
        Ok(Response::new(api::ListOutcomesResponse { items }))
    }

    async fn accept_transfer(
        &self,
        request: Request<api::AcceptTransferRequest>,
    ) -> Answer<api::AcceptTransferResponse> {
        let actor = self.actor(&request).await?;
        let transfer =
            Handlers::accept_transfer(self, &actor, &request.get_ref().transfer_id).await?;
        Ok(Response::new(api::AcceptTransferResponse {
            transfer: Some(transfer),
        }))
    }
}
