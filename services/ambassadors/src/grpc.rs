//! The `careers.ambassadors.v1.AmbassadorsService` handlers. The service enforces the
//! roles itself from the gateway's identity token: `ambassador_coordinator` does
//! everything; an `ambassador` reads its own record (another's is NOT_FOUND); a
//! `school_contact` makes and reads its own URN's requests (another's is NOT_FOUND).
//! Engagements: see [`crate::engagements`].

use std::sync::Arc;

use careers_eventbus::RelayWaker;
use careers_platform::{
    cursor::{Cursors, PAGE},
    identity,
};
use careers_proto::careers::ambassadors::v1::{
    self as api, ambassadors_service_server::AmbassadorsService,
};
use chrono::{NaiveDate, Utc};
use sea_orm::DatabaseConnection;
use tonic::{Request, Response, Status};

use crate::{
    domain,
    engagements::{self, Action, Actor},
    error::AmbassadorsError,
    geo::Places,
    matching, micros, runs,
    sealing::AttributesKey,
    store,
};

type Answer<T> = Result<Response<T>, Status>;

/// What the handlers share.
#[derive(Debug, Clone)]
pub struct Handlers {
    pub db: DatabaseConnection,
    pub places: Arc<Places>,
    pub cursors: Cursors,
    pub waker: RelayWaker,
    pub matching: matching::Options,
    pub key: AttributesKey,
    /// `matching.run_timeout`.
    pub run_timeout: std::time::Duration,
}

const COORDINATOR: &str = "ambassador_coordinator";

fn caller<T>(request: &Request<T>) -> Result<Actor, Status> {
    let identity = identity::caller(request)?;
    if identity.has_role(COORDINATOR) {
        return Ok(Actor::Coordinator);
    }
    if identity.has_role("school_contact") {
        return match identity.org.clone().filter(|org| !org.is_empty()) {
            Some(urn) => Ok(Actor::School(urn)),
            None => Err(AmbassadorsError::Forbidden(
                "a school contact's token names its school (claim `org`, the URN)".to_owned(),
            )
            .into()),
        };
    }
    if identity.has_role("ambassador") {
        return Ok(Actor::Ambassador(identity.sub.clone()));
    }
    Err(AmbassadorsError::Forbidden(
        "the ambassador register is for ambassador coordinators, school contacts and ambassadors"
            .to_owned(),
    )
    .into())
}

fn coordinator_only<T>(request: &Request<T>, what: &str) -> Result<(), Status> {
    match caller(request)? {
        Actor::Coordinator => Ok(()),
        _ => Err(
            AmbassadorsError::Forbidden(format!("{what} is for ambassador coordinators")).into(),
        ),
    }
}

/// A coordinator, or the ambassador acting on its own record (another's is NOT_FOUND).
fn own_or_coordinator(actor: &Actor, id: &str, what: &str) -> Result<(), AmbassadorsError> {
    match actor {
        Actor::Coordinator => Ok(()),
        Actor::Ambassador(own) if own == id => Ok(()),
        Actor::Ambassador(_) => Err(AmbassadorsError::NotFound("ambassador")),
        Actor::School(_) => Err(AmbassadorsError::Forbidden(format!(
            "{what} an ambassador's record is for coordinators and the ambassador"
        ))),
    }
}

