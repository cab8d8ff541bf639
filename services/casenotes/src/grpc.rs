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
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    audit::AuditKey,
    audit_log::{self, Record},
    crypto::Cell,
    domain::{self, NewClient},
    erasure,
    error::CasenotesError,
    protection::{AuditSink, KeySource, Sealer},
    store::{self, ClientRow},
};

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;

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

pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

pub(crate) fn instant(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn personal_cell(client_id: &str) -> Cell<'_> {
    Cell {
        table: "clients",
        row: client_id,
        column: "personal",
    }
}

fn note_cell(note_id: &str) -> Cell<'_> {
    Cell {
        table: "notes",
        row: note_id,
        column: "text",
    }
}

fn page_limit(limit: u32) -> Result<u64, CasenotesError> {
    match limit {
        0 => Ok(DEFAULT_LIMIT.into()),
        limit if limit <= MAX_LIMIT => Ok(limit.into()),
        limit => Err(CasenotesError::Invalid(vec![(
            "limit",
            format!("{limit} is over the maximum of {MAX_LIMIT}"),
        )])),
    }
}

impl Handlers {
    /// The caller, who must be an adviser or supervisor with an organisation.
    async fn actor<T>(&self, request: &Request<T>) -> Result<Actor, Status> {
        let identity = identity::caller(request)?;
        let supervisor = identity.has_role("supervisor");
        if !(supervisor || identity.has_role("adviser")) {
            return Err(CasenotesError::Forbidden(
                "client records are for advisers and supervisors".to_owned(),
            )
            .into());
        }
        let org = identity
            .org
            .clone()
            .filter(|org| !org.is_empty())
            .ok_or_else(|| {
                CasenotesError::Forbidden(
                    "the token names no organisation (claim `org`)".to_owned(),
                )
            })?;
        let actor = Actor {
            sub: identity.sub.clone(),
            org,
            supervisor,
        };
        self.remember(&actor).await.map_err(Status::from)?;
        Ok(actor)
    }

    /// Records the organisation and adviser the first time a token names them.
    async fn remember(&self, actor: &Actor) -> Result<(), CasenotesError> {
        let pair = (actor.org.clone(), actor.sub.clone());
        let known = self
            .seen
            .lock()
            .map(|seen| seen.contains(&pair))
            .unwrap_or(false);
        if !known {
            store::remember_principal(&self.db, &actor.org, &actor.sub, micros(Utc::now())).await?;
            if let Ok(mut seen) = self.seen.lock() {
                seen.insert(pair);
            }
        }
        Ok(())
    }

