//! The agent's Prometheus metrics: requests by RPC, key and outcome, latency, queue and
//! session use, HSM state, verify-after-sign and audit failures, refused connections and
//! failed accepts. No message contents, no
//! caller-chosen strings: a key id that the agent does not serve is counted as `(other)`.

pub mod http;

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::backend::HsmState;

/// The label for key ids the agent does not serve (so callers cannot grow the label set).
pub const OTHER_KEY: &str = "(other)";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    rpc: &'static str,
    key: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    rpc: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// What the agent's queue and workers are doing at the moment of a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Load {
    /// HSM calls waiting for a worker.
    pub queued: usize,
    /// Workers inside an HSM call.
    pub busy: usize,
    /// Workers (one HSM session each).
    pub workers: usize,
}

/// The registry and the handles the agent records into.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RpcLabels, Histogram, fn() -> Histogram>,
    verify_failures: Family<KeyLabels, Counter>,
    audit_failures: Counter,
    queued: Gauge,
    busy: Gauge,
    workers: Gauge,
    hsm_state: Family<StateLabels, Gauge>,
    connections_refused: Family<ListenerLabels, Counter>,
    accept_errors: Family<ListenerLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// An empty registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("signet");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests (batch items counted one by one) by RPC, key and gRPC code",
            requests.clone(),
        );
        let latency = Family::<RpcLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its answer, by RPC",
            latency.clone(),
        );
        let verify_failures = Family::<KeyLabels, Counter>::default();
        registry.register(
            "verify_after_sign_failures",
            "Signatures from the HSM that did not verify and were withheld",
            verify_failures.clone(),
        );
        let audit_failures = Counter::default();
        registry.register(
            "audit_write_failures",
            "Audit records that could not be written",
            audit_failures.clone(),
        );
        let queued = Gauge::default();
        registry.register(
            "queue_depth",
            "HSM calls waiting for a worker",
            queued.clone(),
        );
        let busy = Gauge::default();
        registry.register("sessions_busy", "HSM sessions inside a call", busy.clone());
        let workers = Gauge::default();
        registry.register(
            "sessions",
            "HSM sessions (one worker each)",
            workers.clone(),
        );
        let hsm_state = Family::<StateLabels, Gauge>::default();
        registry.register(
            "hsm_state",
            "1 for the HSM's current state (serving, recovering, failed), 0 for the others",
            hsm_state.clone(),
        );
        let connections_refused = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused because their listener had limits.max_connections, by listener",
            connections_refused.clone(),
        );
        let accept_errors = Family::<ListenerLabels, Counter>::default();
        registry.register(
            "accept_errors",
            "Failed accepts (out of file descriptors or memory), by listener",
            accept_errors.clone(),
        );
        Metrics {
            registry,
            connections_refused,
            accept_errors,
            requests,
            latency,
            verify_failures,
            audit_failures,
            queued,
            busy,
            workers,
            hsm_state,
        }
    }

    /// Counts one request (or batch item). `key` must be a served key id or `OTHER_KEY`.
    pub fn request(&self, rpc: &'static str, key: &str, code: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                rpc,
                key: key.to_owned(),
                code,
            })
            .inc();
    }

    /// Records how long a whole call took.
    pub fn latency(&self, rpc: &'static str, took: Duration) {
        self.latency
            .get_or_create(&RpcLabels { rpc })
            .observe(took.as_secs_f64());
    }

    /// Counts a signature withheld by verify-after-sign.
    pub fn verify_failed(&self, key: &str) {
        self.verify_failures
            .get_or_create(&KeyLabels {
                key: key.to_owned(),
            })
            .inc();
    }

    /// Counts an audit record that could not be written.
    pub fn audit_failed(&self) {
        self.audit_failures.inc();
    }

    /// Counts a connection refused on `listener` (a configured listener's name).
    pub fn connection_refused(&self, listener: &str) {
        self.connections_refused
            .get_or_create(&ListenerLabels {
                listener: listener.to_owned(),
            })
            .inc();
    }

    /// Counts a failed accept on `listener` (a configured listener's name).
    pub fn accept_failed(&self, listener: &str) {
        self.accept_errors
            .get_or_create(&ListenerLabels {
                listener: listener.to_owned(),
            })
            .inc();
    }

    /// The text exposition, with the gauges set from `load` and `state` first.
    pub fn render(&self, load: Load, state: &HsmState) -> String {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.queued.set(gauge(load.queued));
        self.busy.set(gauge(load.busy));
        self.workers.set(gauge(load.workers));
        let current = match state {
            HsmState::Serving => "serving",
            HsmState::Recovering => "recovering",
            HsmState::Failed(_) => "failed",
        };
        for name in ["serving", "recovering", "failed"] {
            self.hsm_state
                .get_or_create(&StateLabels { state: name })
                .set(i64::from(name == current));
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_appear_in_the_exposition() {
        let metrics = Metrics::new();
        metrics.request("Sign", "k1", "OK");
        metrics.request("Sign", "k1", "OK");
        metrics.request("Sign", OTHER_KEY, "NOT_FOUND");
        metrics.latency("Sign", Duration::from_micros(300));
        metrics.verify_failed("k1");
        metrics.audit_failed();
        metrics.connection_refused("unix:/run/signet.sock");
        metrics.accept_failed("unix:/run/signet.sock");
        metrics.accept_failed("unix:/run/signet.sock");
        let text = metrics.render(
            Load {
                queued: 3,
                busy: 1,
                workers: 2,
            },
            &HsmState::Recovering,
        );
        for line in [
            r#"signet_requests_total{rpc="Sign",key="k1",code="OK"} 2"#,
            r#"signet_requests_total{rpc="Sign",key="(other)",code="NOT_FOUND"} 1"#,
            r#"signet_request_duration_seconds_count{rpc="Sign"} 1"#,
            r#"signet_verify_after_sign_failures_total{key="k1"} 1"#,
            "signet_audit_write_failures_total 1",
            r#"signet_connections_refused_total{listener="unix:/run/signet.sock"} 1"#,
            r#"signet_accept_errors_total{listener="unix:/run/signet.sock"} 2"#,
            "signet_queue_depth 3",
            "signet_sessions_busy 1",
            "signet_sessions 2",
            r#"signet_hsm_state{state="recovering"} 1"#,
            r#"signet_hsm_state{state="serving"} 0"#,
        ] {
            assert!(text.contains(line), "missing {line} in:\n{text}");
        }
    }
}
