//! Retries with backoff for idempotent reads only: a call whose method is a read by the
//! APIs' naming (`Get…`, `List…`, `Search…`, `Suggest…`, `Count…`) is sent again, up to
//! [`RETRIES`] times, when the replica could not be reached, answered UNAVAILABLE, or its
//! answer broke off before the end (reads are read whole first); the balancer has by then
//! taken an unreachable replica out, so the next attempt goes to another. A
//! write is sent once: the caller decides whether to repeat it. A call that ran out of
//! time is never retried.

use std::{task::Poll, time::Duration};

use axum::http::{Request, Response};
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use tonic::{Status, body::Body};
use tower::Service;

use crate::balance::{Balanced, NotSent, unavailable};

pub const RETRIES: usize = 2;
/// The longest first pause (jitter picks from half of it to all), then four times as long.
const FIRST_DELAY: Duration = Duration::from_millis(50);

/// A service's replicas, with its reads retried.
#[derive(Debug, Clone)]
pub struct RetryReads(pub Balanced);

fn is_read(path: &str) -> bool {
    let method = path.rsplit('/').next().unwrap_or_default();
    ["Get", "List", "Search", "Suggest", "Count"]
        .iter()
        .any(|prefix| method.starts_with(prefix))
}

/// A call that reached no replica as the status a client would read: connect errors are
/// UNAVAILABLE, an expired deadline CANCELLED.
fn not_sent(NotSent(status): NotSent) -> Response<Body> {
    status.into_http()
}

/// The response read to its end: a replica killed between the headers and the trailers
/// leaves a broken body, which for a read is as good as not sent (and is sent again).
async fn whole(response: Response<Body>) -> Result<Response<Body>, NotSent> {
    let (parts, body) = response.into_parts();
    let collected = body.collect().await.map_err(|error| {
        NotSent(Status::unavailable(format!(
            "the answer broke off: {}",
            error.message()
        )))
    })?;
    let trailers = collected.trailers().cloned();
    let body = Full::new(collected.to_bytes()).with_trailers(async move { trailers.map(Ok) });
    Ok(Response::from_parts(parts, Body::new(body)))
}

impl Service<Request<Body>> for RetryReads {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let upstream = self.0.clone();
        Box::pin(async move {
            if !is_read(request.uri().path()) {
                return Ok(upstream.send(request).await.unwrap_or_else(not_sent));
            }
            // A read is one small message: keep it to send again.
            let (parts, body) = request.into_parts();
            let bytes = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(error) => return Ok(Status::internal(error.to_string()).into_http()),
            };
            // 25–50 ms, then 100–200 ms: jitter adds up to as much again, so at most the
            // 250 ms in all a read waited before jitter.
            let mut pauses = backon::BackoffBuilder::build(
                backon::ExponentialBuilder::default()
                    .with_min_delay(FIRST_DELAY / 2)
                    .with_factor(4.0)
                    .with_jitter()
                    .with_max_times(RETRIES),
            );
            let mut attempt = 0;
            loop {
                let mut again = Request::new(Body::new(Full::new(bytes.clone())));
                *again.method_mut() = parts.method.clone();
                *again.uri_mut() = parts.uri.clone();
                *again.version_mut() = parts.version;
                *again.headers_mut() = parts.headers.clone();
                let response = match upstream.send(again).await {
                    Ok(response) => whole(response).await,
                    Err(not_sent) => Err(not_sent),
                };
                let retry = match &response {
                    Ok(response) => unavailable(response),
                    Err(NotSent(status)) => !matches!(
                        status.code(),
                        tonic::Code::Cancelled | tonic::Code::DeadlineExceeded
                    ),
                };
                let pause = match pauses.next() {
                    Some(pause) if retry => pause,
                    _ => return Ok(response.unwrap_or_else(not_sent)),
                };
                attempt += 1;
                tracing::debug!(path = %parts.uri.path(), attempt, "read retried");
                tokio::time::sleep(pause).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_reads_by_name_are_retried() {
        assert!(is_read(
            "/careers.occupations.v1.OccupationsService/GetOccupation"
        ));
        assert!(is_read("/careers.lmi.v1.LmiService/ListFigures"));
        assert!(is_read(
            "/careers.ambassadors.v1.AmbassadorsService/CountAvailableAmbassadors"
        ));
        assert!(!is_read(
            "/careers.casenotes.v1.CasenotesService/CreateClient"
        ));
        assert!(!is_read("/careers.lmi.v1.LmiService/SubmitFigures"));
        assert!(!is_read(
            "/careers.ambassadors.v1.AmbassadorsService/StartMatchingRun"
        ));
    }
}
