//! The tamper-evident audit log: one JSON line per signing operation (allowed or denied), each
//! carrying `seq` and the SHA-256 (`prev`) of the line before it, so that an edited, removed,
//! inserted or reordered record breaks the chain at a line `signet audit verify` names.
//!
//! The first line of a file is a genesis record whose `prev` is a random seed (a new log) or
//! the last hash of the file it was rotated from. A small `<path>.head` file holds the last
//! `seq` and hash, so a log cut at a line boundary is detected too. Records are written (and,
//! with `fsync = "always"`, synced) before the call's answer leaves; if that fails, the call
//! fails closed with `UNAVAILABLE` (unless `on_failure = "allow"`) and health reports it.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::{self, Fsync, OnAuditFailure};
use crate::error::Error;

/// How an audited call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Allowed, and the answer (a signature) was produced and handed to the transport.
    Allowed,
    /// Refused by the policy.
    Denied,
    /// Allowed, but it failed; the code says how.
    Failed,
    /// An answer recorded as allowed (the record `answers_seq` names) was not delivered.
    Undelivered,
}

/// What one audited call was and how it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// The configured client's name, when the caller matched one.
    pub client: Option<String>,
    /// The caller's identity (`uid=… gid=… pid=…`, `cert CN=…`, `anonymous`).
    pub identity: String,
    /// The listener the call came through.
    pub listener: String,
    /// `Sign` or `Fingerprint`.
    pub rpc: &'static str,
    /// The key asked for.
    pub key_id: String,
    /// The key's algorithm, when the key exists and the call was allowed.
    pub algorithm: Option<&'static str>,
    /// SHA-256 of the signed bytes (never the bytes themselves), hex.
    pub message_sha256: Option<String>,
    /// `allowed` (signed), `denied` (policy), or `failed` (allowed, but an error).
    pub outcome: Outcome,
    /// The gRPC status code name (`OK`, `PERMISSION_DENIED`, …).
    pub code: &'static str,
    /// From the call's arrival to its answer, in microseconds.
    pub latency_us: u64,
    /// For an `undelivered` record: the `seq` of the record of the answer that was not
    /// delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answers_seq: Option<u64>,
    /// Denials not recorded just before this one (see [`AuditLog::record_denial`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed_denials: Option<u64>,
}

impl Record {
    /// Sets the latency to the time since `arrived`.
    pub fn with_latency(mut self, arrived: Instant) -> Self {
        self.latency_us = arrived.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
        self
    }
}

/// One line of the file: the chain fields, then the record (or the genesis fields).
#[derive(Serialize, Deserialize)]
struct Line<R> {
    seq: u64,
    time: String,
    prev: String,
    #[serde(flatten)]
    body: R,
}

