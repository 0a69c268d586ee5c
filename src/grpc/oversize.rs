//! Gives a request that is too large for the transport the same status as one just over the
//! message limit: tonic refuses messages beyond its decoding limit with OUT_OF_RANGE, while the
//! agent (and gRPC's convention for oversized messages) answers RESOURCE_EXHAUSTED. Requests
//! whose gRPC framing is broken (cut short inside a message, no message at all, a compression
//! flag without an encoding or of an unknown value), which tonic answers `INTERNAL` with its
//! own text and no log line, get `INVALID_ARGUMENT` and one `warn` line, as an undecodable
//! message does (see `codec`): the fault is the caller's, not the agent's.
//!
//! The status travels in the response headers (trailers-only responses) or in the trailers,
//! so both are checked; every other response passes through untouched.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use tonic::body::Body;
use tonic::Status;

/// A response mapper for `tower::util::MapResponseLayer`.
pub fn layer(limit: usize) -> impl Fn(http::Response<Body>) -> http::Response<Body> + Clone {
    move |response| {
        let (mut parts, body) = response.into_parts();
        rewrite(&mut parts.headers, limit);
        http::Response::from_parts(parts, Body::new(Rewriting { inner: body, limit }))
    }
}

fn rewrite(headers: &mut HeaderMap, limit: usize) {
    let oversized = headers.get("grpc-status").is_some_and(|s| s == "11")
        && headers.get("grpc-message").is_some_and(|m| {
            // tonic percent-encodes the message, spaces included.
            m.as_bytes()
                .starts_with(b"Error,%20decoded%20message%20length%20too%20large")
        });
    if oversized {
        let status = Status::resource_exhausted(format!(
            "the request is far over this agent's message limit of {limit} bytes; it was not signed"
        ));
        if status.add_header(headers).is_err() {
            headers.insert("grpc-status", HeaderValue::from_static("8"));
        }
        return;
    }
    if let Some(why) = broken_framing(headers) {
        tracing::warn!(
            error = why,
            "refused a request that is not a valid gRPC message"
        );
        let status =
            Status::invalid_argument(format!("the request is not a valid gRPC call: {why}"));
        if status.add_header(headers).is_err() {
            headers.insert("grpc-status", HeaderValue::from_static("3"));
        }
    }
}

/// tonic's `INTERNAL` answers to a request whose framing is broken (their percent-encoded
/// messages), and what the agent says instead.
const BROKEN_FRAMING: &[(&[u8], &str)] = &[
    (
        b"Unexpected%20EOF%20decoding%20stream.",
        "the request ends inside a message (its length prefix promises more bytes than were sent)",
    ),
    (
        b"Missing%20request%20message.",
        "the request carries no message",
    ),
    (
        b"protocol%20error:%20received%20message%20with%20compressed-flag%20but%20no%20grpc-encoding",
        "the message is flagged compressed but the request names no grpc-encoding",
    ),
    (
        b"protocol%20error:%20received%20message%20with%20invalid%20compression%20flag",
        "the message's compression flag is neither 0 nor 1",
    ),
];

fn broken_framing(headers: &HeaderMap) -> Option<&'static str> {
    if headers.get("grpc-status").is_none_or(|s| s != "13") {
        return None;
    }
    let message = headers.get("grpc-message")?.as_bytes();
    BROKEN_FRAMING
        .iter()
        .find(|(tonic, _)| message.starts_with(tonic))
        .map(|(_, why)| *why)
}

struct Rewriting {
    inner: Body,
    limit: usize,
}

impl http_body::Body for Rewriting {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let limit = self.limit;
        Pin::new(&mut self.inner).poll_frame(cx).map(|frame| {
            frame.map(|result| {
                result.map(|frame| match frame.into_trailers() {
                    Ok(mut trailers) => {
                        rewrite(&mut trailers, limit);
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                })
            })
        })
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
    fn only_the_decoder_limit_status_is_rewritten() {
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", HeaderValue::from_static("11"));
        headers.insert(
            "grpc-message",
            HeaderValue::from_static("Error,%20decoded%20message%20length%20too%20large:%20found"),
        );
        rewrite(&mut headers, 4);
        assert_eq!(headers["grpc-status"], "8");
        let message = headers["grpc-message"].to_str().expect("ascii");
        assert!(message.contains("limit%20of%204%20bytes"), "{message}");

        let mut other = HeaderMap::new();
        other.insert("grpc-status", HeaderValue::from_static("11"));
        other.insert("grpc-message", HeaderValue::from_static("something else"));
        rewrite(&mut other, 4);
        assert_eq!(other["grpc-status"], "11");
    }

    #[test]
    fn broken_framing_is_an_invalid_argument_and_the_agents_own_internal_is_not_touched() {
        for (tonic, why) in BROKEN_FRAMING {
            let mut headers = HeaderMap::new();
            headers.insert("grpc-status", HeaderValue::from_static("13"));
            headers.insert(
                "grpc-message",
                HeaderValue::from_bytes(tonic).expect("header value"),
            );
            rewrite(&mut headers, 4);
            assert_eq!(headers["grpc-status"], "3");
            let message = headers["grpc-message"].to_str().expect("ascii");
            let first_word = why.split(' ').nth(1).expect("a word");
            assert!(message.contains(first_word), "{message}");
        }
        let mut internal = HeaderMap::new();
        internal.insert("grpc-status", HeaderValue::from_static("13"));
        internal.insert(
            "grpc-message",
            HeaderValue::from_static("the%20signature%20does%20not%20verify;%20withheld"),
        );
        rewrite(&mut internal, 4);
        assert_eq!(internal["grpc-status"], "13");
    }
}
