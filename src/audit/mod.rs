//! The tamper-evident audit log: one JSON line per signing operation (allowed or denied), each
//! carrying `seq` and the SHA-256 (`prev`) of the line before it, so that an edited, removed,
//! inserted or reordered record breaks the chain at a line `signet audit verify` names.
//!
//! The first line of a file is a genesis record whose `prev` is a random seed (a new log) or
//! the last hash of the file it was rotated from. A small `<path>.head` file names the last
//! record known to be on disk (`seq` and hash), written after each sync, so a log cut short of
//! it is detected too; the log may go past it by the records appended since. Records are
//! written (and, with `fsync = "always"`, synced, concurrent calls sharing one `fdatasync`)
//! before the call's answer leaves; if that fails, the call
//! fails closed with `UNAVAILABLE` (unless `on_failure = "allow"`) and health reports it.
//!
//! One agent writes a log: it holds the lock on `<path>.lock` (see [`holder`]) from before it
//! reads the log until it exits, and a second agent on the same log refuses to start.

mod chain;
mod denials;
mod lock;
mod record;
mod verify;
mod writer;

use std::sync::Mutex;

use tokio::sync::watch;

use crate::config::{self, Fsync, OnAuditFailure};
use crate::error::Error;
use denials::DenialBudget;
use lock::WriterLock;
use writer::{Syncer, Writer};

pub use lock::{holder, Holder};
pub use record::{Outcome, Record, Verdict};
pub use verify::{verify, Broken, Live, Verified};

/// The open audit log.
pub struct AuditLog {
    settings: config::Audit,
    writer: Mutex<Writer>,
    /// Group commit: whoever syncs, syncs every record appended so far, so concurrent calls
    /// share one fsync instead of queueing one each behind the writer's lock.
    syncer: Mutex<Syncer>,
    /// The last record appended (possibly not yet synced): its number and hash.
    appended: Mutex<(u64, String)>,
    health: watch::Sender<bool>,
    denials: Mutex<DenialBudget>,
    /// Held for as long as the log is open: no other agent writes it meanwhile.
    _lock: WriterLock,
}

impl AuditLog {
    /// Opens (or creates) the log and continues its chain, holding its lock until dropped.
    /// Refuses a log another process holds (naming its pid), or one that ends with a partial
    /// record or is shorter than its head file says: an operator must look first.
    pub fn open(settings: &config::Audit) -> Result<Self, Error> {
        let path = &settings.path;
        // Before anything is read or repaired: another agent may be writing this log.
        let lock = WriterLock::acquire(path)?;
        let writer = Writer::open(path)?;
        let syncer = writer
            .syncer()
            .map_err(|e| Error::io(format!("audit log {}: opening", path.display()), e))?;
        Ok(AuditLog {
            settings: settings.clone(),
            appended: Mutex::new((writer.seq, writer.last().1.to_owned())),
            writer: Mutex::new(writer),
            syncer: Mutex::new(syncer),
            health: watch::channel(true).0,
            denials: Mutex::new(DenialBudget::default()),
            _lock: lock,
        })
    }

    /// Records a denial, at most 100 a second; the ones over the budget are only counted, into
    /// the next denial record that is written. Returns the record's number, or `None` when it was only counted (or, with
    /// `on_failure = "allow"`, could not be written).
    pub fn record_denial(&self, record: &Record) -> Result<Option<u64>, Error> {
        let mut record = record.clone();
        if !self.admit_denial(&mut record) {
            return Ok(None);
        }
        self.record(&record)
    }

    /// Whether a denial record fits the budget; sets its count of the denials suppressed
    /// before it. A denial that does not fit is only counted.
    pub fn admit_denial(&self, record: &mut Record) -> bool {
        self.denials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(record)
    }

    /// With `fsync = "interval"`, how often the records written since the last sync must
    /// reach the disk; `None` with `"always"` (every answer waits for its own).
    pub fn sync_interval(&self) -> Option<std::time::Duration> {
        (self.settings.fsync == Fsync::Interval)
            .then(|| std::time::Duration::from_millis(self.settings.fsync_interval_ms.max(1)))
    }