#[derive(Serialize, Deserialize)]
struct Genesis {
    /// `new` (a random seed) or `rotated` (continues the file named in `from`).
    genesis: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct Head {
    seq: u64,
    hash: String,
}

/// The open audit log.
pub struct AuditLog {
    settings: config::Audit,
    writer: Mutex<Writer>,
    /// Group commit: whoever syncs, syncs every record appended so far, so concurrent calls
    /// share one fsync instead of queueing one each behind the writer's lock.
    syncer: Mutex<Syncer>,
    /// The last record appended (possibly not yet synced).
    appended: AtomicU64,
    health: watch::Sender<bool>,
    denials: Mutex<DenialBudget>,
}

/// Handles on the current log and head file for syncing, and how far they are synced.
struct Syncer {
    file: File,
    head: File,
    synced_seq: u64,
    last_sync: Instant,
}

/// The most denial records written per second. Denied callers need no grant, so without a
/// bound anyone who can connect could fill the disk with records (and stop all signing when
/// the log fails closed). Beyond it, denials are counted and the count goes into the next
/// denial record written.
const DENIALS_PER_SECOND: u32 = 100;

#[derive(Default)]
struct DenialBudget {
    window: Option<Instant>,
    written: u32,
    suppressed: u64,
}

struct Writer {
    file: File,
    head: File,
    size: u64,
    seq: u64,
    last_hash: String,
    last_sync: Instant,
}

impl AuditLog {
    /// Opens (or creates) the log and continues its chain. Refuses a log that ends with a
    /// partial record or is shorter than its head file says: an operator must look first.
    pub fn open(settings: &config::Audit) -> Result<Self, Error> {
        let path = &settings.path;
        let io = |what: &str, e| Error::io(format!("audit log {}: {what}", path.display()), e);
        finish_rotation(path).map_err(|e| io("finishing an interrupted rotation", e))?;
        let existing = last_lines(path).map_err(|e| io("reading", e))?;
        let head_path = head_path(path);
        let head_before = read_head(&head_path);
        if existing.is_none() {
            if let Some(head) = &head_before {
                return Err(Error::Startup(format!(
                    "the audit log {} is missing or empty, but its head file says the agent \
                     wrote up to record {}: restore the log, or move {} aside to start a new \
                     chain",
                    path.display(),
                    head.seq,
                    head_path.display()
                )));
            }
        }
        let file = private_file(path, true).map_err(|e| io("opening for append", e))?;
        let head = private_file(&head_path, false).map_err(|e| io("opening its head file", e))?;
        let size = file
            .metadata()
            .map_err(|e| io("reading its size", e))?
            .len();
        let mut writer = match existing {
            Some(Tail {
                line,
                complete,
                before,
            }) => {
                if !complete {
                    return Err(Error::Startup(format!(
                        "the audit log {} ends with an incomplete record; run `signet audit \
                         verify` on it and move it aside before starting",
                        path.display()
                    )));
                }
                let last =
                    serde_json::from_str::<Line<serde_json::Value>>(&line).map_err(|_| {
                        Error::Startup(format!(
                        "the last line of the audit log {} is not an audit record; run `signet \
                         audit verify` on it",
                        path.display()
                    ))
                    })?;
                let seq = last.seq;
                let last_hash = hash(&line);
                if head_before.is_none() {
                    tracing::warn!(
                        log = %path.display(),
                        "the audit log has records but no head file: records cut off its end \
                         before now cannot be detected; a new head file starts from its last \
                         record"
                    );
                }
                if let Some(head) = head_before {
                    // A crash between writing a record and its head leaves the log exactly one
                    // record ahead: the head then names the record before the last (in this
                    // file, or in the rotated one when the last is a rotation's genesis).
                    let one_ahead = head.seq.checked_add(1) == Some(seq)
                        && last.prev == head.hash
                        && before.as_deref().is_none_or(|b| hash(b) == head.hash);
                    if (head.seq != seq || head.hash != last_hash) && !one_ahead {
                        return Err(Error::Startup(format!(
                            "the audit log {} does not end where the agent left it (its head \
                             file says record {}, the log ends at record {seq}); it was \
                             truncated or edited; run `signet audit verify` on it",
                            path.display(),
                            head.seq
                        )));
                    }
                }
                let mut writer = Writer {
                    file,
                    head,
                    size,
                    seq,
                    last_hash,
                    last_sync: Instant::now(),
                };
                writer.write_head()?;
                writer
            }
            None => {
                let seed = hex::encode(rand_seed().map_err(|e| io("reading a random seed", e))?);
                let mut writer = Writer {
                    file: file.try_clone().map_err(|e| io("opening", e))?,
                    head,
                    size,
                    seq: 0,
                    last_hash: seed,
                    last_sync: Instant::now(),
                };
                writer.append(
                    0,
                    &Genesis {
                        genesis: "new".into(),
                        from: None,
                    },
                )?;
                file.sync_all().map_err(|e| io("syncing", e))?;
                writer
            }
        };
        writer.sync(path)?;
        let syncer = writer.syncer().map_err(|e| io("opening", e))?;
        Ok(AuditLog {
            settings: settings.clone(),
            appended: AtomicU64::new(writer.seq),
            writer: Mutex::new(writer),
            syncer: Mutex::new(syncer),
            health: watch::channel(true).0,
            denials: Mutex::new(DenialBudget::default()),
        })
    }

    /// Records a denial, at most [`DENIALS_PER_SECOND`] a second; the ones over the budget are
    /// only counted, into the next denial record that is written.
    pub fn record_denial(&self, record: &Record) -> Result<(), Error> {
        let mut record = record.clone();
        if !self.admit_denial(&mut record) {
            return Ok(());
        }
        self.record(&record)
    }

