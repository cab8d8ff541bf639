//! Action plans, and stored rows as the API's messages.

use super::*;

impl Handlers {
    pub(crate) fn plan_message(
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

    pub(crate) async fn put_plan(
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

pub(crate) fn plan_cell(client_id: &str) -> Cell<'_> {
    Cell {
        table: "action_plans",
        row: client_id,
        column: "actions",
    }
}

pub(crate) fn outcome_message(row: store::OutcomeRow) -> api::Outcome {
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

pub(crate) fn interaction_message(row: store::InteractionRow) -> api::Interaction {
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

pub(crate) fn consent_message(row: store::ConsentRow) -> api::Consent {
    api::Consent {
        purpose: row.purpose,
        granted: row.granted,
        recorded_at: instant(row.recorded_at),
        recorded_by: row.recorded_by,
    }
}

pub(crate) fn referral_message(row: store::ReferralRow) -> api::Referral {
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

pub(crate) fn encounter_message(row: store::EncounterRow) -> api::Encounter {
    api::Encounter {
        benchmark: u32::try_from(row.benchmark).unwrap_or_default(),
        date: row.date,
        source: row.source,
        source_id: row.source_id,
    }
}

pub(crate) fn audit_message(row: store::AuditRow) -> api::AuditEntry {
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

pub(crate) fn transfer_message(row: store::TransferRow) -> api::Transfer {
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
pub(crate) fn benchmark_counts(encounters: &[store::EncounterRow]) -> Vec<api::BenchmarkCount> {
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
