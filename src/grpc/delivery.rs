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