    /// Whether a denial record fits the budget; sets its count of the denials suppressed
    /// before it. A denial that does not fit is only counted.
    pub fn admit_denial(&self, record: &mut Record) -> bool {
        let mut budget = self.denials.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if budget
            .window
            .is_none_or(|w| now.duration_since(w).as_secs() >= 1)
        {
            budget.window = Some(now);
            budget.written = 0;
        }
        if budget.written >= DENIALS_PER_SECOND {
            budget.suppressed += 1;
            return false;
        }
        budget.written += 1;
        let suppressed = std::mem::take(&mut budget.suppressed);
        record.suppressed_denials = (suppressed > 0).then_some(suppressed);
        true
    }

    /// Syncs what was written (with `fsync = "interval"`, the records since the last sync).
    /// Called at shutdown.
    pub fn flush(&self) {
        if let Err(e) = self.sync_upto(u64::MAX, true) {
            tracing::error!(error = %e, "syncing the audit log at shutdown failed");
        }
    }

    /// Appends the records, then makes sure they are synced (per the fsync policy), sharing
    /// one fsync with every record appended meanwhile.
    fn append_and_sync(&self, records: &[&Record]) -> Result<Vec<u64>, Error> {
        let mut written = Vec::with_capacity(records.len());
        let seq = {
            let mut writer = self.writer.lock().unwrap_or_else(|p| p.into_inner());
            for record in records {
                let rotated = writer.write_record(record, &self.settings)?;
                written.push(writer.seq);
                self.appended.store(writer.seq, Ordering::Release);
                if let Some(fresh) = rotated {
                    // The old file was synced before it was renamed; sync the new one from now.
                    *self.syncer.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
                }
            }
            writer.seq
        };
        self.sync_upto(seq, false)?;
        Ok(written)
    }

    /// Records several calls (the items of a batch) with one sync; failures as in
    /// [`record`](Self::record).
    /// Returns the `seq` of each record written (none where a failure was allowed).
    pub fn record_all(&self, records: &[Record]) -> Result<Vec<u64>, Error> {
        let refs: Vec<&Record> = records.iter().collect();
        self.outcome(self.append_and_sync(&refs))
    }

    /// Syncs unless record `seq` already is (or, with `fsync = "interval"`, unless the last
    /// sync is recent and `force` is not set).
    fn sync_upto(&self, seq: u64, force: bool) -> Result<(), Error> {
        let mut syncer = self.syncer.lock().unwrap_or_else(|p| p.into_inner());
        if syncer.synced_seq >= seq.min(self.appended.load(Ordering::Acquire)) {
            return Ok(());
        }
        if !force
            && self.settings.fsync == Fsync::Interval
            && syncer.last_sync.elapsed().as_millis() < u128::from(self.settings.fsync_interval_ms)
        {
            return Ok(());
        }
        let upto = self.appended.load(Ordering::Acquire);
        let io = |e| Error::io("syncing the audit log", e);
        syncer.file.sync_data().map_err(io)?;
        syncer.head.sync_data().map_err(io)?;
        syncer.synced_seq = upto;
        syncer.last_sync = Instant::now();
        Ok(())
    }

    /// Whether records are being written; the health service follows it.
    pub fn health(&self) -> watch::Receiver<bool> {
        self.health.subscribe()
    }

    /// Appends `record` (synced per the fsync policy) and rotates the file when it is full.
    /// When that fails: `AuditUnavailable` with `on_failure = "deny"`, or a logged error and
    /// `Ok` with `"allow"`.
    pub fn record(&self, record: &Record) -> Result<(), Error> {
        self.outcome(self.append_and_sync(&[record])).map(drop)
    }

    /// Turns a write result into the call's result per `on_failure`, and keeps health in step.
    fn outcome(&self, result: Result<Vec<u64>, Error>) -> Result<Vec<u64>, Error> {
        match result {
            Ok(written) => {
                self.health
                    .send_if_modified(|ok| !std::mem::replace(ok, true));
                Ok(written)
            }
            Err(e) => {
                tracing::error!(error = %e, "writing an audit record failed");
                match self.settings.on_failure {
                    OnAuditFailure::Deny => {
                        self.health
                            .send_if_modified(|ok| std::mem::replace(ok, false));
                        Err(Error::AuditUnavailable(e.to_string()))
                    }
                    OnAuditFailure::Allow => Ok(Vec::new()),
                }
            }
        }
    }
}

impl Writer {
    /// Appends the record (not synced: see [`AuditLog::append_and_sync`]); rotates the file
    /// when it is full and returns, then, the [`Syncer`] of the new file.
    fn write_record(
        &mut self,
        record: &Record,
        settings: &config::Audit,
    ) -> Result<Option<Syncer>, Error> {
        self.append(self.next_seq()?, record)?;
        if self.size >= settings.max_bytes {
            return self.rotate(&settings.path).map(Some);
        }
        Ok(None)
    }

