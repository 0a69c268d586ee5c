//! Runs the agent: opens the backend, binds the listeners, serves `signet.v1.Signer` with the
//! standard health and reflection services, and shuts down in order on SIGTERM or SIGINT.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::watch;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;

use crate::audit::AuditLog;
use crate::backend::{Backend, HsmState};
use crate::config::{Config, Listener, Mode};
use crate::error::Error;
use crate::grpc::proto::signer_server::SignerServer;
use crate::grpc::proto::FILE_DESCRIPTOR_SET;
use crate::grpc::service::Access;
use crate::grpc::service::SignerService;
use crate::grpc::{oversize, stamps};
use crate::metrics::{self, Metrics};
use crate::policy::Policy;
use crate::signer::{self, Signer};

/// The most calls one HTTP/2 connection may have in flight.
const MAX_STREAMS_PER_CONNECTION: u32 = 256;

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
    let audit = match &config.audit {
        Some(settings) => Some(Arc::new(AuditLog::open(settings)?)),
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let access = Access {
        policy: Arc::new(Policy::new(&config.clients)),
        audit: audit.clone(),
        metrics: Arc::clone(&metrics),
    };
    let signer_service = SignerServer::new(SignerService::new(
        Arc::clone(&signer),
        access,
        &config.limits,
    ))
    .max_decoding_message_size(decode_limit);

    // Health is set before any listener accepts, so a probe at start-up gets SERVING or
    // NOT_SERVING, never "service not registered"; once all listen, it follows the HSM and the
    // audit log.
    let audit_health = audit.as_ref().map(|a| a.health());
    let serving_now = *backend.state().borrow() == HsmState::Serving
        && audit_health.as_ref().is_none_or(|ok| *ok.borrow());
    set_health(&health, serving_now).await;

    let mut sockets = Vec::new();
    let mut servers = tokio::task::JoinSet::new();
    for listener in &config.listen {
        let name: Arc<str> = listener.name().into();
        let mut builder = Server::builder();
        if let Listener::Tls {
            cert,
            key,
            client_ca,
            ..
        } = listener
        {
            builder = builder
                .tls_config(tls_config(cert, key, client_ca)?)
                .map_err(|e| {
                    Error::Config(format!(
                        "listen: {name}: the TLS configuration is invalid: {e}"
                    ))
                })?;
        }
        let router = builder
            // Bounds the requests one connection can have in flight (and so the memory tonic
            // holds for their bodies before the executor's byte budget applies).
            .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
            .layer(tower::util::MapRequestLayer::new(stamps::stamp))
            .layer(tower::util::MapRequestLayer::new(stamps::listener(
                Arc::clone(&name),
            )))
            .layer(tower::util::MapResponseLayer::new(oversize::layer(
                config.limits.max_message_bytes,
            )))
            .add_service(health_service.clone())
            .add_service(reflection.clone())
            .add_service(reflection_v1alpha.clone())
            .add_service(signer_service.clone());
        let stop = wait_for(shutdown_rx.clone());
        match listener {
            Listener::Unix {
                path,
                mode,
                uid,
                gid,
            } => {
                let incoming = bind_unix(path, *mode, *uid, *gid)
                    .inspect_err(|_| sockets.iter().for_each(remove_socket))?;
                sockets.push(path.clone());
                tracing::info!(address = %name, "listening");
                servers.spawn(router.serve_with_incoming_shutdown(incoming, stop));
            }
            Listener::Tcp { address, .. } | Listener::Tls { address, .. } => {
                let tcp = match TcpListener::bind(address).await {
                    Ok(tcp) => tcp,
                    Err(e) => {
                        sockets.iter().for_each(remove_socket);
                        return Err(Error::io(format!("binding {address}"), e));
                    }
                };
                tracing::info!(address = %name, "listening");
                servers
                    .spawn(router.serve_with_incoming_shutdown(TcpListenerStream::new(tcp), stop));
            }
        }
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
            Ok::<(), tonic::transport::Error>(())
        });
    }
    let health_follows_hsm =
        tokio::spawn(follow_health(backend.state(), audit_health, health.clone()));
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
            match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "a listener failed"),
                Err(e) => tracing::error!(error = %e, "a listener task failed"),
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
    drop(signer_service);
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

/// Keeps the health service in step with the HSM and the audit log: `SERVING` only while the
/// backend serves and audit records can be written.
async fn follow_health(
    mut hsm: watch::Receiver<HsmState>,
    audit: Option<watch::Receiver<bool>>,
    health: HealthReporter,
) {
    let (_always, always_ok) = watch::channel(true);
    let mut audit = audit.unwrap_or(always_ok);
    let mut hsm_open = true;
    loop {
        let state = hsm.borrow_and_update().clone();
        let audit_ok = *audit.borrow_and_update();
        match &state {
            HsmState::Serving => tracing::info!("HSM serving"),
            HsmState::Recovering => tracing::warn!("HSM connection lost; health NOT_SERVING"),
            HsmState::Failed(why) => {
                tracing::error!(reason = %why, "HSM failed; health NOT_SERVING")
            }
        }
        if !audit_ok {
            tracing::error!("the audit log cannot be written; health NOT_SERVING");
        }
        set_health(&health, state == HsmState::Serving && audit_ok).await;
        tokio::select! {
            changed = hsm.changed(), if hsm_open => hsm_open = changed.is_ok(),
            changed = audit.changed() => if changed.is_err() { return },
        }
        if !hsm_open && hsm.has_changed().is_err() {
            // The backend has no state to report; only the audit log can change health now.
            if audit.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The server TLS settings: its certificate and key, and the CA that client certificates must
/// chain to (which makes client certificates required).
fn tls_config(cert: &Path, key: &Path, client_ca: &Path) -> Result<ServerTlsConfig, Error> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| Error::io(format!("reading {}", path.display()), e))
    };
    let key = zeroize::Zeroizing::new(read(key)?);
    Ok(ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(read(cert)?, &*key))
        .client_ca_root(tonic::transport::Certificate::from_pem(read(client_ca)?)))
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

async fn set_health(health: &HealthReporter, serving: bool) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let status = if serving { Serving } else { NotServing };
    // "" is the whole server, as grpc-health-probe and load balancers ask by default.
    health.set_service_status("", status).await;
    health.set_service_status("signet.v1.Signer", status).await;
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    // An error means the sender is gone, which also means stop.
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Installs the SIGTERM and SIGINT handlers now and returns the future that completes on the
/// first of them.
fn shutdown_signal() -> Result<impl std::future::Future<Output = Result<(), Error>>, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io("installing SIGTERM handler", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("installing SIGINT handler", e))?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        Ok(())
    })
}

fn bind_unix(
    path: &PathBuf,
    mode: Mode,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<UnixListenerStream, Error> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Error::Config(format!(
                "listen: {} exists and is not a socket; refusing to replace it",
                path.display()
            )));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(Error::Config(format!(
                "listen: another process is serving on {}; refusing to take its socket",
                path.display()
            )));
        }
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
    Ok(UnixListenerStream::new(listener))
}

fn remove_socket(path: &PathBuf) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(path = %path.display(), error = %e, "removing the socket file failed");
    }
}
