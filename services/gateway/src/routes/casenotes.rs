//! Case notes over HTTP (`adviser`, `supervisor`; the service scopes everything to the
//! caller's organisation). The casenotes messages are the JSON: a body is parsed straight
//! into the request message (unknown fields refused) and the answer written as it is.

use std::future::Future;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, rejection::QueryRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use careers_proto::careers::casenotes::v1::{
    self as api, casenotes_service_client::CasenotesServiceClient,
};
use serde::Deserialize;
use serde_json::Value;

use super::call::{ApiState, Channel, PageQuery, body, if_match, json, query, versioned};
use crate::problem::Problem;
use crate::routes::call::Caller;

type Client = CasenotesServiceClient<Channel>;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/clients", get(list).post(create))
        .route("/v1/clients/{id}", get(get_one).patch(update).delete(erase))
        .route("/v1/clients/{id}/notes", get(list_notes).post(record_note))
        .route(
            "/v1/clients/{id}/notes/{note_id}/amendments",
            post(amend_note),
        )
        .route(
            "/v1/clients/{id}/interactions",
            get(list_interactions).post(record_interaction),
        )
        .route(
            "/v1/clients/{id}/consents",
            get(list_consents).post(record_consent),
        )
        .route(
            "/v1/clients/{id}/referrals",
            get(list_referrals).post(request_referral),
        )
        .route(
            "/v1/clients/{id}/action-plan",
            get(action_plan).put(put_action_plan),
        )
        .route(
            "/v1/clients/{id}/outcomes",
            get(list_outcomes).post(record_outcome),
        )
        .route("/v1/clients/{id}/export", get(export))
        .route("/v1/clients/{id}/gatsby", get(client_gatsby))
        .route("/v1/clients/{id}/transfers", post(request_transfer))
        .route("/v1/transfers", get(list_transfers))
        .route("/v1/transfers/{id}/accept", post(accept_transfer))
        .route("/v1/schools/{urn}/gatsby", get(school_gatsby))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/verify", post(verify_audit))
}

/// Calls casenotes as the authenticated caller.
async fn call<Req, Resp, Fut>(
    caller: &Caller,
    message: Req,
    method: impl FnOnce(Client, tonic::Request<Req>) -> Fut,
) -> Result<Resp, Problem>
where
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    caller.call(caller.casenotes(), message, method).await
}

fn client_response(status: StatusCode, client: Option<api::Client>) -> Response {
    let version = client.as_ref().map(|client| client.version);
    versioned(status, &client, version)
}

pub(crate) async fn create(caller: Caller, bytes: Bytes) -> Result<Response, Problem> {
    let message: api::CreateClientRequest = body(&bytes)?;
    let answer = call(&caller, message, |mut client, request| async move {
        client.create_client(request).await
    })
    .await?;
    Ok(client_response(StatusCode::CREATED, answer.client))
}

