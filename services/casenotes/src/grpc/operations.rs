//! The business operations behind the handlers: each checks, writes and audits in one transaction.

use super::*;

impl Handlers {
    pub(crate) async fn create_client(
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

    pub(crate) async fn update_client(
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

    pub(crate) async fn record_note(
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

    pub(crate) async fn record_interaction(
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

    pub(crate) async fn request_referral(
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

    pub(crate) async fn export(
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

    pub(crate) async fn erase(
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

    pub(crate) async fn accept_transfer(
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