    /// Appends one entry per client (or one without a client) and waits until durable.
    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        purpose: &str,
        clients: &[&str],
    ) -> Result<(), CasenotesError> {
        let record = |client_id: Option<&str>| Record {
            org: actor.org.clone(),
            actor: actor.sub.clone(),
            action: action.to_owned(),
            client_id: client_id.map(str::to_owned),
            purpose: purpose.to_owned(),
        };
        let records = if clients.is_empty() {
            vec![record(None)]
        } else {
            clients.iter().map(|client| record(Some(client))).collect()
        };
        Ok(self.audit.append(records).await?)
    }

    /// The caller's organisation's client and its data key; anything else is not found.
    async fn open(
        &self,
        actor: &Actor,
        client_id: &str,
    ) -> Result<(ClientRow, Sealer), CasenotesError> {
        let row = store::client(&self.db, &actor.org, client_id)
            .await?
            .ok_or(CasenotesError::NotFound("client"))?;
        let key = self
            .vault
            .load(client_id)
            .await?
            .ok_or(CasenotesError::NotFound("client"))?;
        Ok((row, key))
    }

    fn seal_personal(
        &self,
        key: &Sealer,
        client_id: &str,
        personal: &Personal,
    ) -> Result<Vec<u8>, CasenotesError> {
        let json = serde_json::to_vec(personal)
            .map_err(|error| CasenotesError::Corrupt(error.to_string()))?;
        Ok(key.seal(personal_cell(client_id), &json)?)
    }

    fn client_message(&self, row: &ClientRow, key: &Sealer) -> Result<api::Client, CasenotesError> {
        let json = key.open(personal_cell(&row.id), &row.personal)?;
        let personal: Personal = serde_json::from_slice(&json)
            .map_err(|error| CasenotesError::Corrupt(error.to_string()))?;
        Ok(api::Client {
            id: row.id.clone(),
            name: personal.name,
            date_of_birth: personal.date_of_birth,
            stage: row.stage.clone(),
            email: personal.email,
            phone: personal.phone,
            uln: personal.uln,
            postcode_district: personal.postcode_district,
            school_urn: row.school_urn.clone(),
            priority_groups: personal.priority_groups,
            organisation: row.org.clone(),
            created_at: instant(row.created_at),
            updated_at: instant(row.updated_at),
            version: row.version,
        })
    }

    fn personal_of(&self, row: &ClientRow, key: &Sealer) -> Result<Personal, CasenotesError> {
        let json = key.open(personal_cell(&row.id), &row.personal)?;
        serde_json::from_slice(&json).map_err(|error| CasenotesError::Corrupt(error.to_string()))
    }

    fn note_message(
        &self,
        note: &store::NoteRow,
        key: &Sealer,
    ) -> Result<api::Note, CasenotesError> {
        let text = key.open(note_cell(&note.id), &note.text)?;
        Ok(api::Note {
            id: note.id.clone(),
            client_id: note.client_id.clone(),
            text: String::from_utf8(text)
                .map_err(|error| CasenotesError::Corrupt(error.to_string()))?,
            amends: note.amends.clone(),
            author: note.author.clone(),
            recorded_at: instant(note.recorded_at),
        })
    }

    async fn create_client(
        &self,
        actor: &Actor,
        request: api::CreateClientRequest,
    ) -> Result<api::Client, CasenotesError> {
        let now = Utc::now();
        let valid = domain::check_new_client(
            NewClient {
                name: request.name,
                date_of_birth: request.date_of_birth,
                stage: request.stage,
                email: request.email,
                phone: request.phone,
                uln: request.uln,
                postcode_district: request.postcode_district,
                school_urn: request.school_urn,
                priority_groups: request.priority_groups,
            },
            now.date_naive(),
        )
        .map_err(CasenotesError::Invalid)?;
        let client = valid.client;
        let id = new_id();
        // The key first, in its own store: a client row never exists without its key.
        let key = self.vault.create(&id).await?;
        let personal = Personal {
            name: client.name,
            date_of_birth: client.date_of_birth,
            email: client.email,
            phone: client.phone,
            uln: client.uln,
            postcode_district: client.postcode_district,
            priority_groups: client.priority_groups,
        };
        let row = ClientRow {
            personal: self.seal_personal(&key, &id, &personal)?,
            id: id.clone(),
            org: actor.org.clone(),
            stage: client.stage,
            school_urn: client.school_urn,
            created_at: micros(now),
            updated_at: micros(now),
            last_activity_on: now.date_naive().to_string(),
            version: 1,
        };
        let txn = careers_eventbus::begin_write(&self.db).await?;
        store::insert_client(&txn, &row).await?;
        store::insert_consent(
            &txn,
            &store::ConsentRow {
                id: new_id(),
                client_id: id.clone(),
                purpose: "recording".into(),
                granted: request.recording_consent.unwrap_or(true),
                recorded_at: micros(now),
                recorded_by: actor.sub.clone(),
            },
        )
        .await?;
        txn.commit().await?;
        self.audit(actor, "client.create", "guidance", &[&id])
            .await?;
        self.client_message(&row, &key)
    }

    async fn update_client(
        &self,
        actor: &Actor,
        request: api::UpdateClientRequest,
    ) -> Result<api::Client, CasenotesError> {
        if request.expected_version == 0 {
            return Err(CasenotesError::IfMatchRequired);
        }
        let (row, key) = self.open(actor, &request.client_id).await?;
        if row.version != request.expected_version {
            return Err(CasenotesError::VersionConflict(request.expected_version));
        }
        let mut personal = self.personal_of(&row, &key)?;
        let mut problems = Vec::new();
        let clear = |field: &str| request.clear.iter().any(|cleared| cleared == field);
        for field in &request.clear {
            if !["email", "phone", "uln", "postcode_district", "school_urn"]
                .contains(&field.as_str())
            {
                problems.push(("clear", format!("{field:?} cannot be cleared")));
            }
        }
        if !problems.is_empty() {
            return Err(CasenotesError::Invalid(problems));
        }
        let merge = |current: Option<String>, given: Option<String>, field: &str| {
            if clear(field) {
                None
            } else {
                given.or(current)
            }
        };
        let merged = NewClient {
            name: request.name.unwrap_or(personal.name),
            date_of_birth: request.date_of_birth.unwrap_or(personal.date_of_birth),
            stage: request.stage.unwrap_or(row.stage.clone()),
            email: merge(personal.email, request.email, "email"),
            phone: merge(personal.phone, request.phone, "phone"),
            uln: merge(personal.uln, request.uln, "uln"),
            postcode_district: merge(
                personal.postcode_district,
                request.postcode_district,
                "postcode_district",
            ),
            school_urn: merge(row.school_urn.clone(), request.school_urn, "school_urn"),
            priority_groups: if request.replace_priority_groups {
                request.priority_groups
            } else {
                personal.priority_groups
            },
        };
        let now = Utc::now();
        let client = domain::check_new_client(merged, now.date_naive())
            .map_err(CasenotesError::Invalid)?
            .client;
        personal = Personal {
            name: client.name,
            date_of_birth: client.date_of_birth,
            email: client.email,
            phone: client.phone,
            uln: client.uln,
            postcode_district: client.postcode_district,
            priority_groups: client.priority_groups,
        };
        let updated = ClientRow {
            personal: self.seal_personal(&key, &row.id, &personal)?,
            stage: client.stage,
            school_urn: client.school_urn,
            updated_at: micros(now),
            version: row.version + 1,
            ..row
        };
        if !store::update_client(&self.db, &updated, request.expected_version).await? {
            return Err(CasenotesError::VersionConflict(request.expected_version));
        }
        self.audit(actor, "client.update", "guidance", &[&updated.id])
            .await?;
        self.client_message(&updated, &key)
    }

    async fn record_note(
        &self,
        actor: &Actor,
        client_id: &str,
        text: &str,
        amends: Option<&str>,
    ) -> Result<api::Note, CasenotesError> {
        if text.trim().is_empty() {
            return Err(CasenotesError::Invalid(vec![(
                "text",
                "write the note".to_owned(),
            )]));
        }
        if text.len() > self.note_max_bytes {
            return Err(CasenotesError::NoteTooLong {
                max: self.note_max_bytes,
                actual: text.len(),
            });
        }
        let (row, key) = self.open(actor, client_id).await?;
        if let Some(amends) = amends
            && !store::note_exists(&self.db, client_id, amends).await?
        {
            return Err(CasenotesError::NotFound("note"));
        }
        if !store::consented(&self.db, client_id, "recording").await? {
            return Err(CasenotesError::ConsentRequired("recording"));
        }
        let now = Utc::now();
        let id = new_id();
        let note = store::NoteRow {
            text: key.seal(note_cell(&id), text.as_bytes())?,
            id: id.clone(),
            client_id: client_id.to_owned(),
            amends: amends.map(str::to_owned),
            author: actor.sub.clone(),
            recorded_at: micros(now),
        };
        let txn = careers_eventbus::begin_write(&self.db).await?;
        store::insert_note(&txn, &note).await?;
        store::touch(&txn, client_id, &now.date_naive().to_string()).await?;
        enqueue(
            &txn,
            client_id,
            0,
            &NoteRecorded {
                client_id: client_id.to_owned(),
                note_id: id,
                organisation: row.org.clone(),
                amends: amends.unwrap_or_default().to_owned(),
                recorded_at: instant(note.recorded_at),
            },
        )
        .await?;
        txn.commit().await?;
        self.waker.wake();
        let action = if amends.is_some() {
            "note.amend"
        } else {
            "note.create"
        };
        self.audit(actor, action, "guidance", &[client_id]).await?;
        self.note_message(&note, &key)
    }

    async fn record_interaction(
        &self,
        actor: &Actor,
        request: api::RecordInteractionRequest,
    ) -> Result<api::Interaction, CasenotesError> {
        let now = Utc::now();
        let date = domain::check_interaction(
            &request.date,
            &request.channel,
            &request.r#type,
            now.date_naive(),
        )
        .map_err(CasenotesError::Invalid)?;
        let (row, _) = self.open(actor, &request.client_id).await?;
        let interaction = store::InteractionRow {
            id: new_id(),
            client_id: row.id.clone(),
            date: date.to_string(),
            channel: request.channel,
            kind: request.r#type,
            recorded_by: actor.sub.clone(),
            recorded_at: micros(now),
        };
        let txn = careers_eventbus::begin_write(&self.db).await?;
        store::insert_interaction(&txn, &interaction).await?;
        store::touch(&txn, &row.id, &interaction.date).await?;
        if let Some(benchmark) = domain::benchmark_of(&interaction.kind) {
            let mut subjects = vec![format!("client:{}", row.id)];
            subjects.extend(row.school_urn.iter().map(|urn| format!("school:{urn}")));
            for subject in subjects {
                store::insert_encounter(
                    &txn,
                    &store::EncounterRow {
                        subject,
                        benchmark,
                        date: interaction.date.clone(),
                        source: "interaction".into(),
                        source_id: interaction.id.clone(),
                    },
                )
                .await?;
            }
        }
        txn.commit().await?;
        self.audit(actor, "interaction.create", "guidance", &[&row.id])
            .await?;
        Ok(interaction_message(interaction))
    }

    async fn request_referral(
        &self,
        actor: &Actor,
        request: api::RequestReferralRequest,
    ) -> Result<api::Referral, CasenotesError> {
        let now = Utc::now();
        let referral = domain::NewReferral {
            activity_type: request.activity_type,
            subjects: request.subjects,
            soc_codes: request.soc_codes,
            earliest: request.earliest,
            latest: request.latest,
        };
        domain::check_referral(&referral, now.date_naive()).map_err(CasenotesError::Invalid)?;
        let (row, key) = self.open(actor, &request.client_id).await?;
        if !store::consented(&self.db, &row.id, "ambassador_sharing").await? {
            return Err(CasenotesError::ConsentRequired("ambassador_sharing"));
        }
        let personal = self.personal_of(&row, &key)?;
        let stored = store::ReferralRow {
            id: new_id(),
            client_id: row.id.clone(),
            activity_type: referral.activity_type,
            subjects: referral.subjects,
            soc_codes: referral.soc_codes,
            earliest: referral.earliest,
            latest: referral.latest,
            requested_at: micros(now),
            requested_by: actor.sub.clone(),
        };
        // The event locates the encounter by the school, or else the district only.
        let postcode_district = if row.school_urn.is_some() {
            String::new()
        } else {
            personal.postcode_district.unwrap_or_default()
        };
        let txn = careers_eventbus::begin_write(&self.db).await?;
        store::insert_referral(&txn, &stored).await?;
        enqueue(
            &txn,
            &row.id,
            0,
            &ReferralRequested {
                referral_id: stored.id.clone(),
                client_id: row.id.clone(),
                organisation: row.org.clone(),
                school_urn: row.school_urn.clone().unwrap_or_default(),
                postcode_district,
                soc_codes: stored.soc_codes.clone(),
                earliest: stored.earliest.clone(),
                latest: stored.latest.clone(),
                activity_type: stored.activity_type.clone(),
                subjects: stored.subjects.clone(),
                stage: row.stage.clone(),
            },
        )
        .await?;
        txn.commit().await?;
        self.waker.wake();
        self.audit(actor, "referral.create", "guidance", &[&row.id])
            .await?;
        Ok(referral_message(stored))
    }

    async fn export(
        &self,
        actor: &Actor,
        client_id: &str,
    ) -> Result<api::ExportClientResponse, CasenotesError> {
        let (row, key) = self.open(actor, client_id).await?;
        // The export's own entry is part of what it returns.
        self.audit(actor, "client.export", "subject_access", &[client_id])
            .await?;
        let notes = store::notes(&self.db, client_id)
            .await?
            .iter()
            .map(|note| self.note_message(note, &key))
            .collect::<Result<_, _>>()?;
        Ok(api::ExportClientResponse {
            client: Some(self.client_message(&row, &key)?),
            notes,
            interactions: store::interactions(&self.db, client_id)
                .await?
                .into_iter()
                .map(interaction_message)
                .collect(),
            consents: store::consents(&self.db, client_id)
                .await?
                .into_iter()
                .map(consent_message)
                .collect(),
            referrals: store::referrals(&self.db, client_id)
                .await?
                .into_iter()
                .map(referral_message)
                .collect(),
            encounters: store::encounters(
                &self.db,
                &format!("client:{client_id}"),
                "0000-01-01",
                "9999-12-31",
            )
            .await?
            .into_iter()
            .map(encounter_message)
            .collect(),
            audit: store::audit_of_client(&self.db, client_id)
                .await?
                .into_iter()
                .map(audit_message)
                .collect(),
            exported_at: Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
            action_plan: Some(self.plan_message(
                client_id,
                store::plan(&self.db, client_id).await?,
                &key,
            )?),
            outcomes: store::outcomes(&self.db, client_id)
                .await?
                .into_iter()
                .map(outcome_message)
                .collect(),
            transfers: store::transfers_of_client(&self.db, client_id)
                .await?
                .into_iter()
                .map(transfer_message)
                .collect(),
        })
    }

    async fn erase(
        &self,
        actor: &Actor,
        client_id: &str,
    ) -> Result<api::EraseClientResponse, CasenotesError> {
        actor.require_supervisor("erases a client")?;
        let (row, _) = self.open(actor, client_id).await?;
        let erased_at = erasure::erase(
            &self.db,
            &self.keys,
            &self.waker,
            &row.id,
            &row.org,
            Utc::now(),
        )
        .await?;
        self.audit(actor, "client.erase", "erasure", &[client_id])
            .await?;
        Ok(api::EraseClientResponse {
            client_id: client_id.to_owned(),
            erased_at: instant(erased_at),
        })
    }

    async fn accept_transfer(
        &self,
        actor: &Actor,
        transfer_id: &str,
    ) -> Result<api::Transfer, CasenotesError> {
        actor.require_supervisor("accepts an incoming transfer")?;
        let transfer = store::transfer(&self.db, transfer_id)
            .await?
            .filter(|transfer| transfer.to_org == actor.org)
            .ok_or(CasenotesError::NotFound("transfer"))?;
        let now = micros(Utc::now());
        let txn = careers_eventbus::begin_write(&self.db).await?;
        if !store::accept_transfer(&txn, transfer_id, now).await? {
            return Err(CasenotesError::InvalidTransition(format!(
                "transfer {transfer_id} is {}, not pending",
                transfer.status
            )));
        }
        if store::client(&txn, &transfer.from_org, &transfer.client_id)
            .await?
            .is_none()
        {
            return Err(CasenotesError::InvalidTransition(
                "the client is no longer held by the sending organisation".to_owned(),
            ));
        }
        store::move_client(&txn, &transfer.client_id, &transfer.to_org, now).await?;
        txn.commit().await?;
        self.audit(actor, "transfer.accept", "transfer", &[&transfer.client_id])
            .await?;
        Ok(transfer_message(store::TransferRow {
            status: "accepted".into(),
            accepted_at: Some(now),
            ..transfer
        }))
    }
}

