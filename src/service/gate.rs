//! The gate every operation passes: refusals before the policy (which leave no record), the
//! policy matched once, one audit record with a typed outcome written before the answer
//! leaves, and one count and log line per call.

use std::time::Instant;

use super::call::{Call, Rpc};
use super::Service;
use crate::audit::{Outcome, Record};
use crate::error::Error;
use crate::metrics::OTHER_KEY;
use crate::signer::check_key_id;

/// The key label of calls that name no single key (ListKeys, a batch failing as a whole).
const NO_KEY: &str = "-";

/// Counts a call and logs its line when it ends, or as `CANCELLED` when its future is dropped
/// first (the client went away).
pub(super) struct Watch<'a> {
    service: &'a Service,
    call: &'a Call,
    rpc: Rpc,
    key: Option<&'a str>,
    client: Option<String>,
    finished: bool,
}

impl<'a> Watch<'a> {
    pub fn new(service: &'a Service, call: &'a Call, rpc: Rpc, key: Option<&'a str>) -> Self {
        Watch {
            service,
            call,
            rpc,
            key,
            client: None,
            finished: false,
        }
    }

    /// The client the policy matched, for the log line.
    pub fn client(&mut self, client: Option<String>) {
        self.client = client;
    }

    /// Counts the call with the code of `result`, and passes the result on. A batch
    /// (`key` `None`, audited RPC) is counted item by item instead, unless it failed whole.
    pub fn finish<T>(mut self, result: Result<T, Error>) -> Result<T, Error> {
        self.finished = true;
        let code = result
            .as_ref()
            .map_or_else(|e| e.kind().code_name(), |_| "OK");
        self.count(code);
        result
    }

    fn count(&self, code: &'static str) {
        let took = self.call.arrived.elapsed();
        let metrics = &self.service.metrics;
        let batch = self.key.is_none() && self.rpc.audited();
        let key = self.key.map_or(NO_KEY, |k| self.service.key_label(k));
        if !batch || code != "OK" {
            metrics.request(self.rpc.name(), key, code);
        }
        metrics.latency(self.rpc.name(), took);
        tracing::info!(
            rpc = self.rpc.name(),
            caller = %self.call.caller.identity,
            client = self.client.as_deref().unwrap_or("-"),
            key,
            code,
            latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.count("CANCELLED");
        }
    }
}

impl Service {
    /// Fills in how an admitted operation ended.
    pub(super) fn settle<T>(&self, record: &mut Record, result: &Result<T, Error>) {
        match result {
            Ok(_) => (record.outcome, record.code) = (Outcome::Allowed, "OK"),
            Err(e) => {
                self.note_failure(e);
                record.outcome = Outcome::Failed;
                record.code = e.kind().code_name();
            }
        }
    }

    /// What is refused before the policy, and so leaves no record: a malformed key id, or a
    /// deadline that has already passed.
    pub(super) fn precheck(call: &Call, key_id: &str) -> Result<(), Error> {
        check_key_id(key_id)?;
        Self::in_time(call)
    }

    /// Refuses a call whose deadline has passed.
    pub(super) fn in_time(call: &Call) -> Result<(), Error> {
        if Instant::now() >= call.deadline {
            return Err(Error::DeadlineExceeded("call could start"));
        }
        Ok(())
    }

    /// Matches the policy once. A denial is recorded (within the denial budget) and returned.
    pub(super) async fn admit(
        &self,
        call: &Call,
        rpc: Rpc,
        key_id: &str,
        watch: &mut Watch<'_>,
    ) -> Result<Record, Error> {
        let mut record = self.record_of(call, rpc, key_id);
        match self
            .policy
            .authorize(&call.caller.identity, rpc.operation(), key_id)
        {
            Ok(client) => {
                watch.client(client.clone());
                record.client = client;
                Ok(record)
            }
            Err(denied) => {
                tracing::warn!(caller = %call.caller.identity, rpc = rpc.name(), key = %key_id.escape_debug(), "denied: {denied}");
                let client = self.policy.client_of(&call.caller.identity);
                watch.client(client.clone());
                record.client = client;
                (record.outcome, record.code) = (Outcome::Denied, denied.kind().code_name());
                if let Err(e) = self.write(call, vec![record]).await {
                    tracing::error!(error = %e, "the denial could not be audited");
                }
                Err(denied)
            }
        }
    }

