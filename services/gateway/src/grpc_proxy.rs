//! The services' own gRPC APIs re-served on the gateway's gRPC port, and through
//! gRPC-Web to browsers. A call is admitted like an HTTP one (a bearer token with a known
//! role, or an API key for the open-data reads in [`access::GRPC_OPEN`]; per-principal
//! rate limits), then forwarded as it is, bytes untouched, to the owning service with the
//! caller as the internal identity token and a deadline. The services check roles, as
//! they do for every call.

use std::{convert::Infallible, sync::Arc, task::Poll, time::Duration};

use axum::http::{HeaderValue, Request, Response};
use careers_platform::{grpc, identity};
use futures::future::BoxFuture;
use tonic::{Code, Status};
use tower::Service;

use crate::{
    access::{self, Allowed},
    front::{self, Front},
    internal::InternalTokens,
};

/// One re-served service: its full name and its replicas.
#[derive(Debug, Clone)]
pub struct Route {
    pub service: &'static str,
    pub upstream: crate::balance::Balanced,
}

#[derive(Debug, Clone)]
pub struct GrpcProxy {
    pub front: Front,
    pub signer: Arc<InternalTokens>,
    pub routes: Arc<Vec<Route>>,
    /// `limits.upstream_timeout`, when the caller sends no `grpc-timeout` of its own.
    pub deadline: Duration,
}

impl Service<Request<axum::body::Body>> for GrpcProxy {
    type Response = Response<axum::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<axum::body::Body>) -> Self::Future {
        let proxy = self.clone();
        // The caller's id when it sends a sane one, else a new one: on to the service, on
        // the answer, and on this call's log lines.
        let id = crate::problem::request_id_or_new(request.headers());
        tracing::Span::current().record("request_id", id.as_str());
        let id = HeaderValue::from_str(&id).ok();
        if let Some(id) = &id {
            request.headers_mut().insert(grpc::REQUEST_ID, id.clone());
        }
        Box::pin(async move {
            let mut response = match proxy.forward(request).await {
                Ok(response) => response,
                Err(status) => status.into_http(),
            };
            if let Some(id) = id {
                response.headers_mut().insert(grpc::REQUEST_ID, id);
            }
            Ok(response)
        })
    }
}

impl GrpcProxy {
    async fn forward(
        &self,
        mut request: Request<axum::body::Body>,
    ) -> Result<Response<axum::body::Body>, Status> {
        let path = request.uri().path().to_owned();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .ok_or_else(|| Status::unimplemented(format!("no gRPC method at {path}")))?;
        let upstream = self
            .routes
            .iter()
            .find(|route| route.service == service)
            .map(|route| route.upstream.clone())
            .ok_or_else(|| Status::unimplemented(format!("no service {service} here")))?;
        let caller = front::admit(
            &self.front,
            Allowed::AnyRole,
            access::grpc_open(service, method),
            &format!("{service}/{method}"),
            request.headers(),
        )
        .map_err(|problem| problem.to_status())?;
        let _slot = self
            .front
            .per_caller
            .take(&caller.sub)
            .map_err(|problem| problem.to_status())?;
        let token = self.signer.token(&caller).map_err(|error| {
            tracing::error!(%error, "cannot sign the internal identity token");
            Status::internal("internal error")
        })?;
        // gRPC-Web arrives over HTTP/1.1, already turned into gRPC by the layer before
        // this: go on over HTTP/2, without HTTP/1.1's connection headers, which HTTP/2
        // forbids, or a length the translation made stale.
        *request.version_mut() = axum::http::Version::HTTP_2;
        let headers = request.headers_mut();
        for hop in [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "host",
            "content-length",
        ] {
            headers.remove(hop);
        }
        // The caller's own credentials stay here; only the gateway's token goes on.
        headers.remove(axum::http::header::AUTHORIZATION);
        headers.remove(front::API_KEY_HEADER);
        headers.insert(
            identity::METADATA_KEY,
            HeaderValue::from_str(&token).map_err(|_| Status::internal("internal error"))?,
        );
        if !headers.contains_key("grpc-timeout") {
            // grpc-timeout takes at most eight digits.
            let millis = u64::try_from(self.deadline.as_millis()).unwrap_or(u64::MAX);
            if let Ok(value) = HeaderValue::from_str(&format!("{}m", millis.min(99_999_999))) {
                headers.insert("grpc-timeout", value);
            }
        }
        // As a plain stream of data: a gRPC-Web body's size hint is the encoded one, and
        // HTTP/2 would send it as a content-length the decoded body does not match.
        let request = request.map(|body| {
            tonic::body::Body::new(axum::body::Body::from_stream(body.into_data_stream()))
        });
        match upstream.send(request).await {
            Ok(response) => Ok(response.map(axum::body::Body::new)),
            Err(crate::balance::NotSent(error)) => {
                tracing::warn!(%error, service, "upstream unreachable");
                Err(careers_platform::status::status(
                    Code::Unavailable,
                    "upstream_unavailable",
                    "the service behind this call is unavailable; retry shortly",
                ))
            }
        }
    }
}