    /// New handles on the current files for the [`Syncer`], everything so far synced.
    fn syncer(&self) -> std::io::Result<Syncer> {
        Ok(Syncer {
            file: self.file.try_clone()?,
            head: self.head.try_clone()?,
            synced_seq: self.seq,
            last_sync: Instant::now(),
        })
    }

    /// The next record's number.
    fn next_seq(&self) -> Result<u64, Error> {
        self.seq
            .checked_add(1)
            .ok_or_else(|| Error::Internal("the audit record number is exhausted".into()))
    }

    /// One chained line (without its newline) numbered `seq`, and its hash.
    fn encode<R: Serialize>(&self, seq: u64, body: &R) -> Result<(String, String), Error> {
        let line = serde_json::to_string(&Line {
            seq,
            time: rfc3339_now(),
            prev: self.last_hash.clone(),
            body,
        })
        .map_err(|e| Error::Internal(format!("encoding an audit record: {e}")))?;
        let hash = hash(&line);
        Ok((line, hash))
    }

    /// Writes one chained line and the head file.
    fn append<R: Serialize>(&mut self, seq: u64, body: &R) -> Result<(), Error> {
        let (line, line_hash) = self.encode(seq, body)?;
        let io = |e| Error::io("writing the audit log", e);
        if let Err(e) = self.file.write_all(format!("{line}\n").as_bytes()) {
            // A partial line (a full disk) would later read as an edited record: cut it off.
            let _ = self.file.set_len(self.size);
            return Err(io(e));
        }
        self.size += line.len() as u64 + 1;
        self.seq = seq;
        self.last_hash = line_hash;
        self.write_head()
    }

    /// Overwrites the head file with the last record's number and hash, padded to a fixed
    /// width and written with one call at offset 0, so it is never seen half-written.
    fn write_head(&mut self) -> Result<(), Error> {
        let io = |e| Error::io("writing the audit head file", e);
        let mut head = serde_json::to_string(&Head {
            seq: self.seq,
            hash: self.last_hash.clone(),
        })
        .map_err(|e| Error::Internal(format!("encoding the audit head: {e}")))?;
        head.push_str(&" ".repeat(HEAD_WIDTH.saturating_sub(head.len())));
        self.head.seek(SeekFrom::Start(0)).map_err(io)?;
        self.head.write_all(head.as_bytes()).map_err(io)?;
        Ok(())
    }

    fn sync(&mut self, path: &Path) -> Result<(), Error> {
        let io = |e| Error::io(format!("syncing the audit log {}", path.display()), e);
        self.file.sync_data().map_err(io)?;
        self.head.sync_data().map_err(io)?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Moves the full file to `<path>.<n>` and starts a new one whose genesis continues the
    /// chain; returns the [`Syncer`] of the new file.
    ///
    /// Everything that can fail for want of resources (file descriptors, disk) happens before
    /// the full file is moved: the new file is made, with its genesis line, as `<path>.new`,
    /// and only then do two renames put it in place. A failure leaves the full file where it
    /// was, still the log, and the next record tries again.
    fn rotate(&mut self, path: &Path) -> Result<Syncer, Error> {
        self.sync(path)?;
        let io = |e| Error::io(format!("rotating the audit log {}", path.display()), e);
        let n = (1u32..)
            .find(|n| !rotated_path(path, *n).exists())
            .unwrap_or(u32::MAX);
        let rotated = rotated_path(path, n);
        let staged = staging_path(path);
        let seq = self.next_seq()?;
        let (line, line_hash) = self.encode(
            seq,
            &Genesis {
                genesis: "rotated".into(),
                from: rotated
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned()),
            },
        )?;
        let prepared = (|| {
            let mut file = new_private_file(&staged)?;
            file.write_all(format!("{line}\n").as_bytes())?;
            file.sync_data()?;
            let syncer = Syncer {
                file: file.try_clone()?,
                head: self.head.try_clone()?,
                synced_seq: seq,
                last_sync: Instant::now(),
            };
            Ok((file, syncer))
        })();
        let (file, syncer) = match prepared {
            Ok(prepared) => prepared,
            Err(e) => {
                let _ = std::fs::remove_file(&staged);
                return Err(io(e));
            }
        };
        std::fs::rename(path, &rotated).map_err(io)?;
        if let Err(e) = std::fs::rename(&staged, path) {
            // Put the full file back: it stays the log until a rotation works.
            let _ = std::fs::rename(&rotated, path);
            let _ = std::fs::remove_file(&staged);
            return Err(io(e));
        }
        self.file = file;
        self.size = line.len() as u64 + 1;
        self.seq = seq;
        self.last_hash = line_hash;
        self.write_head()?;
        self.sync(path)?;
        tracing::info!(rotated = %rotated.display(), "audit log rotated");
        Ok(syncer)
    }
}

/// The head file's fixed width (a record number and a hex SHA-256 fit with room to spare).
const HEAD_WIDTH: usize = 128;

/// Opens (creating with mode 0600: records name clients and keys) for appending or writing.
fn private_file(path: &Path, append: bool) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.create(true).mode(0o600);
    if append {
        options.append(true);
    } else {
        options.read(true).write(true).truncate(false);
    }
    options.open(path)
}

