//! Who is calling, the audit of what they touch, and the sealed cells of a client's personal fields.

use super::*;

pub(crate) fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub(crate) fn personal_cell(client_id: &str) -> Cell<'_> {
    Cell {
        table: "clients",
        row: client_id,
        column: "personal",
    }
}

pub(crate) fn note_cell(note_id: &str) -> Cell<'_> {
    Cell {
        table: "notes",
        row: note_id,
        column: "text",
    }
}

pub(crate) fn page_limit(limit: u32) -> Result<u64, CasenotesError> {
    careers_platform::cursor::PAGE
        .size(limit)
        .map(u64::from)
        .map_err(|error| CasenotesError::Invalid(vec![("limit", error.to_string())]))
}

impl Handlers {
    /// The caller, who must be an adviser or supervisor with an organisation.
    pub(crate) async fn actor<T>(&self, request: &Request<T>) -> Result<Actor, Status> {
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
    pub(crate) async fn remember(&self, actor: &Actor) -> Result<(), CasenotesError> {
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
    pub(crate) async fn audit(
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
    pub(crate) async fn open(
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

    pub(crate) fn seal_personal(
        &self,
        key: &Sealer,
        client_id: &str,
        personal: &Personal,
    ) -> Result<Vec<u8>, CasenotesError> {
        let json = serde_json::to_vec(personal)
            .map_err(|error| CasenotesError::Corrupt(error.to_string()))?;
        Ok(key.seal(personal_cell(client_id), &json)?)
    }

    pub(crate) fn client_message(
        &self,
        row: &ClientRow,
        key: &Sealer,
    ) -> Result<api::Client, CasenotesError> {
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

    pub(crate) fn personal_of(
        &self,
        row: &ClientRow,
        key: &Sealer,
    ) -> Result<Personal, CasenotesError> {
        let json = key.open(personal_cell(&row.id), &row.personal)?;
        serde_json::from_slice(&json).map_err(|error| CasenotesError::Corrupt(error.to_string()))
    }

    pub(crate) fn note_message(
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
}
