//! Following key changes on the token while serving: SIGHUP re-reads the token's keys at once,
//! and a timer re-reads them every `backend.rescan_interval_ms` (default 30 s). A re-read that
//! fails (the HSM unavailable) keeps the keys served as they were ([`Backend::rescan`]).

use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::watch;
use tokio::time::{Interval, MissedTickBehavior};

use crate::backend::Backend;
use crate::error::Error;

/// Installs the SIGHUP handler (before anything is bound: SIGHUP's default action would end
/// the process).
pub(super) fn hangups() -> Result<Signal, Error> {
    signal(SignalKind::hangup()).map_err(|e| Error::io("installing SIGHUP handler", e))
}

/// Re-reads the backend's keys on every SIGHUP and every `interval`, until `stop` turns true.
/// One re-read at a time, on a blocking thread.
pub(super) async fn follow_key_changes(
    backend: Arc<dyn Backend>,
    mut hangup: Signal,
    interval: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticker = interval.map(|every| {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    });
    loop {
        let why = tokio::select! {
            _ = hangup.recv() => "SIGHUP",
            () = tick(&mut ticker) => "periodic",
            _ = stop.changed() => return,
        };
        let backend = Arc::clone(&backend);
        match tokio::task::spawn_blocking(move || backend.rescan()).await {
            // Changes are logged by the backend; a periodic re-read that found none is quiet.
            Ok(Ok(())) if why == "periodic" => tracing::debug!("re-read the token's keys"),
            Ok(Ok(())) => tracing::info!(trigger = why, "re-read the token's keys"),
            Ok(Err(e)) => tracing::warn!(
                trigger = why,
                error = %e,
                "re-reading the token's keys failed; serving the keys as they were"
            ),
            Err(e) => tracing::error!(error = %e, "the key re-read task failed"),
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}
