//! Stamps each HTTP request, before its body is read, with what the handlers need to know
//! about where and when it arrived: the moment (call deadlines are measured from there, as
//! tonic's own `grpc-timeout` timer is) and the listener it came through (for the audit log).

use std::sync::Arc;
use std::time::Instant;

/// When a request's headers arrived (an HTTP request extension).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// The listener a request came through (an HTTP request extension).
#[derive(Debug, Clone)]
pub struct ListenerName(pub Arc<str>);

/// Adds an [`Arrival`] of now to the request.
pub fn stamp<B>(mut request: http::Request<B>) -> http::Request<B> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}

/// A request mapper that adds `name` as the request's [`ListenerName`].
pub fn listener<B>(name: Arc<str>) -> impl Fn(http::Request<B>) -> http::Request<B> + Clone {
    move |mut request| {
        request
            .extensions_mut()
            .insert(ListenerName(Arc::clone(&name)));
        request
    }
}