/// Completes or undoes a rotation a crash interrupted (see [`Writer::rotate`]): a prepared
/// next file is put in place if the full one was already moved, and removed otherwise.
fn finish_rotation(path: &Path) -> std::io::Result<()> {
    let staged = staging_path(path);
    if !staged.exists() {
        return Ok(());
    }
    if path.exists() {
        std::fs::remove_file(&staged)
    } else {
        tracing::warn!(log = %path.display(), "finishing an audit log rotation a crash interrupted");
        std::fs::rename(&staged, path)
    }
}

/// Creates `path` afresh (mode 0600) for appending, replacing what a failed rotation left.
fn new_private_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
}

/// Where a rotation prepares the next file.
fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

fn head_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn read_head(path: &Path) -> Option<Head> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_str(String::from_utf8_lossy(&text).trim_end()).ok()
}

/// The end of a log file.
struct Tail {
    /// The last line, without its newline.
    line: String,
    /// Whether it ends with a newline.
    complete: bool,
    /// The line before it.
    before: Option<String>,
}

/// The last two lines of the file; `None` for an empty or missing file.
fn last_lines(path: &Path) -> std::io::Result<Option<Tail>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut tail: Option<Tail> = None;
    let mut reader = BufReader::new(file);
    let mut buffer = String::new();
    loop {
        buffer.clear();
        if reader.read_line(&mut buffer)? == 0 {
            break;
        }
        tail = Some(Tail {
            complete: buffer.ends_with('\n'),
            line: buffer.trim_end_matches('\n').to_owned(),
            before: tail.map(|t| t.line),
        });
    }
    Ok(tail)
}

fn hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

