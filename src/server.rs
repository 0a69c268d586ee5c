//! Runs the agent: opens the backend, binds the listeners, serves `signet.v1.Signer` with the
//! standard health and reflection services, follows key changes on the token (SIGHUP and a
//! periodic re-scan), and shuts down in order on SIGTERM or SIGINT.
//!
//! The gRPC routes are served over hyper's HTTP/2 directly (see [`listen`] and [`connection`]),
//! not through tonic's transport server, whose own `grpc-timeout` timer would answer
//! `CANCELLED` where the agent answers `DEADLINE_EXCEEDED`: the agent alone keeps deadlines.

mod connection;
mod health;
mod intake;
mod listen;
mod nofile;
mod preface;
mod rescan;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use health::{follow_health, set_health};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tonic::service::Routes;

use crate::audit::AuditLog;
use crate::backend::{Backend, HsmState};
use crate::config::{Config, Listener, Mode};
use crate::error::Error;
use crate::grpc::delivery::DeliveryLayer;
use crate::grpc::proto::signer_server::SignerServer;
use crate::grpc::proto::FILE_DESCRIPTOR_SET;
use crate::grpc::service::SignerService;
use crate::metrics::{self, Metrics};
use crate::policy::Policy;
use crate::service::Service;
use crate::signer::{self, Signer};

/// The most calls one HTTP/2 connection may have in flight.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

/// How long an idle connection waits between HTTP/2 keep-alive pings; one not answered within
/// [`KEEP_ALIVE_TIMEOUT`] closes the connection (and frees its `limits.max_connections` slot).
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(60);

/// How long a keep-alive ping may go unanswered.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// How long in-flight calls may take to finish after a shutdown signal.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Opens the HSM backend described by the configuration (blocking; call before serving):
/// [`crate::backend::open`], as a pair.
pub fn open_backend(config: &Config) -> Result<(Arc<dyn Backend>, usize), Error> {
    let opened = crate::backend::open(config)?;
    Ok((opened.backend, opened.workers))
}

/// Serves until SIGTERM or SIGINT, then drains, closes the HSM and removes socket files.
pub async fn serve(config: Config, backend: Arc<dyn Backend>, workers: usize) -> Result<(), Error> {
    // Installed before anything is bound: a SIGTERM while the agent starts (a service manager
    // stopping it) is a graceful stop too, not the default action that kills the process.
    let signals = shutdown_signal()?;
    serve_until(config, backend, workers, signals).await
}

