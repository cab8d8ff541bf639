//! STEM Ambassadors over HTTP: the register, activity requests and matching runs. The
//! service enforces the roles (`ambassador_coordinator`; a `school_contact` for its own
//! URN; an `ambassador` for its own record); its messages are the JSON.

use std::future::Future;

use axum::{
    Router,
    body::Bytes,
    extract::{Path, Query, rejection::QueryRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use careers_proto::careers::ambassadors::v1::{
    self as api, ambassadors_service_client::AmbassadorsServiceClient,
};

use super::call::{ApiState, Channel, PageQuery, body, if_match, json, query, versioned};
use crate::problem::Problem;
use crate::routes::call::Caller;

type Client = AmbassadorsServiceClient<Channel>;

pub(super) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/v1/ambassadors", get(list).post(register))
        .route(
            "/v1/ambassadors/{id}",
            get(get_one).patch(update).delete(erase),
        )
        .route(
            "/v1/activity-requests",
            get(list_requests).post(create_request),
        )
        .route("/v1/activity-requests/{id}", get(get_request))
        .route("/v1/matching/runs", post(start_run))
        .route("/v1/matching/runs/{id}", get(get_run))
        .route("/v1/engagements", get(list_engagements))
        .merge(engagement_routes())
}

/// Calls ambassadors as the authenticated caller.
async fn call<Req, Resp, Fut>(
    caller: &Caller,
    message: Req,
    method: impl FnOnce(Client, tonic::Request<Req>) -> Fut,
) -> Result<Resp, Problem>
where
    Fut: Future<Output = Result<tonic::Response<Resp>, tonic::Status>>,
{
    caller.call(caller.ambassadors(), message, method).await
}

pub(crate) async fn register(caller: Caller, bytes: Bytes) -> Result<Response, Problem> {
    let message: api::RegisterAmbassadorRequest = body(&bytes)?;
    let answer = call(&caller, message, |mut client, request| async move {
        client.register_ambassador(request).await
    })
    .await?;
    let version = answer
        .ambassador
        .as_ref()
        .map(|ambassador| ambassador.version);
    Ok(versioned(StatusCode::CREATED, &answer.ambassador, version))
}

pub(crate) async fn list(
    caller: Caller,
    parameters: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let message = api::ListAmbassadorsRequest {
        limit: parameters.limit,
        cursor: parameters.cursor,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.list_ambassadors(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

pub(crate) async fn get_one(caller: Caller, Path(id): Path<String>) -> Result<Response, Problem> {
    let message = api::GetAmbassadorRequest { id };
    let answer = call(&caller, message, |mut client, request| async move {
        client.get_ambassador(request).await
    })
    .await?;
    let version = answer
        .ambassador
        .as_ref()
        .map(|ambassador| ambassador.version);
    Ok(versioned(StatusCode::OK, &answer.ambassador, version))
}

/// `PATCH /v1/ambassadors/{id}`: a JSON merge patch with `If-Match`.
pub(crate) async fn update(
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, Problem> {
    let expected_version = if_match(&headers)?;
    let patch: serde_json::Map<String, serde_json::Value> = body(&bytes)?;
    let message = api::UpdateAmbassadorRequest {
        id,
        expected_version,
        merge_patch: serde_json::Value::Object(patch).to_string(),
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.update_ambassador(request).await
    })
    .await?;
    let version = answer
        .ambassador
        .as_ref()
        .map(|ambassador| ambassador.version);
    Ok(versioned(StatusCode::OK, &answer.ambassador, version))
}

pub(crate) async fn erase(caller: Caller, Path(id): Path<String>) -> Result<Response, Problem> {
    let message = api::EraseAmbassadorRequest { id };
    call(&caller, message, |mut client, request| async move {
        client.erase_ambassador(request).await
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn create_request(caller: Caller, bytes: Bytes) -> Result<Response, Problem> {
    let message: api::CreateActivityRequestRequest = body(&bytes)?;
    let answer = call(&caller, message, |mut client, request| async move {
        client.create_activity_request(request).await
    })
    .await?;
    Ok(json(StatusCode::CREATED, &answer.request))
}

pub(crate) async fn list_requests(
    caller: Caller,
    parameters: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let message = api::ListActivityRequestsRequest {
        limit: parameters.limit,
        cursor: parameters.cursor,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.list_activity_requests(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

pub(crate) async fn get_request(
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let message = api::GetActivityRequestRequest { id };
    let answer = call(&caller, message, |mut client, request| async move {
        client.get_activity_request(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer.request))
}

/// `POST /v1/matching/runs`: 202, the run goes on; its body is ignored.
pub(crate) async fn start_run(caller: Caller) -> Result<Response, Problem> {
    let answer = call(
        &caller,
        api::StartMatchingRunRequest {},
        |mut client, request| async move { client.start_matching_run(request).await },
    )
    .await?;
    Ok(json(StatusCode::ACCEPTED, &answer))
}

pub(crate) async fn get_run(caller: Caller, Path(id): Path<String>) -> Result<Response, Problem> {
    let message = api::GetMatchingRunRequest { id };
    let answer = call(&caller, message, |mut client, request| async move {
        client.get_matching_run(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

pub(crate) async fn list_engagements(
    caller: Caller,
    parameters: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let parameters = query(parameters)?;
    let message = api::ListEngagementsRequest {
        limit: parameters.limit,
        cursor: parameters.cursor,
    };
    let answer = call(&caller, message, |mut client, request| async move {
        client.list_engagements(request).await
    })
    .await?;
    Ok(json(StatusCode::OK, &answer))
}

/// `POST /v1/engagements/{id}/accept|decline|confirm|complete|cancel`; only `complete`
/// reads a body (`{"feedback","students_reached"}`, both optional).
/// One route per action, so the access table can name who takes each.
fn engagement_routes() -> Router<ApiState> {
    ["accept", "decline", "confirm", "complete", "cancel"]
        .into_iter()
        .fold(Router::new(), |router, action| {
            router.route(
                &format!("/v1/engagements/{{id}}/{action}"),
                post(
                    move |caller: Caller, Path(id): Path<String>, bytes: Bytes| {
                        act_on_engagement(caller, id, action, bytes)
                    },
                ),
            )
        })
}

async fn act_on_engagement(
    caller: Caller,
    id: String,
    action: &'static str,
    bytes: Bytes,
) -> Result<Response, Problem> {
    // accept, decline, confirm and cancel carry only the id.
    macro_rules! by_id {
        ($request:ident, $method:ident) => {
            call(
                &caller,
                api::$request { id },
                |mut client, request| async move { client.$method(request).await },
            )
            .await?
            .engagement
        };
    }
    let engagement = match action {
        "accept" => by_id!(AcceptEngagementRequest, accept_engagement),
        "decline" => by_id!(DeclineEngagementRequest, decline_engagement),
        "confirm" => by_id!(ConfirmEngagementRequest, confirm_engagement),
        "cancel" => by_id!(CancelEngagementRequest, cancel_engagement),
        "complete" => {
            let message = if bytes.is_empty() {
                api::CompleteEngagementRequest::default()
            } else {
                body(&bytes)?
            };
            let message = api::CompleteEngagementRequest { id, ..message };
            call(&caller, message, |mut client, request| async move {
                client.complete_engagement(request).await
            })
            .await?
            .engagement
        }
        other => {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "no engagement action {other:?}; use accept, decline, confirm, complete or cancel"
                ),
            ));
        }
    };
    Ok(json(StatusCode::OK, &engagement))
}