    /// The policy check of one batch item: its record, and whether it may go on. A malformed
    /// key id is recorded too (under an empty id), so a batch's records match its items one
    /// for one.
    pub(super) fn admit_item(
        &self,
        call: &Call,
        rpc: Rpc,
        key_id: &str,
    ) -> (Record, Result<(), Error>) {
        let mut record = self.record_of(call, rpc, key_id);
        let admitted = check_key_id(key_id)
            .inspect_err(|_| record.key_id.clear())
            .and_then(|()| {
                self.policy
                    .authorize(&call.caller.identity, rpc.operation(), key_id)
                    .map(|client| record.client = client)
                    .inspect_err(|_| {
                        record.client = self.policy.client_of(&call.caller.identity);
                        record.outcome = Outcome::Denied;
                    })
            });
        if let Err(e) = &admitted {
            if record.outcome != Outcome::Denied {
                record.outcome = Outcome::Failed;
            }
            record.code = e.kind().code_name();
        }
        (record, admitted)
    }

    /// A record of this call with what is known before the decision.
    fn record_of(&self, call: &Call, rpc: Rpc, key_id: &str) -> Record {
        Record {
            client: None,
            identity: call.caller.identity.to_string(),
            listener: call.caller.listener.clone(),
            rpc: rpc.name(),
            key_id: key_id.to_owned(),
            algorithm: None,
            key_version: None,
            message_sha256: None,
            outcome: Outcome::Failed,
            verdict: None,
            code: "UNKNOWN",
            latency_us: 0,
            undelivered_seq: None,
            suppressed_denials: None,
        }
    }

    /// Writes the records of a call with one sync (denials within their budget), on a blocking
    /// thread so the async workers keep serving and concurrent calls share fsyncs. The records
    /// that say an answer was given are handed to the call's delivery ticket, from the writer
    /// thread itself, so that even a call cancelled while its record is written is settled.
    pub(super) async fn write(&self, call: &Call, records: Vec<Record>) -> Result<(), Error> {
        let Some(audit) = self.audit.clone() else {
            return Ok(());
        };
        let records: Vec<Record> = records
            .into_iter()
            .map(|r| r.with_latency(call.arrived))
            .filter_map(|mut r| {
                (r.outcome != Outcome::Denied || audit.admit_denial(&mut r)).then_some(r)
            })
            .collect();
        if records.is_empty() {
            return Ok(());
        }
        let delivery = call.delivery.clone();
        let written = tokio::task::spawn_blocking(move || {
            let seqs = audit.record_all(&records)?;
            if let Some(delivery) = delivery {
                delivery.answered(
                    seqs.into_iter()
                        .zip(records)
                        .filter(|(_, r)| r.outcome == Outcome::Allowed)
                        .filter_map(|(seq, r)| Some((seq?, r))),
                );
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::AuditUnavailable(format!("the audit writer task failed: {e}")))
        .and_then(|written| written);
        if written.is_err() {
            self.metrics.audit_failed();
        }
        written
    }

    /// A served key id, or [`OTHER_KEY`]: callers cannot add labels to the metrics.
    pub(super) fn key_label<'a>(&self, key_id: &'a str) -> &'a str {
        if self.signer.serves(key_id) {
            key_id
        } else {
            OTHER_KEY
        }
    }

    /// Counts a signature withheld by verify-after-sign.
    fn note_failure(&self, error: &Error) {
        if let Error::SignatureCheckFailed { key_id } = error {
            self.metrics.verify_failed(self.key_label(key_id));
        }
    }

    /// Counts each item of an answered batch with its key and code.
    pub(super) fn count_items(&self, records: &[(Rpc, String, &'static str)]) {
        for (rpc, key_id, code) in records {
            self.metrics
                .request(rpc.name(), self.key_label(key_id), code);
        }
    }
}
