//! Stamps each HTTP request, before its body is read, with what the handlers need to know
//! about where and when it arrived: the moment (call deadlines are measured from there) and
//! the caller's identity and listener, resolved once when its connection was accepted.

use std::sync::Arc;
use std::time::Instant;

use crate::identity::Identity;

/// When a request's headers arrived (an HTTP request extension).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// Who is at the other end of a request's connection, and which listener accepted it (an
/// HTTP request extension, the same for every request of a connection).
#[derive(Debug, Clone)]
pub struct Peer {
    /// The identity the transport established (unix peer credentials, a verified client
    /// certificate, or none).
    pub identity: Identity,
    /// The listener's name (`unix:/run/signet.sock`, `tls:0.0.0.0:50443`, …).
    pub listener: Arc<str>,
}

/// Adds an [`Arrival`] of now to the request.
pub fn stamp<B>(mut request: http::Request<B>) -> http::Request<B> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}

/// A request mapper that adds `peer` to every request of one connection.
pub fn peer<B>(peer: Arc<Peer>) -> impl Fn(http::Request<B>) -> http::Request<B> + Clone {
    move |mut request| {
        request.extensions_mut().insert(Peer::clone(&peer));
        request
    }
}