impl Handlers {
    fn plan_message(
        &self,
        client_id: &str,
        row: Option<store::PlanRow>,
        key: &Sealer,
    ) -> Result<api::ActionPlan, CasenotesError> {
        let Some(row) = row else {
            return Ok(api::ActionPlan {
                client_id: client_id.to_owned(),
                ..api::ActionPlan::default()
            });
        };
        let json = key.open(plan_cell(client_id), &row.actions)?;
        let actions: Vec<api::Action> = serde_json::from_slice(&json)
            .map_err(|error| CasenotesError::Corrupt(error.to_string()))?;
        Ok(api::ActionPlan {
            client_id: row.client_id,
            actions,
            version: row.version,
            updated_at: Some(instant(row.updated_at)),
            updated_by: Some(row.updated_by),
        })
    }

    async fn put_plan(
        &self,
        actor: &Actor,
        request: api::PutActionPlanRequest,
    ) -> Result<api::ActionPlan, CasenotesError> {
        let codes: Vec<String> = request
            .actions
            .iter()
            .flat_map(|action| action.soc_codes.iter().cloned())
            .collect();
        let known = store::known_occupations(&self.db, &codes).await?;
        let actions: Vec<domain::NewAction<'_>> = request
            .actions
            .iter()
            .map(|action| {
                (
                    action.goal.as_str(),
                    action.due_date.as_str(),
                    action.status.as_str(),
                    action.soc_codes.as_slice(),
                )
            })
            .collect();
        domain::check_actions(&actions, |code| known.contains(code))
            .map_err(CasenotesError::Invalid)?;
        let (row, key) = self.open(actor, &request.client_id).await?;
        let held = store::plan(&self.db, &row.id).await?;
        let held_version = held.as_ref().map_or(0, |plan| plan.version);
        if request.expected_version != 0 && request.expected_version != held_version {
            return Err(CasenotesError::VersionConflict(request.expected_version));
        }
        let json = serde_json::to_vec(&request.actions)
            .map_err(|error| CasenotesError::Corrupt(error.to_string()))?;
        let plan = store::PlanRow {
            client_id: row.id.clone(),
            version: held_version + 1,
            actions: key.seal(plan_cell(&row.id), &json)?,
            updated_at: micros(Utc::now()),
            updated_by: actor.sub.clone(),
        };
        if !store::put_plan(&self.db, &plan).await? {
            return Err(CasenotesError::VersionConflict(held_version));
        }
        self.audit(actor, "action_plan.put", "guidance", &[&row.id])
            .await?;
        self.plan_message(&row.id, Some(plan), &key)
    }
}

