//! Bounds what requests still being received may hold, before any of them is decoded: the
//! request bodies of all connections of one listener together at most
//! `limits.max_queued_bytes` (+ 64 KiB for framing), and each call of `signet.v1.Signer` received in full within
//! `limits.request_timeout_ms` of its arrival. The streams of reflection and health are
//! long-lived by design: on them, the bytes of each gRPC message are released once the message
//! is complete, and a message begun must be complete within `limits.request_timeout_ms`.
//!
//! Without it, a client could open streams and send all but the last byte of a large message
//! on each: tonic buffers every partial message until it is complete, so `max_connections` ×
//! 256 streams × the message limit (256 GiB by default) could be held before the executor's
//! byte budget sees any of it, and streams whose bodies never end would hold it for ever. A
//! body that would pass the budget is refused with `RESOURCE_EXHAUSTED`, one not received in
//! time with `DEADLINE_EXCEEDED`; the bytes a body holds are released when tonic lets go of it
//! (once its message is decoded, before the call runs).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tonic::Status;

/// Room for framing and key ids on top of `limits.max_queued_bytes` (as for the decode limit).
const FRAMING: usize = 64 * 1024;

/// The calls whose bodies must arrive within the deadline.
const SIGNER: &str = "/signet.v1.Signer/";

/// The budget the request bodies of one listener share.
#[derive(Clone)]
pub(super) struct Intake {
    held: Arc<AtomicUsize>,
    budget: usize,
    within: Duration,
}

impl Intake {
    /// At most `max_queued_bytes` (+ framing) held by bodies at once, each received `within`.
    pub(super) fn new(max_queued_bytes: usize, within: Duration) -> Self {
        Intake {
            held: Arc::new(AtomicUsize::new(0)),
            budget: max_queued_bytes.saturating_add(FRAMING),
            within,
        }
    }

    /// A request mapper that puts every request's body under this budget.
    pub(super) fn wrap<B>(
        &self,
    ) -> impl Fn(http::Request<B>) -> http::Request<Budgeted<B>> + Clone {
        let intake = self.clone();
        move |request| {
            let intake = intake.clone();
            let whole = request.uri().path().starts_with(SIGNER);
            let deadline = whole.then(|| Box::pin(tokio::time::sleep(intake.within)));
            request.map(|inner| Budgeted {
                inner,
                held: 0,
                deadline,
                intake,
                messages: (!whole).then(Messages::default),
            })
        }
    }
}

/// A request body whose bytes count against the [`Intake`] budget until it is dropped.
pub(super) struct Budgeted<B> {
    inner: B,
    intake: Intake,
    held: usize,
    deadline: Option<Pin<Box<Sleep>>>,
    /// For streams other than the Signer's: where the gRPC messages end.
    messages: Option<Messages>,
}