fn page_limit(limit: u32) -> Result<u64, AmbassadorsError> {
    PAGE.size(limit)
        .map(u64::from)
        .map_err(|error| AmbassadorsError::Invalid(vec![("limit", error.to_string())]))
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

impl Handlers {
    fn after(&self, scope: &str, cursor: &str) -> Result<String, AmbassadorsError> {
        if cursor.is_empty() {
            return Ok(String::new());
        }
        self.cursors
            .decode(scope, cursor)
            .map_err(|_| AmbassadorsError::BadCursor)
    }

    fn next_cursor(&self, scope: &str, more: bool, last: Option<&str>) -> String {
        match (more, last) {
            (true, Some(last)) => self.cursors.encode(scope, &last),
            _ => String::new(),
        }
    }

    /// Marks failed the runs a stopped process left "running".
    pub async fn fail_abandoned_runs(&self) -> Result<u64, AmbassadorsError> {
        let now = Utc::now();
        let timeout = chrono::Duration::from_std(self.run_timeout).unwrap_or(chrono::Duration::MAX);
        let before = now.checked_sub_signed(timeout).map_or(i64::MIN, micros);
        Ok(store::fail_abandoned_runs(&self.db, before, micros(now)).await?)
    }

    /// Records a run and starts it; it outlives the call, its failure recorded on it.
    async fn start_run(&self) -> Result<String, AmbassadorsError> {
        let id = new_id();
        store::insert_run(&self.db, &id, micros(Utc::now())).await?;
        let handlers = self.clone();
        let run_id = id.clone();
        tokio::spawn(async move {
            let _ = runs::execute(
                &handlers.db,
                &handlers.waker,
                &handlers.key,
                &run_id,
                today(),
                handlers.matching,
            )
            .await;
        });
        Ok(id)
    }

    async fn act(
        &self,
        actor: &Actor,
        id: &str,
        action: Action,
    ) -> Result<Option<api::Engagement>, Status> {
        let engagement = engagements::act(&self.db, actor, id, &action).await?;
        self.waker.wake();
        if action == Action::Decline {
            // "A decline re-matches that slot": a run over everything open, now.
            self.start_run().await?;
        }
        Ok(Some(engagements::message(&engagement)))
    }

    /// The API's view of an ambassador; with its role model, opened and the read
    /// audited, when a coordinator (`reader`, their `sub`) asks.
    async fn ambassador_message(
        &self,
        row: &store::AmbassadorRow,
        reader: Option<&str>,
    ) -> Result<api::Ambassador, AmbassadorsError> {
        let occupation = store::occupation(&self.db, &row.soc_code).await?;
        let mut message = domain::ambassador_message(row, occupation, today())?;
        if let Some(reader) = reader
            && let Some(sealed) = store::role_model(&self.db, &row.id).await?
        {
            let opened = self.key.open(&row.id, &sealed)?;
            message.role_model = Some(
                serde_json::from_slice(&opened)
                    .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?,
            );
            store::record_attribute_reads(
                &self.db,
                std::slice::from_ref(&row.id),
                reader,
                "coordination",
                micros(Utc::now()),
            )
            .await?;
        }
        Ok(message)
    }

    /// The request, if the caller may see it; NOT_FOUND otherwise, like an unknown id.
    async fn visible_request(
        &self,
        caller: &Actor,
        id: &str,
    ) -> Result<store::RequestRow, AmbassadorsError> {
        let row = store::request(&self.db, id)
            .await?
            .ok_or(AmbassadorsError::NotFound("activity request"))?;
        match caller {
            Actor::Coordinator => Ok(row),
            Actor::School(urn) if *urn == row.school_urn => Ok(row),
            _ => Err(AmbassadorsError::NotFound("activity request")),
        }
    }
}

#[tonic::async_trait]
impl AmbassadorsService for Handlers {
    async fn register_ambassador(
        &self,
        request: Request<api::RegisterAmbassadorRequest>,
    ) -> Answer<api::RegisterAmbassadorResponse> {
        coordinator_only(&request, "registering ambassadors")?;
        let reader = identity::caller(&request)?.sub.clone();
        let message = request.into_inner();
        let role_model = domain::role_model(&message)?;
        let known = store::occupation(&self.db, &message.soc_code)
            .await
            .map_err(AmbassadorsError::from)?
            .is_some();
        let row = domain::new_ambassador(
            &message,
            &self.places,
            known,
            today(),
            new_id(),
            micros(Utc::now()),
        )?;
        let txn = careers_eventbus::begin_write(&self.db)
            .await
            .map_err(AmbassadorsError::from)?;
        store::insert_ambassador(&txn, &row)
            .await
            .map_err(AmbassadorsError::from)?;
        if let Some(model) = &role_model {
            let plain = serde_json::to_vec(model)
                .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
            let sealed = self
                .key
                .seal(&row.id, &plain)
                .map_err(AmbassadorsError::from)?;
            store::set_role_model(&txn, &row.id, sealed)
                .await
                .map_err(AmbassadorsError::from)?;
        }
        txn.commit().await.map_err(AmbassadorsError::from)?;
        Ok(Response::new(api::RegisterAmbassadorResponse {
            ambassador: Some(self.ambassador_message(&row, Some(&reader)).await?),
        }))
    }

    async fn get_ambassador(
        &self,
        request: Request<api::GetAmbassadorRequest>,
    ) -> Answer<api::GetAmbassadorResponse> {
        let caller = caller(&request)?;
        let sub = identity::caller(&request)?.sub.clone();
        let id = request.into_inner().id;
        match &caller {
            Actor::Coordinator => {}
            Actor::Ambassador(own) if *own == id => {}
            Actor::Ambassador(_) => return Err(AmbassadorsError::NotFound("ambassador").into()),
            Actor::School(_) => {
                return Err(AmbassadorsError::Forbidden(
                    "ambassadors' records are for coordinators and the ambassador".to_owned(),
                )
                .into());
            }
        }
        let row = store::ambassador(&self.db, &id)
            .await
            .map_err(AmbassadorsError::from)?
            .ok_or(AmbassadorsError::NotFound("ambassador"))?;
        // Role models are for coordinators (and the matcher) only, not even their owner.
        let reader = (caller == Actor::Coordinator).then_some(sub.as_str());
        Ok(Response::new(api::GetAmbassadorResponse {
            ambassador: Some(self.ambassador_message(&row, reader).await?),
        }))
    }

    async fn list_ambassadors(
        &self,
        request: Request<api::ListAmbassadorsRequest>,
    ) -> Answer<api::ListAmbassadorsResponse> {
        coordinator_only(&request, "the register")?;
        let reader = identity::caller(&request)?.sub.clone();
        let message = request.into_inner();
        let limit = page_limit(message.limit)?;
        let after = self.after("ambassadors", &message.cursor)?;
        let mut rows = store::ambassadors_page(&self.db, &after, limit + 1)
            .await
            .map_err(AmbassadorsError::from)?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        let mut items = Vec::with_capacity(rows.len());
        for row in &rows {
            items.push(self.ambassador_message(row, Some(&reader)).await?);
        }
        Ok(Response::new(api::ListAmbassadorsResponse {
            next_cursor: self.next_cursor(
                "ambassadors",
                more,
                rows.last().map(|row| row.id.as_str()),
            ),
            items,
        }))
    }

    async fn update_ambassador(
        &self,
        request: Request<api::UpdateAmbassadorRequest>,
    ) -> Answer<api::UpdateAmbassadorResponse> {
        let actor = caller(&request)?;
        let sub = identity::caller(&request)?.sub.clone();
        let message = request.into_inner();
        own_or_coordinator(&actor, &message.id, "changing")?;
        if message.expected_version <= 0 {
            return Err(AmbassadorsError::IfMatchRequired.into());
        }
        let row = store::ambassador(&self.db, &message.id)
            .await
            .map_err(AmbassadorsError::from)?
            .filter(|row| !row.erased)
            .ok_or(AmbassadorsError::NotFound("ambassador"))?;
        let patch: serde_json::Value = serde_json::from_str(&message.merge_patch)
            .ok()
            .filter(serde_json::Value::is_object)
            .ok_or_else(|| {
                AmbassadorsError::Invalid(vec![(
                    "merge_patch",
                    "must be a JSON object of the registration's fields".to_owned(),
                )])
            })?;
        let mut merged = serde_json::to_value(domain::registration_of(&row)?)
            .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
        domain::merge_patch(&mut merged, &patch);
        let changed: api::RegisterAmbassadorRequest = serde_json::from_value(merged)
            .map_err(|error| AmbassadorsError::Invalid(vec![("merge_patch", error.to_string())]))?;
        let role_model = domain::role_model(&changed)?;
        let known = store::occupation(&self.db, &changed.soc_code)
            .await
            .map_err(AmbassadorsError::from)?
            .is_some();
        let updated = domain::new_ambassador(
            &changed,
            &self.places,
            known,
            today(),
            row.id.clone(),
            row.created_at,
        )?;
        let txn = careers_eventbus::begin_write(&self.db)
            .await
            .map_err(AmbassadorsError::from)?;
        if !store::update_ambassador(&txn, &updated, message.expected_version)
            .await
            .map_err(AmbassadorsError::from)?
        {
            return Err(AmbassadorsError::VersionConflict(message.expected_version).into());
        }
        match (patch.get("role_model"), role_model) {
            (Some(serde_json::Value::Null), _) => store::clear_role_model(&txn, &row.id)
                .await
                .map_err(AmbassadorsError::from)?,
            (_, Some(model)) => {
                let plain = serde_json::to_vec(&model)
                    .map_err(|error| AmbassadorsError::Corrupt(error.to_string()))?;
                let sealed = self
                    .key
                    .seal(&row.id, &plain)
                    .map_err(AmbassadorsError::from)?;
                store::set_role_model(&txn, &row.id, sealed)
                    .await
                    .map_err(AmbassadorsError::from)?;
            }
            _ => {}
        }
        txn.commit().await.map_err(AmbassadorsError::from)?;
        let stored = store::ambassador(&self.db, &row.id)
            .await
            .map_err(AmbassadorsError::from)?
            .ok_or(AmbassadorsError::NotFound("ambassador"))?;
        let reader = (actor == Actor::Coordinator).then_some(sub.as_str());
        Ok(Response::new(api::UpdateAmbassadorResponse {
            ambassador: Some(self.ambassador_message(&stored, reader).await?),
        }))
    }

    async fn erase_ambassador(
        &self,
        request: Request<api::EraseAmbassadorRequest>,
    ) -> Answer<api::EraseAmbassadorResponse> {
        let actor = caller(&request)?;
        let id = request.into_inner().id;
        own_or_coordinator(&actor, &id, "erasing")?;
        if !store::erase_ambassador(&self.db, &id)
            .await
            .map_err(AmbassadorsError::from)?
        {
            return Err(AmbassadorsError::NotFound("ambassador").into());
        }
        Ok(Response::new(api::EraseAmbassadorResponse {}))
    }

    async fn create_activity_request(
        &self,
        request: Request<api::CreateActivityRequestRequest>,
    ) -> Answer<api::CreateActivityRequestResponse> {
        let caller = caller(&request)?;
        let message = request.into_inner();
        match &caller {
            Actor::Coordinator => {}
            Actor::School(urn) if *urn == message.school_urn => {}
            Actor::School(urn) => {
                return Err(AmbassadorsError::Forbidden(format!(
                    "a school contact asks for its own school ({urn}) only"
                ))
                .into());
            }
            Actor::Ambassador(_) => {
                return Err(AmbassadorsError::Forbidden(
                    "activity requests come from schools, colleges and coordinators".to_owned(),
                )
                .into());
            }
        }
        let row = domain::new_request(
            &message,
            &self.places,
            today(),
            new_id(),
            micros(Utc::now()),
        )?;
        store::insert_request(&self.db, &row)
            .await
            .map_err(AmbassadorsError::from)?;
        Ok(Response::new(api::CreateActivityRequestResponse {
            request: Some(domain::request_message(&row)?),
        }))
    }

    async fn get_activity_request(
        &self,
        request: Request<api::GetActivityRequestRequest>,
    ) -> Answer<api::GetActivityRequestResponse> {
        let caller = caller(&request)?;
        let row = self
            .visible_request(&caller, &request.into_inner().id)
            .await?;
        Ok(Response::new(api::GetActivityRequestResponse {
            request: Some(domain::request_message(&row)?),
        }))
    }

    async fn list_activity_requests(
        &self,
        request: Request<api::ListActivityRequestsRequest>,
    ) -> Answer<api::ListActivityRequestsResponse> {
        let caller = caller(&request)?;
        let school = match &caller {
            Actor::Coordinator => None,
            Actor::School(urn) => Some(urn.as_str()),
            Actor::Ambassador(_) => {
                return Err(AmbassadorsError::Forbidden(
                    "activity requests are for schools and coordinators".to_owned(),
                )
                .into());
            }
        };
        let message = request.into_inner();
        let limit = page_limit(message.limit)?;
        let after = self.after("activity_requests", &message.cursor)?;
        let mut rows = store::requests_page(&self.db, school, &after, limit + 1)
            .await
            .map_err(AmbassadorsError::from)?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok(Response::new(api::ListActivityRequestsResponse {
            next_cursor: self.next_cursor(
                "activity_requests",
                more,
                rows.last().map(|row| row.id.as_str()),
            ),
            items: rows
                .iter()
                .map(domain::request_message)
                .collect::<Result<_, _>>()?,
        }))
    }

    async fn count_available_ambassadors(
        &self,
        request: Request<api::CountAvailableAmbassadorsRequest>,
    ) -> Answer<api::CountAvailableAmbassadorsResponse> {
        // An aggregate with no personal data: any authenticated caller.
        identity::caller(&request)?;
        let message = request.into_inner();
        let place = domain::availability_query(&self.places, &message)?;
        let today = today();
        let mut available = 0_u32;
        for row in store::ambassadors_in_occupation(&self.db, &message.soc_code)
            .await
            .map_err(AmbassadorsError::from)?
        {
            if domain::available_for(&row, place, today)? {
                available += 1;
            }
        }
        Ok(Response::new(api::CountAvailableAmbassadorsResponse {
            available_nearby: available,
            postcode_district: if place.is_some() {
                message.postcode_district.trim().to_ascii_uppercase()
            } else {
                String::new()
            },
        }))
    }

    async fn start_matching_run(
        &self,
        request: Request<api::StartMatchingRunRequest>,
    ) -> Answer<api::StartMatchingRunResponse> {
        coordinator_only(&request, "matching")?;
        let id = self.start_run().await?;
        Ok(Response::new(api::StartMatchingRunResponse {
            id,
            status: "running".into(),
        }))
    }

    async fn get_matching_run(
        &self,
        request: Request<api::GetMatchingRunRequest>,
    ) -> Answer<api::GetMatchingRunResponse> {
        coordinator_only(&request, "matching")?;
        self.fail_abandoned_runs().await?;
        let id = request.into_inner().id;
        Ok(Response::new(runs::run_message(&self.db, &id).await?))
    }

    async fn list_engagements(
        &self,
        request: Request<api::ListEngagementsRequest>,
    ) -> Answer<api::ListEngagementsResponse> {
        let actor = caller(&request)?;
        let of = match &actor {
            Actor::Coordinator => store::EngagementsOf::Everyone,
            Actor::Ambassador(id) => store::EngagementsOf::Ambassador(id),
            Actor::School(urn) => store::EngagementsOf::School(urn),
        };
        let message = request.into_inner();
        let limit = page_limit(message.limit)?;
        let after = self.after("engagements", &message.cursor)?;
        let mut rows = store::engagements_page(&self.db, of, &after, limit + 1)
            .await
            .map_err(AmbassadorsError::from)?;
        let more = rows.len() as u64 > limit;
        rows.truncate(limit as usize);
        Ok(Response::new(api::ListEngagementsResponse {
            next_cursor: self.next_cursor(
                "engagements",
                more,
                rows.last().map(|row| row.id.as_str()),
            ),
            items: rows.iter().map(engagements::message).collect(),
        }))
    }

    async fn accept_engagement(
        &self,
        request: Request<api::AcceptEngagementRequest>,
    ) -> Answer<api::AcceptEngagementResponse> {
        let actor = caller(&request)?;
        let engagement = self
            .act(&actor, &request.into_inner().id, Action::Accept)
            .await?;
        Ok(Response::new(api::AcceptEngagementResponse { engagement }))
    }

    async fn decline_engagement(
        &self,
        request: Request<api::DeclineEngagementRequest>,
    ) -> Answer<api::DeclineEngagementResponse> {
        let actor = caller(&request)?;
        let engagement = self
            .act(&actor, &request.into_inner().id, Action::Decline)
            .await?;
        Ok(Response::new(api::DeclineEngagementResponse { engagement }))
    }

    async fn confirm_engagement(
        &self,
        request: Request<api::ConfirmEngagementRequest>,
    ) -> Answer<api::ConfirmEngagementResponse> {
        let actor = caller(&request)?;
        let engagement = self
            .act(&actor, &request.into_inner().id, Action::Confirm)
            .await?;
        Ok(Response::new(api::ConfirmEngagementResponse { engagement }))
    }

    async fn complete_engagement(
        &self,
        request: Request<api::CompleteEngagementRequest>,
    ) -> Answer<api::CompleteEngagementResponse> {
        let actor = caller(&request)?;
        let message = request.into_inner();
        let action = Action::Complete {
            feedback: message.feedback,
            students_reached: message.students_reached,
        };
        let engagement = self.act(&actor, &message.id, action).await?;
        Ok(Response::new(api::CompleteEngagementResponse {
            engagement,
        }))
    }

    async fn cancel_engagement(
        &self,
        request: Request<api::CancelEngagementRequest>,
    ) -> Answer<api::CancelEngagementResponse> {
        let actor = caller(&request)?;
        let engagement = self
            .act(&actor, &request.into_inner().id, Action::Cancel)
            .await?;
        Ok(Response::new(api::CancelEngagementResponse { engagement }))
    }
}
