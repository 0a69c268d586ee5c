//! Stamps each HTTP request with the moment it reached the service stack, before its body is
//! read: call deadlines are measured from there, as tonic's own `grpc-timeout` timer is.

use std::time::Instant;

/// When a request's headers arrived (an HTTP request extension).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// Adds an [`Arrival`] of now to the request.
pub fn stamp<B>(mut request: http::Request<B>) -> http::Request<B> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}
