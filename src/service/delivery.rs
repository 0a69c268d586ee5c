//! The delivery ticket of one call: it learns whether the call's answer was handed to the
//! transport, and if an answer that the audit log records as allowed was not (the client went
//! away, the call was cancelled), it writes an `undelivered` record naming each such record.
//!
//! Records are written before the answer leaves (fail closed), so the log may only learn
//! afterwards that the answer never left; this is how it then says so.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::audit::{AuditLog, Record};

/// Shared between the transport (which marks the answer delivered) and the gate (which names
/// the records that claim an answer). The last holder to let go settles it.
#[derive(Clone)]
pub struct Delivery(Arc<Ticket>);

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Delivery")
    }
}

struct Ticket {
    audit: Arc<AuditLog>,
    arrived: Instant,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    delivered: bool,
    /// The records written as allowed for this call, with their `seq`.
    answered: Vec<(u64, Record)>,
}

impl Delivery {
    /// A ticket for a call that arrived at `arrived`, audited in `audit`.
    pub fn new(audit: Arc<AuditLog>, arrived: Instant) -> Self {
        Delivery(Arc::new(Ticket {
            audit,
            arrived,
            state: Mutex::new(State::default()),
        }))
    }

    /// The whole answer was handed to the transport.
    pub fn delivered(&self) {
        self.0.lock().delivered = true;
    }

    /// These records (with the `seq` each was written at) say the caller was given an answer.
    pub fn answered(&self, records: impl IntoIterator<Item = (u64, Record)>) {
        self.0.lock().answered.extend(records);
    }
}

impl Ticket {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Ticket {
    /// Nobody holds the ticket any more: if an answer that was recorded never left, record
    /// that, on a blocking thread when a runtime is there (the write may wait for an fsync).
    fn drop(&mut self) {
        let state = std::mem::take(&mut *self.lock());
        if state.delivered || state.answered.is_empty() {
            return;
        }
        let latency_us = self
            .arrived
            .elapsed()
            .as_micros()
            .try_into()
            .unwrap_or(u64::MAX);
        let records: Vec<Record> = state
            .answered
            .into_iter()
            .map(|(seq, record)| Record {
                latency_us,
                ..record.undelivered(seq, "CANCELLED")
            })
            .collect();
        tracing::warn!(
            records = records.len(),
            "an answer recorded in the audit log was not delivered (the client went away); \
             recording that"
        );
        let audit = Arc::clone(&self.audit);
        let write = move || {
            if let Err(e) = audit.record_all(&records) {
                tracing::error!(error = %e, "the undelivered answer could not be audited");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(write)),
            Err(_) => write(),
        }
    }
}
