//! `signet bench`: load against a running agent ([`agent`]), the same load straight on the
//! PKCS#11 module ([`raw`](crate::backend::pkcs11::raw)), and the two alternated in one run
//! with their ratio ([`compare`]). Benchmarks are not tests: nothing here asserts a time.

pub mod agent;

use std::collections::BTreeMap;
use std::time::Duration;

/// What one run measured.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// What ran (for the printout).
    pub label: String,
    /// Operations that succeeded (batch items count one each).
    pub ok: u64,
    /// Failures by gRPC code name (or error kind for raw runs).
    pub errors: BTreeMap<String, u64>,
    /// Latency of each call, in microseconds.
    pub latencies_us: Vec<u32>,
    /// How long the run took.
    pub elapsed: Duration,
    /// Signatures checked with an independent verifier, and how many failed.
    pub verified: (u64, u64),
}

impl Report {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The `q` quantile of the call latencies, in microseconds.
    pub fn latency_us(&self, q: f64) -> u32 {
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        if sorted.is_empty() {
            return 0;
        }
        let index = ((sorted.len() - 1) as f64 * q).round() as usize;
        sorted[index.min(sorted.len() - 1)]
    }

    /// The report as lines for a terminal or a file.
    pub fn render(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(code, n)| format!("{code}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        format!(
            "{}: {:.0} ops/s ({} ok in {:.2} s), latency p50 {} us, p99 {} us, p99.9 {} us; \
             errors: {errors}; verified {} signatures, {} bad",
            self.label,
            self.rate(),
            self.ok,
            self.elapsed.as_secs_f64(),
            self.latency_us(0.5),
            self.latency_us(0.99),
            self.latency_us(0.999),
            self.verified.0,
            self.verified.1,
        )
    }
}

/// The median of some ratios.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}