pub(crate) async fn list(
    caller: Caller,
    parameters: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let message = api::ListClientsRequest {
        limit: parameters.limit,
        cursor: parameters.cursor,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.list_clients(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

pub(crate) async fn get_one(
    caller: Caller,
    Path(client_id): Path<String>,
) -> Result<Response, Problem> {
    let answer = call(
        &caller,
        api::GetClientRequest { client_id },
        |mut client, request| async move { client.get_client(request).await },
    )
    .await?;
    Ok(client_response(StatusCode::OK, answer.client))
}

/// `PATCH /v1/clients/{id}`: a JSON merge patch (RFC 7396) at `If-Match`; `null` clears
/// an optional field.
pub(crate) async fn update(
    caller: Caller,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let expected_version = if_match(&headers)?;
    let patch: serde_json::Map<String, Value> = body(&bytes)?;
    let mut message = api::UpdateClientRequest {
        client_id,
        expected_version,
        ..api::UpdateClientRequest::default()
    };
    let mut problems = Vec::new();
    for (field, value) in patch {
        let text = match &value {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            _ if field == "priority_groups" => None,
            _ => {
                problems.push((field.clone(), "must be a string or null".to_owned()));
                continue;
            }
        };
        match (field.as_str(), text) {
            ("name", Some(text)) => message.name = Some(text),
            ("date_of_birth", Some(text)) => message.date_of_birth = Some(text),
            ("stage", Some(text)) => message.stage = Some(text),
            ("email", Some(text)) => message.email = Some(text),
            ("phone", Some(text)) => message.phone = Some(text),
            ("uln", Some(text)) => message.uln = Some(text),
            ("postcode_district", Some(text)) => message.postcode_district = Some(text),
            ("school_urn", Some(text)) => message.school_urn = Some(text),
            ("email" | "phone" | "uln" | "postcode_district" | "school_urn", None) => {
                message.clear.push(field.clone());
            }
            ("priority_groups", _) => match serde_json::from_value::<Vec<String>>(value) {
                Ok(groups) => {
                    message.priority_groups = groups;
                    message.replace_priority_groups = true;
                }
                Err(_) => problems.push((field.clone(), "must be a list of codes".to_owned())),
            },
            ("name" | "date_of_birth" | "stage", None) => {
                problems.push((
                    field.clone(),
                    "is required and cannot be cleared".to_owned(),
                ));
            }
            _ => problems.push((
                field.clone(),
                "is not a field a client record can change".to_owned(),
            )),
        }
    }
    if !problems.is_empty() {
        return Err(Problem::invalid_fields(problems));
    }
    let answer = call(&caller, message, |mut client, request| async move {
        client.update_client(request).await
    })
    .await?;
    Ok(client_response(StatusCode::OK, answer.client))
}

pub(crate) async fn erase(
    caller: Caller,
    Path(client_id): Path<String>,
) -> Result<Response, Problem> {
    call(
        &caller,
        api::EraseClientRequest { client_id },
        |mut client, request| async move { client.erase_client(request).await },
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextBody {
    text: String,
}

pub(crate) async fn amend_note(
    caller: Caller,
    Path((client_id, note_id)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let TextBody { text } = body(&bytes)?;
    let message = api::AmendNoteRequest {
        client_id,
        note_id,
        text,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.amend_note(request).await
    })
    .await?;
    Ok(json(StatusCode::CREATED, &answer.note))
}

/// `GET /v1/clients/{id}/…`: the path's client into the request, the answer as JSON.
macro_rules! read_of_client {
    ($($name:ident: $request:ident => $method:ident;)*) => {$(
        pub(crate) async fn $name(
            caller: Caller,
            Path(client_id): Path<String>,
        ) -> Result<Response, Problem> {
            let message = api::$request { client_id };
            let answer = call(&caller, message, |mut client, request| async move {
                client.$method(request).await
            })
            .await?;
            Ok(json(StatusCode::OK, &answer))
        }
    )*};
}

read_of_client! {
    list_notes: ListNotesRequest => list_notes;
    list_interactions: ListInteractionsRequest => list_interactions;
    list_consents: ListConsentsRequest => list_consents;
    list_referrals: ListReferralsRequest => list_referrals;
    export: ExportClientRequest => export_client;
    client_gatsby: GetClientGatsbyRequest => get_client_gatsby;
    list_outcomes: ListOutcomesRequest => list_outcomes;
}

/// `POST /v1/clients/{id}/…`: the body as the request message with the path's client,
/// 201 with what was recorded.
macro_rules! record_for_client {
    ($($name:ident: $request:ident => $method:ident . $field:ident;)*) => {$(
        pub(crate) async fn $name(
            caller: Caller,
            Path(client_id): Path<String>,
            bytes: Bytes,
        ) -> Result<Response, Problem> {
            let message = api::$request {
                client_id,
                ..body(&bytes)?
            };
            let answer = call(&caller, message, |mut client, request| async move {
                client.$method(request).await
            })
            .await?;
            Ok(json(StatusCode::CREATED, &answer.$field))
        }
    )*};
}

record_for_client! {
    record_note: RecordNoteRequest => record_note.note;
    record_interaction: RecordInteractionRequest => record_interaction.interaction;
    record_consent: RecordConsentRequest => record_consent.consent;
    request_referral: RequestReferralRequest => request_referral.referral;
    record_outcome: RecordOutcomeRequest => record_outcome.outcome;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SchoolGatsbyQuery {
    #[serde(default)]
    academic_year: i32,
}

pub(crate) async fn school_gatsby(
    caller: Caller,
    Path(urn): Path<String>,
    parameters: Result<Query<SchoolGatsbyQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let message = api::GetSchoolGatsbyRequest {
        urn,
        academic_year: parameters.academic_year,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.get_school_gatsby(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    cursor: String,
    #[serde(default)]
    limit: u32,
}

pub(crate) async fn audit(
    caller: Caller,
    parameters: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let message = api::ListAuditEntriesRequest {
        client_id: parameters.client_id,
        limit: parameters.limit,
        cursor: parameters.cursor,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.list_audit_entries(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

pub(crate) async fn verify_audit(caller: Caller) -> Result<Response, Problem> {
    let answer = call(
        &caller,
        api::VerifyAuditRequest {},
        |mut client, request| async move { client.verify_audit(request).await },
    )
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransferBody {
    to_org: String,
}

pub(crate) async fn request_transfer(
    caller: Caller,
    Path(client_id): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let TransferBody { to_org } = body(&bytes)?;
    let answer = call(
        &caller,
        api::RequestTransferRequest { client_id, to_org },
        |mut client, request| async move { client.request_transfer(request).await },
    )
    .await?;
    Ok(json(StatusCode::CREATED, &answer.transfer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransfersQuery {
    #[serde(default)]
    direction: String,
}

pub(crate) async fn list_transfers(
    caller: Caller,
    parameters: Result<Query<TransfersQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let direction = if parameters.direction.is_empty() {
        "incoming".to_owned()
    } else {
        parameters.direction
    };
    let answer = call(
        &caller,
        api::ListTransfersRequest { direction },
        |mut client, request| async move { client.list_transfers(request).await },
    )
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

pub(crate) async fn accept_transfer(
    caller: Caller,
    Path(transfer_id): Path<String>,
) -> Result<Response, Problem> {
    let answer = call(
        &caller,
        api::AcceptTransferRequest { transfer_id },
        |mut client, request| async move { client.accept_transfer(request).await },
    )
    .await?;
    Ok(json(StatusCode::OK, &answer.transfer))
}

pub(crate) async fn action_plan(
    caller: Caller,
    Path(client_id): Path<String>,
) -> Result<Response, Problem> {
    let answer = call(
        &caller,
        api::GetActionPlanRequest { client_id },
        |mut client, request| async move { client.get_action_plan(request).await },
    )
    .await?;
    Ok(plan_response(answer.plan))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlanBody {
    actions: Vec<api::Action>,
}

/// `PUT /v1/clients/{id}/action-plan` `{"actions":[{"goal","due_date","status","soc_codes"}]}`;
/// `If-Match` optional (without it the plan is replaced whatever its version).
pub(crate) async fn put_action_plan(
    caller: Caller,
    headers: HeaderMap,
    Path(client_id): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let PlanBody { actions } = body(&bytes)?;
    let expected_version = match headers.get(header::IF_MATCH) {
        None => 0,
        Some(value) => value
            .to_str()
            .ok()
            .map(|text| text.trim().trim_start_matches("W/").trim_matches('"'))
            .and_then(|text| text.parse::<i64>().ok())
            .filter(|version| *version >= 0)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "validation_failed",
                    "If-Match must be the ETag the plan was read with, for example \"3\"",
                )
            })?,
    };
    let message = api::PutActionPlanRequest {
        client_id,
        actions,
        expected_version,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.put_action_plan(request).await
    })
    .await?;
    Ok(plan_response(answer.plan))
}

fn plan_response(plan: Option<api::ActionPlan>) -> Response {
    let version = plan.as_ref().map(|plan| plan.version);
    let mut response = json(StatusCode::OK, &plan);
    if let Some(Ok(etag)) = version.map(|version| HeaderValue::from_str(&format!("\"{version}\"")))
    {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}
