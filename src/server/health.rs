//! What the standard gRPC health service reports, for the whole server and for
//! `signet.v1.Signer`: set before any listener accepts, then following the HSM and the audit
//! log, and `NOT_SERVING` from the start of a shutdown.

use tokio::sync::watch;
use tonic_health::server::HealthReporter;

use crate::backend::HsmState;

/// Keeps the health service in step with the HSM and the audit log: `SERVING` only while the
/// backend serves and audit records can be written.
pub(super) async fn follow_health(
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

/// Sets the whole server's and the Signer service's health.
pub(super) async fn set_health(health: &HealthReporter, serving: bool) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let status = if serving { Serving } else { NotServing };
    // "" is the whole server, as grpc-health-probe and load balancers ask by default.
    health.set_service_status("", status).await;
    health.set_service_status("signet.v1.Signer", status).await;
}