/// Serves until `stop` completes (or fails), then shuts down as on SIGTERM. The health service
/// follows the backend's state: `NOT_SERVING` while the HSM is lost or failed.
pub async fn serve_until(
    config: Config,
    backend: Arc<dyn Backend>,
    workers: usize,
    stop: impl std::future::Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    let hangups = rescan::hangups()?;
    let signer = Arc::new(signer::start(
        Arc::clone(&backend),
        workers,
        &config.limits,
    )?);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (health, health_service) = tonic_health::server::health_reporter();
    // Reflection v1, and v1alpha for the tools (older grpcurl, Postman) that ask only that.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_error =
        |e: tonic_reflection::server::Error| Error::Internal(format!("building reflection: {e}"));
    let reflection = reflection_builder().build_v1().map_err(reflection_error)?;
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(reflection_error)?;
    let decode_limit = config.limits.max_message_bytes + 64 * 1024;
    // Before the audit log is opened (or created): an agent that cannot take its socket must
    // leave nothing behind.
    for listener in &config.listen {
        if let Listener::Unix { path, .. } = listener {
            refuse_if_served(path)?;
        }
    }
    let audit = match &config.audit {
        Some(settings) => Some(Arc::new(AuditLog::open(settings)?)),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let service = Arc::new(Service::new(
        Arc::clone(&signer),
        Arc::new(Policy::new(&config.clients)),
        audit.clone(),
        Arc::clone(&metrics),
        &config.limits,
    ));
    let signer_service = SignerServer::new(SignerService::new(service, &config.limits))
        .max_decoding_message_size(decode_limit);

    // Health is set before any listener accepts, so a probe at start-up gets SERVING or
    // NOT_SERVING, never "service not registered"; once all listen, it follows the HSM and the
    // audit log.
    let audit_health = audit.as_ref().map(|a| a.health());
    let serving_now = *backend.state().borrow() == HsmState::Serving
        && audit_health.as_ref().is_none_or(|ok| *ok.borrow());
    set_health(&health, serving_now).await;

    let routes = Routes::new(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(signer_service)
        .prepare();
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        // Bounds the requests one connection can have in flight (and so the memory held for
        // their bodies before the executor's byte budget applies).
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        // A peer that stopped answering (a frozen or vanished client whose socket stays open)
        // would otherwise hold its connection slot for ever.
        .keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT);

    nofile::check(config.listen.len(), config.limits.max_connections);
    let mut sockets = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
    for listener in &config.listen {
        let name: Arc<str> = listener.name().into();
        let tls = match listener {
            Listener::Tls {
                cert,
                key,
                client_ca,
                ..
            } => Some(
                tls::acceptor(&name, cert, key, client_ca)
                    .inspect_err(|_| sockets.iter().for_each(remove_socket))?,
            ),
            _ => None,
        };
        let bound = match listener {
            Listener::Unix {
                path,
                mode,
                uid,
                gid,
            } => {
                let bound = bind_unix(path, *mode, *uid, *gid)
                    .inspect_err(|_| sockets.iter().for_each(remove_socket))?;
                sockets.push(path.clone());
                listen::Bound::Unix(bound)
            }
            Listener::Tcp { address, .. } | Listener::Tls { address, .. } => {
                match TcpListener::bind(address).await {
                    Ok(tcp) => listen::Bound::Tcp(tcp),
                    Err(e) => {
                        sockets.iter().for_each(remove_socket);
                        return Err(Error::io(format!("binding {address}"), e));
                    }
                }
            }
        };
        tracing::info!(address = %name, "listening");
        let shared = Arc::new(connection::Listener {
            name,
            routes: routes.clone(),
            http2: http2.clone(),
            max_message_bytes: config.limits.max_message_bytes,
            delivery: DeliveryLayer::new(audit.clone()),
            max_connections: config.limits.max_connections,
            tls,
            // Per listener, so that callers of one (plain TCP: anyone on the host) cannot
            // take the budget of another.
            intake: intake::Intake::new(
                config.limits.max_queued_bytes,
                Duration::from_millis(config.limits.request_timeout_ms),
            ),
        });
        servers.spawn(listen::accept_loop(
            bound,
            shared,
            Arc::clone(&metrics),
            shutdown_rx.clone(),
        ));
    }
    if let Some(settings) = &config.metrics {
        let tcp = match TcpListener::bind(settings.address).await {
            Ok(tcp) => tcp,
            Err(e) => {
                sockets.iter().for_each(remove_socket);
                return Err(Error::io(
                    format!("binding the metrics listener {}", settings.address),
                    e,
                ));
            }
        };
        tracing::info!(address = %settings.address, "metrics on http://{}/metrics", settings.address);
        let load_of = Arc::clone(&signer);
        let stop = shutdown_rx.clone();
        let sources = metrics::http::Sources {
            metrics: Arc::clone(&metrics),
            load: Box::new(move || load_of.load()),
            state: backend.state(),
        };
        servers.spawn(async move {
            metrics::http::serve(tcp, sources, stop).await;
        });
    }
    let health_follows_hsm =
        tokio::spawn(follow_health(backend.state(), audit_health, health.clone()));
    if let Some((log, every)) = audit
        .as_ref()
        .and_then(|log| log.sync_interval().map(|every| (Arc::clone(log), every)))
    {
        tokio::spawn(sync_audit_log(log, every));
    }
    let key_changes = tokio::spawn(rescan::follow_key_changes(
        Arc::clone(&backend),
        hangups,
        config.backend.rescan_interval(),
        shutdown_rx.clone(),
    ));
    let keys: Vec<String> = signer
        .keys()
        .into_iter()
        .map(|k| format!("{} ({})", k.id, k.algorithm.name()))
        .collect();
    tracing::info!(keys = %keys.join(", "), "serving");

    let stopped = stop.await;
    tracing::info!("shutting down: health NOT_SERVING, draining in-flight calls");
    health_follows_hsm.abort();
    set_health(&health, false).await;
    let _ = shutdown_tx.send(true);
    let drained = tokio::time::timeout(DRAIN_TIME, async {
        while let Some(result) = servers.join_next().await {
            if let Err(e) = result {
                tracing::error!(error = %e, "a listener task failed");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            seconds = DRAIN_TIME.as_secs(),
            "drain time over; closing the remaining calls"
        );
        servers.abort_all();
    }
    drop(routes);
    // A re-read in progress finishes before the HSM closes (it is bounded like any HSM call).
    if tokio::time::timeout(DRAIN_TIME, key_changes).await.is_err() {
        tracing::warn!("a key re-read did not finish in time; closing the HSM anyway");
    }
    close_signer(signer).await;
    if let Some(audit) = &audit {
        audit.flush();
    }
    for path in sockets {
        remove_socket(&path);
    }
    tracing::info!("stopped");
    stopped
}

/// Shuts the signer down on a blocking thread: the HSM workers finish and stop, the sessions
/// close and the module is finalised, whoever else still holds the signer.
async fn close_signer(signer: Arc<Signer>) {
    let closing = tokio::task::spawn_blocking(move || signer.shutdown(DRAIN_TIME));
    // The executor and the backend bound their own waits; this bounds the whole.
    match tokio::time::timeout(DRAIN_TIME * 2, closing).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "closing the HSM failed"),
        Err(_) => tracing::error!("closing the HSM did not finish in time; exiting anyway"),
    }
}

/// Installs the SIGTERM, SIGINT and SIGHUP handlers now and returns the future that completes
/// on the first SIGTERM or SIGINT.
///
/// SIGHUP is caught too: its default action would kill the agent at once (no drain, the socket
/// file left behind). It re-reads the token's keys (`rescan`), not the configuration, so the
/// agent says so and keeps serving.
fn shutdown_signal() -> Result<impl std::future::Future<Output = Result<(), Error>>, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io("installing SIGTERM handler", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("installing SIGINT handler", e))?;
    let mut hup =
        signal(SignalKind::hangup()).map_err(|e| Error::io("installing SIGHUP handler", e))?;
    Ok(async move {
        loop {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = int.recv() => tracing::info!("SIGINT received"),
                Some(()) = hup.recv() => {
                    tracing::warn!(
                        "SIGHUP received: re-reading the token's keys; the configuration is not \
                         reloaded (restart the agent to apply a changed configuration)"
                    );
                    continue;
                }
            }
            return Ok(());
        }
    })
}