fn plan_cell(client_id: &str) -> Cell<'_> {
    Cell {
        table: "action_plans",
        row: client_id,
        column: "actions",
    }
}

fn outcome_message(row: store::OutcomeRow) -> api::Outcome {
    api::Outcome {
        id: row.id,
        client_id: row.client_id,
        date: row.date,
        r#type: row.kind,
        soc_code: row.soc_code,
        recorded_by: row.recorded_by,
        recorded_at: instant(row.recorded_at),
    }
}

fn interaction_message(row: store::InteractionRow) -> api::Interaction {
    api::Interaction {
        id: row.id,
        client_id: row.client_id,
        date: row.date,
        channel: row.channel,
        r#type: row.kind,
        recorded_by: row.recorded_by,
        recorded_at: instant(row.recorded_at),
    }
}

fn consent_message(row: store::ConsentRow) -> api::Consent {
    api::Consent {
        purpose: row.purpose,
        granted: row.granted,
        recorded_at: instant(row.recorded_at),
        recorded_by: row.recorded_by,
    }
}

fn referral_message(row: store::ReferralRow) -> api::Referral {
    api::Referral {
        id: row.id,
        client_id: row.client_id,
        activity_type: row.activity_type,
        subjects: row.subjects,
        soc_codes: row.soc_codes,
        earliest: row.earliest,
        latest: row.latest,
        requested_at: instant(row.requested_at),
        requested_by: row.requested_by,
    }
}

