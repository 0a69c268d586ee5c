//! The denial budget: how many denial records are written per second, and the count of the
//! ones beyond it that goes into the next denial record.

use std::time::Instant;

use super::Record;

/// The most denial records written per second. Denied callers need no grant, so without a
/// bound anyone who can connect could fill the disk with records (and stop all signing when
/// the log fails closed). Beyond it, denials are counted and the count goes into the next
/// denial record written.
pub(super) const DENIALS_PER_SECOND: u32 = 100;

/// The denial records written in the current one-second window, and those suppressed since
/// the last one written.
#[derive(Default)]
pub(super) struct DenialBudget {
    pub(super) window: Option<Instant>,
    written: u32,
    suppressed: u64,
}

impl DenialBudget {
    /// Whether a denial record fits the budget; sets its count of the denials suppressed
    /// before it. A denial that does not fit is only counted.
    pub(super) fn admit(&mut self, record: &mut Record) -> bool {
        let now = Instant::now();
        if self
            .window
            .is_none_or(|w| now.duration_since(w).as_secs() >= 1)
        {
            self.window = Some(now);
            self.written = 0;
        }
        if self.written >= DENIALS_PER_SECOND {
            self.suppressed += 1;
            return false;
        }
        self.written += 1;
        let suppressed = std::mem::take(&mut self.suppressed);
        record.suppressed_denials = (suppressed > 0).then_some(suppressed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::AuditLog;
    use super::*;

    #[test]
    fn denials_beyond_the_budget_are_counted_not_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let log = AuditLog::open(&s).expect("open");
        for i in 0..(u64::from(DENIALS_PER_SECOND) + 50) {
            log.record_denial(&record(i)).expect("denial");
        }
        let written = std::fs::read_to_string(&s.path)
            .expect("log")
            .lines()
            .count();
        assert_eq!(written, 1 + DENIALS_PER_SECOND as usize);
        log.denials.lock().expect("budget").window = None;
        log.record_denial(&record(0)).expect("denial");
        let last = std::fs::read_to_string(&s.path).expect("log");
        assert!(last
            .lines()
            .last()
            .expect("line")
            .contains("\"suppressed_denials\":50"));
    }
}
