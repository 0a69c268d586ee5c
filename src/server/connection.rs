//! One accepted connection, in its own task: the peer's identity (unix peer credentials, or the
//! TLS handshake and its verified client certificate), then HTTP/2 with the gRPC routes until
//! the client closes it or the agent shuts down. A connection over its listener's limit is
//! answered `RESOURCE_EXHAUSTED` on its first call instead (a health check excepted), and
//! closed.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulConnection;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit};
use tokio_rustls::TlsAcceptor;
use tonic::service::Routes;
use tonic::Status;
use tower::ServiceExt;

use super::intake::Intake;
use super::preface::{self, PREFACE_TIME};
use super::tls;
use crate::grpc::delivery::DeliveryLayer;
use crate::grpc::oversize;
use crate::grpc::stamps::{self, Peer};
use crate::identity::Identity;

/// How long a refused connection is kept open for its first call, so that the client reads
/// the refusal rather than a closed connection.
const REFUSAL_TIME: Duration = Duration::from_secs(5);

/// At shutdown, how long a connection that has not sent its HTTP/2 preface yet may still
/// send it (and then be shut down gracefully) before it is dropped.
const SHUTDOWN_PREFACE_GRACE: Duration = Duration::from_millis(250);

/// The one call a connection over the limit is still answered: the standard health check.
const HEALTH_CHECK: &str = "/grpc.health.v1.Health/Check";

/// What every connection of one listener shares.
pub(super) struct Listener {
    /// The listener's name (`unix:/run/signet.sock`, …).
    pub name: Arc<str>,
    /// Health, reflection and the Signer service.
    pub routes: Routes,
    /// HTTP/2 settings (streams per connection, timers).
    pub http2: http2::Builder<TokioExecutor>,
    /// The message limit, for the oversize rewrite.
    pub max_message_bytes: usize,
    /// Delivery tickets, so the audit log learns of answers that never left.
    pub delivery: DeliveryLayer,
    /// The listener's `limits.max_connections`, for the refusal message.
    pub max_connections: usize,
    /// The TLS side, for a TLS listener.
    pub tls: Option<TlsAcceptor>,
    /// The budget of request bytes being received on this listener.
    pub intake: Intake,
}

/// An accepted socket.
pub(super) enum Socket {
    /// From a unix listener.
    Unix(UnixStream),
    /// From a TCP or TLS listener.
    Tcp(TcpStream),
}

/// Whether a connection is served, holding one of its listener's connection slots until it
/// closes, or refused (holding one of the few slots for refusals).
pub(super) enum Admission {
    /// Within `limits.max_connections`.
    Serve(OwnedSemaphorePermit),
    /// Over the limit: one `RESOURCE_EXHAUSTED` answer, then closed.
    Refuse(OwnedSemaphorePermit),
}