fn rand_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut seed)?;
    Ok(seed)
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-21T08:30:00.123Z`).
fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// What `signet audit verify` found wrong, with the 1-based line it concerns.
#[derive(Debug, PartialEq, Eq)]
pub struct Broken {
    /// The first line that is wrong.
    pub line: usize,
    /// What is wrong there.
    pub reason: String,
}

/// What `verify` read from an intact file.
#[derive(Debug, PartialEq, Eq)]
pub struct Verified {
    /// How many records (lines) it holds.
    pub records: u64,
    /// The `prev` of its genesis record: a seed, or the last hash of the file before it.
    pub first_prev: String,
    /// The hash of its last record.
    pub last_hash: String,
    /// Whether a head file was next to it, so that records cut off its end would have been
    /// found (rotated files have none: the next file's genesis links to them).
    pub head_checked: bool,
    /// The last record is one past what the head file names. A crash between writing a record
    /// and its head leaves this, but so does a record appended by someone who can write the
    /// log (the chain has no key): the record is intact but not confirmed.
    pub last_unconfirmed: bool,
}

/// Checks the chain of one audit file (and, when its head file is next to it, that nothing
/// was cut off its end). Returns what it verified, or the first broken line.
pub fn verify(path: &Path) -> Result<Result<Verified, Broken>, Error> {
    let text = std::fs::read(path)
        .map_err(|e| Error::io(format!("reading the audit log {}", path.display()), e))?;
    let broken = |line: usize, reason: String| Ok(Err(Broken { line, reason }));
    // The agent writes UTF-8 only: a line that is not was edited. (Hashing a lossy copy would
    // let bytes be swapped for other invalid ones unseen.)
    let text = match String::from_utf8(text) {
        Ok(text) => text,
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            return broken(line, "not UTF-8: the line was edited".into());
        }
    };
    let mut previous: Option<(String, u64)> = None;
    let mut first_prev = String::new();
    let mut last_prev = String::new();
    let mut count = 0u64;
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    for (i, raw) in lines.iter().enumerate() {
        let number = i + 1;
        let Some(line) = raw.strip_suffix('\n') else {
            return broken(
                number,
                "the record is incomplete: the file was truncated".into(),
            );
        };
        let Ok(parsed) = serde_json::from_str::<Line<serde_json::Value>>(line) else {
            return broken(number, "not an audit record: the line was edited".into());
        };
        if let Some((prev_hash, prev_seq)) = &previous {
            if prev_seq.checked_add(1) != Some(parsed.seq) {
                return broken(
                    number,
                    format!(
                        "record {} follows record {prev_seq}: records were removed, inserted \
                         or reordered here",
                        parsed.seq
                    ),
                );
            }
            if &parsed.prev != prev_hash {
                return broken(
                    number - 1,
                    format!(
                        "record {prev_seq} was edited: the next record's hash of it does not \
                         match"
                    ),
                );
            }
        } else if parsed.body.get("genesis").is_none() {
            return broken(
                number,
                "the file does not start with a genesis record".into(),
            );
        } else {
            first_prev = parsed.prev.clone();
        }
        previous = Some((hash(line), parsed.seq));
        last_prev = parsed.prev;
        count += 1;
    }
    let head = read_head(&head_path(path));
    let head_checked = head.is_some();
    let mut one_ahead = false;
    if let (Some(head), Some((last_hash, last_seq))) = (head, &previous) {
        // The agent writes a record before its head: after a crash between the two, the log
        // is one record ahead of the head, which is not tampering.
        // The last record's `prev` names the record before it (in this file, or in the rotated
        // one when the last is a rotation's genesis); the loop checked it against this file's.
        one_ahead = head.seq.checked_add(1) == Some(*last_seq) && *last_prev == head.hash;
        if !one_ahead && head.seq != *last_seq {
            return broken(
                lines.len(),
                format!(
                    "the log ends at record {last_seq} but the agent wrote up to record {}: \
                     records were cut off after this line",
                    head.seq
                ),
            );
        }
        if !one_ahead && &head.hash != last_hash {
            return broken(lines.len(), "the last record was edited".into());
        }
    }
    let Some((last_hash, _)) = previous else {
        return broken(1, "the file is empty".into());
    };
    Ok(Ok(Verified {
        records: count,
        first_prev,
        last_hash,
        head_checked,
        last_unconfirmed: one_ahead,
    }))
}

#[cfg(test)]
mod tests_support {
    use super::*;

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
            message_sha256: Some(hex::encode([i as u8; 32])),
            outcome: Outcome::Allowed,
            answers_seq: None,
            code: "OK",
            latency_us: i,
            suppressed_denials: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn rfc3339_formats_the_epoch_and_a_leap_day() {
        assert_eq!(&rfc3339_now()[..2], "20");
        assert_eq!(rfc3339_now().len(), 24);
    }

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
mod chain_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn a_crash_between_record_and_head_is_not_called_tampering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let log = AuditLog::open(&s).expect("open");
        log.record(&record(1)).expect("write");
        let head = std::fs::read(head_path(&s.path)).expect("head");
        log.record(&record(2)).expect("write");
        drop(log);
        // As if the agent died after writing record 2 but before its head.
        std::fs::write(head_path(&s.path), head).expect("old head");
        let verified = verify(&s.path)
            .expect("read")
            .expect("one record ahead is intact");
        assert!(verified.last_unconfirmed, "but not confirmed by the head");
        let log = AuditLog::open(&s).expect("reopens");
        log.record(&record(3)).expect("continues");
        let verified = verify(&s.path).expect("read").expect("intact");
        assert_eq!(verified.records, 4);
        assert!(!verified.last_unconfirmed);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_edit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let log = AuditLog::open(&s).expect("open");
        log.record(&record(1)).expect("write");
        log.record(&record(2)).expect("write");
        drop(log);
        let mut bytes = std::fs::read(&s.path).expect("read");
        let second_line = bytes.iter().position(|&b| b == b'\n').expect("a line") + 5;
        bytes[second_line] = 0xff;
        std::fs::write(&s.path, bytes).expect("edited");
        let broken = verify(&s.path).expect("read").expect_err("edited");
        assert_eq!(broken.line, 2, "{}", broken.reason);
        assert!(broken.reason.contains("not UTF-8"), "{}", broken.reason);
    }

    /// `verify` over the rotated files in order, then the log.
    fn verify_all(s: &config::Audit) -> Verified {
        let mut files: Vec<PathBuf> = (1..)
            .map(|n| rotated_path(&s.path, n))
            .take_while(|p| p.exists())
            .collect();
        files.push(s.path.clone());
        let mut last = None;
        for file in &files {
            let verified = verify(file).expect("read").expect("intact");
            if let Some(last_hash) = last {
                assert_eq!(
                    verified.first_prev,
                    last_hash,
                    "{} continues",
                    file.display()
                );
            }
            last = Some(verified.last_hash.clone());
            if file == &s.path {
                return verified;
            }
        }
        unreachable!("the log is the last file")
    }

    #[test]
    fn a_rotation_that_cannot_make_the_new_file_keeps_the_log_in_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path());
        s.max_bytes = 600;
        let log = AuditLog::open(&s).expect("open");
        // A directory where the next file is prepared: creating it fails, as it would with
        // no file descriptors left.
        std::fs::create_dir(staging_path(&s.path)).expect("a directory in the way");
        let mut refused = 0;
        for i in 1..=4 {
            refused += usize::from(log.record(&record(i)).is_err());
        }
        assert!(refused > 0, "the full log could not rotate");
        assert!(
            s.path.exists() && !rotated_path(&s.path, 1).exists(),
            "nothing moved"
        );
        std::fs::remove_dir(staging_path(&s.path)).expect("the way is clear");
        log.record(&record(5)).expect("rotates now");
        assert!(rotated_path(&s.path, 1).exists(), "rotated");
        log.record(&record(6)).expect("goes on in the new file");
        drop(log);
        verify_all(&s);
        AuditLog::open(&s)
            .expect("reopens")
            .record(&record(7))
            .expect("continues");
        verify_all(&s);
    }

    #[test]
    fn a_rotation_a_crash_interrupted_is_finished_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path());
        s.max_bytes = 400;
        let log = AuditLog::open(&s).expect("open");
        let mut i = 0;
        while !rotated_path(&s.path, 1).exists() {
            i += 1;
            log.record(&record(i)).expect("write");
        }
        drop(log);
        // As if the agent died between the two renames, before the head named the genesis:
        // the full file moved, the new one (its genesis) still staged, the head one behind.
        let full = std::fs::read_to_string(rotated_path(&s.path, 1)).expect("rotated");
        let last = full.lines().last().expect("a record");
        let line: Line<serde_json::Value> = serde_json::from_str(last).expect("a record");
        std::fs::rename(&s.path, staging_path(&s.path)).expect("staged again");
        let head = format!("{{\"seq\":{},\"hash\":\"{}\"}}", line.seq, hash(last));
        std::fs::write(head_path(&s.path), head).expect("the head before the genesis");
        let log = AuditLog::open(&s).expect("finishes the rotation");
        log.record(&record(100)).expect("continues");
        drop(log);
        assert!(!staging_path(&s.path).exists());
        verify_all(&s);
        // A staged file left while the log is still in place is dropped.
        std::fs::write(staging_path(&s.path), "half a rotation").expect("staged");
        AuditLog::open(&s)
            .expect("opens")
            .record(&record(101))
            .expect("continues");
        assert!(!staging_path(&s.path).exists());
        verify_all(&s);
    }

    #[test]
    fn an_emptied_log_with_a_head_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        AuditLog::open(&s)
            .expect("open")
            .record(&record(1))
            .expect("write");
        std::fs::write(&s.path, "").expect("emptied");
        let err = AuditLog::open(&s).err().expect("refused");
        assert!(err.to_string().contains("missing or empty"), "{err}");
        std::fs::remove_file(&s.path).expect("deleted");
        assert!(AuditLog::open(&s).is_err(), "a deleted log too");
    }

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

#[cfg(test)]
mod group_commit_tests {
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
