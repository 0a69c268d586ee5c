//! Gives each request a [`Delivery`] ticket and tells it when the whole answer (its trailers
//! included) has been handed to the transport. A response dropped before that, or a call
//! dropped before it answered (the client reset the stream or went away), leaves the ticket
//! undelivered, and the audit log then records that the answer it claimed never left.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use super::stamps::Arrival;
use crate::audit::AuditLog;
use crate::service::Delivery;

/// The tower layer; without an audit log it passes requests through untouched.
#[derive(Clone)]
pub struct DeliveryLayer {
    audit: Option<Arc<AuditLog>>,
}

impl DeliveryLayer {
    /// Tickets for calls audited in `audit`.
    pub fn new(audit: Option<Arc<AuditLog>>) -> Self {
        DeliveryLayer { audit }
    }
}

impl<S> tower::Layer<S> for DeliveryLayer {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Tracked {
            inner,
            audit: self.audit.clone(),
        }
    }
}

/// The service [`DeliveryLayer`] makes.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    audit: Option<Arc<AuditLog>>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Tracked<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
    R: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    R::Error: Into<tonic::codegen::StdError>,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let delivery = self.audit.as_ref().map(|audit| {
            let arrived = request
                .extensions()
                .get::<Arrival>()
                .map_or_else(Instant::now, |a| a.0);
            Delivery::new(Arc::clone(audit), arrived)
        });
        if let Some(delivery) = &delivery {
            request.extensions_mut().insert(delivery.clone());
        }
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|inner| tonic::body::Body::new(TrackedBody { inner, delivery })))
        })
    }
}

/// A response body that marks its ticket delivered once its last frame was taken.
struct TrackedBody<B> {
    inner: B,
    delivery: Option<Delivery>,
}

impl<B> http_body::Body for TrackedBody<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        let last = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(frame))) => frame.is_trailers(),
            _ => false,
        };
        if last {
            if let Some(delivery) = self.delivery.take() {
                delivery.delivered();
            }
        }
        polled
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
    //! The layer on a stand-in service whose call the audit log records as answered.
    use super::*;
    use crate::audit::{Outcome, Record};
    use crate::config::{Audit, Fsync, OnAuditFailure};
    use http_body_util::BodyExt;
    use tower::{Layer, Service};

    fn open(dir: &std::path::Path) -> Arc<AuditLog> {
        let settings = Audit {
            path: dir.join("audit.jsonl"),
            fsync: Fsync::Always,
            fsync_interval_ms: 1000,
            max_bytes: 1 << 20,
            on_failure: OnAuditFailure::Deny,
        };
        Arc::new(AuditLog::open(&settings).expect("audit log"))
    }

    fn allowed() -> Record {
        Record {
            client: Some("c".into()),
            identity: "uid=1".into(),
            listener: "unix:/s".into(),
            rpc: "Sign",
            key_id: "k".into(),
            algorithm: Some("ed25519"),
            key_version: None,
            message_sha256: Some("00".into()),
            outcome: Outcome::Allowed,
            verdict: None,
            code: "OK",
            latency_us: 1,
            undelivered_seq: None,
            suppressed_denials: None,
        }
    }

    /// A service that records its answer as allowed, then answers (or, with `hang`, never
    /// does).
    fn answering(
        audit: Arc<AuditLog>,
        hang: bool,
    ) -> impl tower::Service<
        http::Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future = impl Future + Send + 'static,
    > + Clone {
        tower::service_fn(move |request: http::Request<()>| {
            let audit = Arc::clone(&audit);
            async move {
                let record = allowed();
                let seqs = audit
                    .record_all(std::slice::from_ref(&record))
                    .expect("write");
                if let Some(delivery) = request.extensions().get::<Delivery>() {
                    delivery.answered(seqs.into_iter().flatten().zip([record]));
                }
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::new(
                    http_body_util::Full::new(Bytes::from_static(b"answer")),
                )))
            }
        })
    }

    fn records(dir: &std::path::Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("audit.jsonl"))
            .expect("log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .filter(|r: &serde_json::Value| r.get("rpc").is_some())
            .collect()
    }

    #[test]
    fn an_answer_taken_whole_is_delivered_and_a_dropped_one_is_recorded_undelivered() {
        let dir = tempfile::tempdir().expect("dir");
        let audit = open(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let layer = DeliveryLayer::new(Some(Arc::clone(&audit)));
        let mut service = layer.layer(answering(Arc::clone(&audit), false));

        // Read to its end: delivered, nothing more is written.
        let response = runtime
            .block_on(service.call(http::Request::new(())))
            .expect("answer");
        let body = runtime
            .block_on(response.into_body().collect())
            .expect("body");
        assert_eq!(body.to_bytes(), Bytes::from_static(b"answer"));
        assert_eq!(records(dir.path()).len(), 1);

        // Dropped before its body was taken (the client went away): recorded undelivered,
        // naming the record of the answer.
        let response = runtime
            .block_on(service.call(http::Request::new(())))
            .expect("answer");
        drop(response);
        let written = records(dir.path());
        assert_eq!(written.len(), 3, "{written:?}");
        assert_eq!(written[2]["outcome"], "undelivered");
        assert_eq!(written[2]["code"], "CANCELLED");
        assert_eq!(written[2]["undelivered_seq"], written[1]["seq"]);

        // Cancelled after its record was written but before it answered: the same.
        let mut hanging = layer.layer(answering(Arc::clone(&audit), true));
        let mut call = Box::pin(hanging.call(http::Request::new(())));
        let waker = futures_util::task::noop_waker();
        let polled = call.as_mut().poll(&mut Context::from_waker(&waker));
        assert!(polled.is_pending(), "recorded, not answered");
        drop(call);
        let written = records(dir.path());
        assert_eq!(written.len(), 5, "{written:?}");
        assert_eq!(written[4]["outcome"], "undelivered");
        drop(runtime);
        audit.flush();
        let verified = crate::audit::verify(&dir.path().join("audit.jsonl"))
            .expect("read")
            .expect("the chain holds");
        assert_eq!(verified.records, 6, "genesis and five records");
    }
}