/// Serves one connection until it closes, or until `shutdown` and then its in-flight calls
/// finish (the listener aborts it if they take longer than the drain time).
pub(super) async fn run(
    listener: Arc<Listener>,
    socket: Socket,
    admission: Admission,
    mut shutdown: watch::Receiver<bool>,
) {
    match socket {
        Socket::Unix(stream) => {
            let identity = stream
                .peer_cred()
                .map_or(Identity::Anonymous, |cred| Identity::Unix {
                    uid: cred.uid(),
                    gid: cred.gid(),
                    pid: cred.pid(),
                });
            http(&listener, stream, identity, admission, shutdown).await;
        }
        Socket::Tcp(stream) => {
            let Some(acceptor) = &listener.tls else {
                return http(&listener, stream, Identity::Anonymous, admission, shutdown).await;
            };
            let handshake = tokio::select! {
                done = tls::handshake(acceptor, stream) => done,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            match handshake {
                Ok((stream, identity)) => {
                    http(&listener, stream, identity, admission, shutdown).await;
                }
                Err(error) => {
                    tracing::debug!(listener = %listener.name, %error, "TLS handshake failed");
                }
            }
        }
    }
}

/// HTTP/2 over an established connection.
async fn http<IO>(
    listener: &Listener,
    io: IO,
    identity: Identity,
    admission: Admission,
    shutdown: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // A connection that does not start HTTP/2 in time is dropped, not shut down gracefully:
    // hyper's graceful shutdown of a connection still waiting for its preface waits for it.
    // At shutdown, one still without its preface is dropped at once, not waited for.
    let (io, prefaced) = preface::watch(io, PREFACE_TIME);
    let name = Arc::clone(&listener.name);
    let mut stopping = shutdown.clone();
    let abandon = async move {
        let mut prefaced = std::pin::pin!(prefaced);
        let stop = async move {
            let _ = stopping.wait_for(|stop| *stop).await;
        };
        let arrived = tokio::select! {
            biased;
            arrived = &mut prefaced => Some(arrived),
            () = stop => None,
        };
        // A client that connected just before the stop gets a moment to start HTTP/2, so that
        // a GOAWAY tells it its calls were not processed, instead of a reset.
        let arrived = match arrived {
            Some(arrived) => arrived,
            None => tokio::time::timeout(SHUTDOWN_PREFACE_GRACE, &mut prefaced)
                .await
                .unwrap_or(false),
        };
        if arrived {
            std::future::pending::<()>().await;
        }
        tracing::debug!(
            listener = %name,
            seconds = PREFACE_TIME.as_secs(),
            "closed a connection that sent no HTTP/2 preface in time"
        );
    };
    match admission {
        Admission::Serve(_slot) => {
            let peer = Arc::new(Peer {
                identity,
                listener: Arc::clone(&listener.name),
            });
            let service = tower::ServiceBuilder::new()
                .map_request(stamps::stamp::<Incoming>)
                .map_request(stamps::peer::<Incoming>(peer))
                .map_request(listener.intake.wrap::<Incoming>())
                .map_response(oversize::layer(listener.max_message_bytes))
                .layer(listener.delivery.clone())
                .service(listener.routes.clone());
            let connection = listener
                .http2
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
            drive(
                listener,
                connection,
                shutdown,
                std::future::pending(),
                abandon,
            )
            .await;
        }
        Admission::Refuse(_slot) => {
            let answered = Arc::new(Notify::new());
            let message = format!(
                "this listener already has {} connections (limits.max_connections); \
                 try again later",
                listener.max_connections
            );
            let refusal = {
                let answered = Arc::clone(&answered);
                let routes = listener.routes.clone();
                tower::service_fn(move |request: http::Request<Incoming>| {
                    answered.notify_one();
                    // A health check still gets its answer: the agent is healthy, only this
                    // listener is full, and a probe refused here would have it restarted.
                    let health = request.uri().path() == HEALTH_CHECK;
                    let routes = routes.clone();
                    let status = Status::resource_exhausted(message.clone());
                    async move {
                        if health {
                            return routes.oneshot(request).await;
                        }
                        Ok::<_, Infallible>(status.into_http::<tonic::body::Body>())
                    }
                })
            };
            let connection = listener
                .http2
                .serve_connection(TokioIo::new(io), TowerToHyperService::new(refusal));
            let close = async move {
                // Closed after its first answer, or when the client asks nothing in time.
                let _ = tokio::time::timeout(REFUSAL_TIME, answered.notified()).await;
            };
            drive(listener, connection, shutdown, close, abandon).await;
        }
    }
}

/// Runs `connection` until it ends; on `shutdown` or when `close` completes, shuts it down
/// gracefully (no new calls; those in flight finish) and waits for that. When `abandon`
/// completes, the connection is dropped at once, gracefully or not.
async fn drive<C>(
    listener: &Listener,
    connection: C,
    mut shutdown: watch::Receiver<bool>,
    close: impl Future<Output = ()>,
    abandon: impl Future<Output = ()>,
) where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut connection = pin!(connection);
    let mut abandon = pin!(abandon);
    let ended = tokio::select! {
        ended = connection.as_mut() => Some(ended),
        _ = shutdown.wait_for(|stop| *stop) => None,
        () = close => None,
        () = abandon.as_mut() => return,
    };
    let ended = match ended {
        Some(ended) => ended,
        None => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                ended = connection.as_mut() => ended,
                () = abandon => return,
            }
        }
    };
    if let Err(error) = ended {
        tracing::debug!(listener = %listener.name, %error, "connection failed");
    }
}