    /// With `fsync = "interval"`: syncs the records written since the last sync once the
    /// interval has passed. A record's own write syncs only when a sync is due, so without
    /// this timer (the server calls it every interval) an agent that goes idle would leave its
    /// last records unsynced until the next record or its shutdown.
    pub fn sync_due(&self) {
        if let Err(e) = self.sync_upto(u64::MAX, false) {
            // Logged, and health turned NOT_SERVING with `on_failure = "deny"`, as a record's
            // failed write would.
            let _ = self.outcome(Err(e));
        }
    }

    /// Syncs what was written (with `fsync = "interval"`, the records since the last sync).
    /// Called at shutdown.
    pub fn flush(&self) {
        if let Err(e) = self.sync_upto(u64::MAX, true) {
            tracing::error!(error = %e, "syncing the audit log at shutdown failed");
        }
    }

    /// Appends the records, then makes sure they are synced (per the fsync policy), sharing
    /// one fsync with every record appended meanwhile. The numbers of the records appended
    /// go into `written` (on an error, those appended before it).
    fn append_and_sync(&self, records: &[&Record], written: &mut Vec<u64>) -> Result<(), Error> {
        let seq = {
            let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            for record in records {
                if writer.is_full(&self.settings) {
                    // The syncer is held across the rotation, so that no sync of the old file
                    // names an older record in the head file after the rotation named the new
                    // genesis. The old file is synced before it is renamed.
                    let mut syncer = self.syncer.lock().unwrap_or_else(|p| p.into_inner());
                    *syncer = writer.rotate(&self.settings.path)?;
                    self.note_appended(&writer);
                }
                written.push(writer.write_record(record)?);
                self.note_appended(&writer);
            }
            writer.last().0
        };
        self.sync_upto(seq, false)
    }

    fn note_appended(&self, writer: &Writer) {
        let (seq, hash) = writer.last();
        let mut appended = self.appended.lock().unwrap_or_else(|p| p.into_inner());
        appended.0 = seq;
        hash.clone_into(&mut appended.1);
    }

    /// Records several calls (the items of a batch) with one sync; failures as in
    /// [`record`](Self::record). Returns each record's number, in order (`None` for those not
    /// written when writing failed with `on_failure = "allow"`).
    pub fn record_all(&self, records: &[Record]) -> Result<Vec<Option<u64>>, Error> {
        let refs: Vec<&Record> = records.iter().collect();
        let mut written = Vec::with_capacity(records.len());
        let result = self.append_and_sync(&refs, &mut written);
        self.outcome(result)?;
        let mut numbers: Vec<Option<u64>> = written.into_iter().map(Some).collect();
        numbers.resize(records.len(), None);
        Ok(numbers)
    }

    /// Syncs unless record `seq` already is (or, with `fsync = "interval"`, unless the last
    /// sync is recent and `force` is not set).
    fn sync_upto(&self, seq: u64, force: bool) -> Result<(), Error> {
        let mut syncer = self.syncer.lock().unwrap_or_else(|p| p.into_inner());
        let (upto, upto_hash) = self
            .appended
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !force && syncer.synced_seq >= seq.min(upto) {
            return Ok(());
        }
        if !force
            && self.settings.fsync == Fsync::Interval
            && syncer.last_sync.elapsed().as_millis() < u128::from(self.settings.fsync_interval_ms)
        {
            return Ok(());
        }
        syncer.sync(upto, &upto_hash, force)
    }

