//! Slow clients are cut off, so that connections held open by a trickle of bytes cannot
//! pile up: request headers (and the idle wait for the next request on a kept-alive
//! connection) within `limits.header_read_timeout`, and request bodies at no less than
//! `limits.body_min_bytes_per_second` once `limits.body_grace` has passed. Only the time
//! the gateway spends waiting for the client counts: a body the gateway reads slowly
//! (an upstream taking its time over a large CSV) is never the client's fault.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;

use crate::problem::Problem;

/// Serves `router` on `listener` over HTTP/1.1 until `close`, then lets the connections
/// in flight finish (the caller bounds that with its drain timeout).
pub(crate) async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    header_read_timeout: Duration,
    close: CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    // The timer is what makes the header timeout (and with it the idle timeout between
    // requests) take effect; without one hyper waits for ever.
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, _) = tokio::select! {
            () = close.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client that went away or was cut off: its business, not an error here.
                tracing::debug!(%error, "connection ended");
            }
        });
    }
    graceful.shutdown().await;
}

/// The minimum rate of a request body.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyRate {
    pub grace: Duration,
    pub min_bytes_per_second: u64,
}

impl BodyRate {
    /// How long the gateway may have waited for the client once `received` bytes came.
    fn allowance(&self, received: u64) -> Duration {
        let rate = self.min_bytes_per_second.max(1);
        self.grace + Duration::from_secs_f64(received as f64 / rate as f64)
    }
}

/// Wraps every request body in [`MinRate`]; a body cut off answers 408 `request_timeout`
/// (whatever the handler made of the broken body) and closes the connection.
pub(crate) async fn min_body_rate(
    State(rate): State<BodyRate>,
    request: Request,
    next: Next,
) -> Response {
    let too_slow = Arc::new(AtomicBool::new(false));
    let request = request.map(|body| {
        Body::new(MinRate {
            inner: body,
            rate,
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            timer: None,
            too_slow: too_slow.clone(),
        })
    });
    let response = next.run(request).await;
    if !too_slow.load(Ordering::Relaxed) {
        return response;
    }
    metrics::counter!("careers_gateway_refused_total", "reason" => "too_slow").increment(1);
    let labels = response
        .extensions()
        .get::<crate::front::RouteLabels>()
        .copied();
    let mut response = Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        format!(
            "the request body came slower than {} bytes a second; nothing was recorded",
            rate.min_bytes_per_second
        ),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    if let Some(labels) = labels {
        response.extensions_mut().insert(labels);
    }
    response
}

/// A body that fails once the client has kept the gateway waiting longer than
/// [`BodyRate::allowance`] of what it has sent.
struct MinRate {
    inner: Body,
    rate: BodyRate,
    received: u64,
    /// Time spent waiting for the client before the current wait.
    waited: Duration,
    waiting_since: Option<Instant>,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    too_slow: Arc<AtomicBool>,
}

impl HttpBody for MinRate {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(context) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                this.timer = None;
                if let Some(Ok(data)) = frame
                    .as_ref()
                    .map(|frame| frame.as_ref().map(Frame::data_ref))
                {
                    this.received += data.map_or(0, |data| data.len() as u64);
                }
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let since = *this.waiting_since.get_or_insert_with(Instant::now);
                let left = this
                    .rate
                    .allowance(this.received)
                    .saturating_sub(this.waited);
                let deadline = tokio::time::Instant::from_std(since + left);
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                timer.as_mut().reset(deadline);
                if timer.as_mut().poll(context).is_ready() {
                    this.too_slow.store(true, Ordering::Relaxed);
                    return Poll::Ready(Some(Err(axum::Error::new("request body too slow"))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowance_grows_with_what_was_sent() {
        let rate = BodyRate {
            grace: Duration::from_secs(10),
            min_bytes_per_second: 1000,
        };
        assert_eq!(rate.allowance(0), Duration::from_secs(10));
        assert_eq!(rate.allowance(5000), Duration::from_secs(15));
    }
}
