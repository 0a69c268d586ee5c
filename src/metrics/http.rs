//! The metrics endpoint: `GET /metrics` in the Prometheus text format, on its own listener
//! (loopback by default), separate from the gRPC listeners.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::{Load, Metrics};
use crate::backend::HsmState;

/// What a scrape reads besides the registry.
pub struct Sources {
    /// The metrics themselves.
    pub metrics: Arc<Metrics>,
    /// The queue and workers, read at each scrape.
    pub load: Box<dyn Fn() -> Load + Send + Sync>,
    /// The HSM's state.
    pub state: watch::Receiver<HsmState>,
}

/// Scrapers served at once; more connections wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 8;
/// How long a connection may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` on `listener` until `stop` turns true. One request per connection,
/// at most [`MAX_CONNECTIONS`] at once, each given [`REQUEST_TIMEOUT`] to send its request.
pub async fn serve(listener: TcpListener, sources: Sources, mut stop: watch::Receiver<bool>) {
    let sources = Arc::new(sources);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    // Failed accepts in a row: logged when the first fails and when one succeeds again.
    let mut failing: u64 = 0;
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, for example: do not spin on it, and say it once.
                    if failing == 0 {
                        tracing::warn!(
                            error = %e,
                            "metrics listener: accepting connections fails; retrying every \
                             100 ms (logged once until an accept succeeds)"
                        );
                    }
                    failing += 1;
                    sources.metrics.accept_failed("metrics");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        if failing > 0 {
            tracing::info!(
                times = failing,
                "metrics listener: accepting connections again"
            );
            failing = 0;
        }
        while connections.try_join_next().is_some() {}
        let sources = Arc::clone(&sources);
        connections.spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let answer = respond(&sources, &request);
                async move { Ok::<_, Infallible>(answer) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(REQUEST_TIMEOUT * 2, connection).await;
        });
    }
    connections.abort_all();
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn respond(sources: &Sources, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = if request.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /metrics\n".to_owned(),
        )
    } else if request.method() != Method::GET && request.method() != Method::HEAD {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".to_owned(),
        )
    } else {
        let state = sources.state.borrow().clone();
        (
            StatusCode::OK,
            // prometheus-client writes the OpenMetrics text format (with `# EOF`).
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            sources.metrics.render((sources.load)(), &state),
        )
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    response
}