fn encounter_message(row: store::EncounterRow) -> api::Encounter {
    api::Encounter {
        benchmark: u32::try_from(row.benchmark).unwrap_or_default(),
        date: row.date,
        source: row.source,
        source_id: row.source_id,
    }
}

fn audit_message(row: store::AuditRow) -> api::AuditEntry {
    let (sequence, organisation, at, actor, action, client_id, purpose) = row;
    api::AuditEntry {
        sequence,
        organisation,
        actor,
        action,
        client_id,
        purpose,
        at: instant(at),
    }
}

fn transfer_message(row: store::TransferRow) -> api::Transfer {
    api::Transfer {
        id: row.id,
        client_id: row.client_id,
        from_org: row.from_org,
        to_org: row.to_org,
        status: row.status,
        requested_at: instant(row.requested_at),
        accepted_at: row.accepted_at.map(instant),
    }
}

/// Counts per benchmark (5, 6, 8), each with its latest date.
fn benchmark_counts(encounters: &[store::EncounterRow]) -> Vec<api::BenchmarkCount> {
    [5, 6, 8]
        .into_iter()
        .map(|benchmark| {
            let of: Vec<&store::EncounterRow> = encounters
                .iter()
                .filter(|encounter| encounter.benchmark == benchmark)
                .collect();
            api::BenchmarkCount {
                benchmark: u32::try_from(benchmark).unwrap_or_default(),
                encounters: u32::try_from(of.len()).unwrap_or(u32::MAX),
                latest: of.iter().map(|encounter| encounter.date.clone()).max(),
            }
        })
        .collect()
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