impl<B> Body for Budgeted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<tonic::codegen::StdError>,
{
    type Data = Bytes;
    type Error = tonic::codegen::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let late = self
            .deadline
            .as_mut()
            .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
        if late && !self.inner.is_end_stream() {
            return Poll::Ready(Some(Err(Box::new(Status::deadline_exceeded(
                "the request was not received in full before its deadline \
                 (limits.request_timeout_ms)",
            )))));
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(error))) => return Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len();
            let before = self.intake.held.fetch_add(len, Ordering::AcqRel);
            if before.saturating_add(len) > self.intake.budget {
                self.intake.held.fetch_sub(len, Ordering::AcqRel);
                return Poll::Ready(Some(Err(Box::new(Status::resource_exhausted(
                    "the agent is receiving too many request bytes at once \
                     (limits.max_queued_bytes); try again later",
                )))));
            }
            self.held += len;
            let within = self.intake.within;
            let this = &mut *self;
            if let Some(messages) = &mut this.messages {
                let complete = messages.feed(data);
                this.held = this.held.saturating_sub(complete);
                this.intake.held.fetch_sub(complete, Ordering::AcqRel);
                if !messages.begun() {
                    this.deadline = None;
                } else if this.deadline.is_none() {
                    this.deadline = Some(Box::pin(tokio::time::sleep(within)));
                }
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Follows the gRPC framing of a stream (a flag byte, a 4-byte length, the message) to tell
/// where each message ends.
#[derive(Default)]
struct Messages {
    /// The bytes of the current message's 5-byte prefix read so far.
    prefix: [u8; 5],
    prefix_read: usize,
    /// The bytes of the current message still to come, once its prefix is read.
    remaining: usize,
    /// The bytes of the current message (prefix included) read so far.
    begun: usize,
}

impl Messages {
    /// Takes `data`; returns how many of its bytes, and of earlier ones, belong to messages it
    /// completed.
    fn feed(&mut self, mut data: &[u8]) -> usize {
        let mut complete = 0;
        while !data.is_empty() {
            let take = if self.prefix_read < self.prefix.len() {
                let take = (self.prefix.len() - self.prefix_read).min(data.len());
                self.prefix[self.prefix_read..self.prefix_read + take]
                    .copy_from_slice(&data[..take]);
                self.prefix_read += take;
                if self.prefix_read == self.prefix.len() {
                    let [_, a, b, c, d] = self.prefix;
                    self.remaining =
                        usize::try_from(u32::from_be_bytes([a, b, c, d])).unwrap_or(usize::MAX);
                }
                take
            } else {
                let take = self.remaining.min(data.len());
                self.remaining -= take;
                take
            };
            self.begun += take;
            data = &data[take..];
            if self.prefix_read == self.prefix.len() && self.remaining == 0 {
                complete += self.begun;
                *self = Messages::default();
            }
        }
        complete
    }

    /// Whether a message has begun and is not complete.
    fn begun(&self) -> bool {
        self.begun > 0
    }
}

impl<B> Drop for Budgeted<B> {
    fn drop(&mut self) {
        self.intake.held.fetch_sub(self.held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body(intake: &Intake, bytes: &'static [u8]) -> Budgeted<http_body_util::Full<Bytes>> {
        let request = http::Request::post("/signet.v1.Signer/Sign")
            .body(http_body_util::Full::new(Bytes::from_static(bytes)))
            .expect("request");
        intake.wrap()(request).into_body()
    }

    #[tokio::test]
    async fn bodies_share_the_budget_until_they_are_dropped() {
        let intake = Intake {
            held: Arc::new(AtomicUsize::new(0)),
            budget: 10,
            within: Duration::from_secs(3600),
        };
        let mut first = body(&intake, b"123456");
        assert!(first.frame().await.expect("a frame").is_ok());
        assert_eq!(intake.held.load(Ordering::Acquire), 6);
        let mut second = body(&intake, b"123456");
        let refused = second.frame().await.expect("a frame").expect_err("over");
        let status = refused.downcast_ref::<Status>().expect("a status");
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(intake.held.load(Ordering::Acquire), 6, "nothing kept");
        drop(first);
        drop(second);
        assert_eq!(intake.held.load(Ordering::Acquire), 0);
        let mut third = body(&intake, b"1234567890");
        assert!(third.frame().await.expect("a frame").is_ok(), "fits again");
    }

    #[test]
    fn messages_are_complete_where_their_framing_says() {
        let mut messages = Messages::default();
        // A 3-byte message, then the first 2 bytes of the next prefix.
        assert_eq!(messages.feed(&[0, 0, 0, 0, 3, 1, 2, 3, 0, 0]), 8);
        assert!(messages.begun());
        // The rest of that prefix (length 2) and one byte of its message.
        assert_eq!(messages.feed(&[0, 0, 2, 9]), 0);
        assert!(messages.begun());
        // Its last byte and a whole empty message.
        assert_eq!(messages.feed(&[9, 0, 0, 0, 0, 0]), 12);
        assert!(!messages.begun());
    }

    #[tokio::test]
    async fn a_reflection_stream_holds_only_its_unfinished_message() {
        let intake = Intake {
            held: Arc::new(AtomicUsize::new(0)),
            budget: 10,
            within: Duration::from_secs(3600),
        };
        let request = http::Request::post("/grpc.reflection.v1.ServerReflection/x")
            .body(http_body_util::Full::new(Bytes::from_static(&[
                0, 0, 0, 0, 2, 1, 2, 0, 0,
            ])))
            .expect("request");
        let mut body = intake.wrap()(request).into_body();
        assert!(body.frame().await.expect("a frame").is_ok());
        assert_eq!(intake.held.load(Ordering::Acquire), 2, "the begun prefix");
        assert!(body.deadline.is_some(), "a begun message has a deadline");
        drop(body);
        assert_eq!(intake.held.load(Ordering::Acquire), 0);
    }

    /// A body whose next frame never comes (a client that stopped sending).
    struct Never;

    impl Body for Never {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_not_received_in_time_is_past_its_deadline() {
        let intake = Intake::new(1 << 20, Duration::from_millis(1));
        let never = Never;
        let request = http::Request::post("/signet.v1.Signer/Sign")
            .body(never)
            .expect("request");
        let mut body = intake.wrap()(request).into_body();
        let error = body.frame().await.expect("a frame").expect_err("late");
        let status = error.downcast_ref::<Status>().expect("a status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
    }
}