    /// Whether records are being written; the health service follows it.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.health.subscribe()
    }

    /// Appends `record` (synced per the fsync policy) and rotates the file when it is full;
    /// returns its number, by which a later record (an `undelivered` one) can name it.
    /// When that fails: `AuditUnavailable` with `on_failure = "deny"`, or a logged error and
    /// `Ok(None)` with `"allow"`.
    pub fn record(&self, record: &Record) -> Result<Option<u64>, Error> {
        let mut written = Vec::with_capacity(1);
        let result = self.append_and_sync(&[record], &mut written);
        self.outcome(result)?;
        Ok(written.first().copied())
    }

    /// Turns a write result into the call's result per `on_failure`, and keeps health in step.
    fn outcome(&self, result: Result<(), Error>) -> Result<(), Error> {
        match result {
            Ok(()) => {
                self.health
                    .send_if_modified(|ok| !std::mem::replace(ok, true));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "writing an audit record failed");
                match self.settings.on_failure {
                    OnAuditFailure::Deny => {
                        self.health
                            .send_if_modified(|ok| std::mem::replace(ok, false));
                        Err(Error::AuditUnavailable(e.to_string()))
                    }
                    OnAuditFailure::Allow => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests_support {
    use std::path::Path;

    use super::*;

    /// The settings of a log in `dir` to which an agent wrote records 1 to `records`, then
    /// stopped.
    pub fn stopped_log(dir: &Path, records: u64) -> config::Audit {
        let s = settings(dir);
        let log = AuditLog::open(&s).expect("open");
        for i in 1..=records {
            log.record(&record(i)).expect("write");
        }
        s
    }

    pub fn settings(dir: &Path) -> config::Audit {
        config::Audit {
            path: dir.join("audit.jsonl"),
            fsync: Fsync::Always,
            fsync_interval_ms: 1000,
            max_bytes: 64 << 20,
            on_failure: OnAuditFailure::Deny,
        }
    }

    pub fn record(i: u64) -> Record {
        Record {
            client: Some("c".into()),
            identity: format!("uid={i}"),
            listener: "unix:/s".into(),
            rpc: "Sign",
            key_id: "k".into(),
            algorithm: Some("ed25519"),
            key_version: None,
            message_sha256: Some(hex::encode([i as u8; 32])),
            outcome: Outcome::Allowed,
            verdict: None,
            code: "OK",
            latency_us: i,
            suppressed_denials: None,
            undelivered_seq: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::tests_support::*;
    use super::*;

    #[test]
    fn a_write_failure_fails_closed_and_flips_health() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = AuditLog::open(&settings(dir.path())).expect("open");
        log.record(&record(1)).expect("written");
        let health = log.health();
        // A handle that cannot write stands in for a full or failing disk.
        log.writer.lock().expect("lock").file =
            File::open(dir.path().join("audit.jsonl")).expect("read-only handle");
        let err = log.record(&record(2)).expect_err("fail closed");
        assert_eq!(err.kind(), crate::ErrorKind::Unavailable);
        assert!(!*health.borrow(), "health reports it");
        let mut open = settings(dir.path());
        open.on_failure = OnAuditFailure::Allow;
        let mut log = log;
        log.settings = open;
        let health = log.health();
        assert!(log.record(&record(3)).is_ok(), "fail open when configured");
        assert!(!*health.borrow(), "still reported from the failure before");
    }
}

#[cfg(test)]
mod group_commit_tests {
    use std::path::PathBuf;

    use super::chain::rotated_path;
    use super::tests_support::*;
    use super::*;

    #[test]
    fn concurrent_records_share_syncs_and_keep_one_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path());
        s.max_bytes = 20_000; // rotate a few times meanwhile
        let log = std::sync::Arc::new(AuditLog::open(&s).expect("open"));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let log = std::sync::Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        log.record(&record(t * 100 + i)).expect("record");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        let mut files: Vec<PathBuf> = (1..)
            .map(|n| rotated_path(&s.path, n))
            .take_while(|p| p.exists())
            .collect();
        files.push(s.path.clone());
        let mut records = 0;
        let mut last: Option<String> = None;
        for file in &files {
            let verified = verify(file).expect("read").expect("intact");
            if let Some(last) = &last {
                assert_eq!(&verified.first_prev, last, "rotations keep the chain");
            }
            records += verified.records;
            last = Some(verified.last_hash);
        }
        assert_eq!(
            records,
            400 + files.len() as u64,
            "every record, one genesis per file"
        );
    }
}