fn bind_unix(
    path: &PathBuf,
    mode: Mode,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<UnixListener, Error> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "listen: {} exists and is not a socket; refusing to replace it",
                path.display()
            )));
        }
        refuse_if_served(path)?;
        // A socket left by an earlier run that did not shut down cleanly.
        std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("removing stale socket {}", path.display()), e))?;
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| Error::io(format!("binding unix socket {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode.bits()))
        .map_err(|e| Error::io(format!("setting the mode of {}", path.display()), e))?;
    if uid.is_some() || gid.is_some() {
        std::os::unix::fs::chown(path, uid, gid)
            .map_err(|e| Error::io(format!("setting the owner of {}", path.display()), e))?;
    }
    Ok(listener)
}

/// An error if another process accepts connections on the unix socket at `path`.
fn refuse_if_served(path: &PathBuf) -> Result<(), Error> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(Error::Config(format!(
            "listen: another process is serving on {}; refusing to take its socket",
            path.display()
        )));
    }
    Ok(())
}

fn remove_socket(path: &PathBuf) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "removing the socket file failed");
    }
}

/// With `fsync = "interval"`: syncs the audit log every interval, so the records of an agent
/// that went idle reach the disk too (a record's own write syncs only when a sync is due).
/// Runs until the runtime stops; the shutdown's flush syncs the rest.
async fn sync_audit_log(log: Arc<AuditLog>, every: std::time::Duration) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let log = Arc::clone(&log);
        if tokio::task::spawn_blocking(move || log.sync_due())
            .await
            .is_err()
        {
            return;
        }
    }
}
