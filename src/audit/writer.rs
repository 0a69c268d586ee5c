//! The writer: appends chained records and the head file, rotates a full file (preparing the
//! next one first), resumes the chain of an existing log at start, and syncs records in groups.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::chain::{
    hash, head_path, last_lines, rand_seed, read_head, rfc3339_now, rotated_path, staging_path,
    Genesis, Head, Line, Tail, HEAD_WIDTH,
};
use super::Record;
use crate::error::Error;

/// How often the head file itself is synced. It names the last record known to be on disk, a
/// lower bound of the log's length: one that lags after a power loss is still true, so its
/// own fsync stays off the answer's path and is paid at most this often (and at rotation and
/// shutdown).
const HEAD_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Handles on the current log and head file for syncing, and how far they are synced.
pub(super) struct Syncer {
    pub(super) file: File,
    head: File,
    pub(super) synced_seq: u64,
    pub(super) last_sync: Instant,
    last_head_sync: Instant,
}

impl Syncer {
    /// Syncs the log (one `fdatasync` for every record appended so far, up to record `upto`
    /// whose hash is `upto_hash`), then names that record in the head file. The head file is
    /// written only after its record is on disk, so it never names a record a crash could
    /// lose; it is synced itself when `force` is set or its last sync is a second old.
    pub(super) fn sync(&mut self, upto: u64, upto_hash: &str, force: bool) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("syncing the audit log", e))?;
        self.synced_seq = upto;
        self.last_sync = Instant::now();
        write_head(&mut self.head, upto, upto_hash)?;
        if force || self.last_head_sync.elapsed() >= HEAD_SYNC_EVERY {
            self.head
                .sync_data()
                .map_err(|e| Error::io("syncing the audit head file", e))?;
            self.last_head_sync = Instant::now();
        }
        Ok(())
    }
}

/// The current log file and head file, and where the chain stands.
pub(super) struct Writer {
    pub(super) file: File,
    head: File,
    size: u64,
    pub(super) seq: u64,
    last_hash: String,
    last_sync: Instant,
}

impl Writer {
    /// Opens (or creates) the log at `path` and continues its chain, everything synced.
    /// Refuses a log that ends with a partial record or is shorter than its head file says:
    /// an operator must look first.
    pub(super) fn open(path: &Path) -> Result<Writer, Error> {
        let io = |what: &str, e| Error::io(format!("audit log {}: {what}", path.display()), e);
        finish_rotation(path).map_err(|e| io("finishing an interrupted rotation", e))?;
        let existing = last_lines(path).map_err(|e| io("reading", e))?;
        let head_path = head_path(path);
        let head_before = read_head(&head_path);
        let existing = cut_torn_tail(path, existing, head_before.as_ref())
            .map_err(|e| io("cutting off a record whose write was cut short", e))?;
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
                before: _,
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
                    // The head names the last record the agent knew to be on disk: the log may
                    // go past it (records appended after its last update, before a crash), but
                    // never stop short of it.
                    let behind = head.seq > seq || (head.seq == seq && head.hash != last_hash);
                    if behind {
                        return Err(Error::Startup(format!(
                            "the audit log {} does not end where the agent left it (its head \
                             file says record {}, the log ends at record {seq}); it was \
                             truncated or edited; run `signet audit verify` on it",
                            path.display(),
                            head.seq
                        )));
                    }
                    if head.seq < seq {
                        // Only the head's record, as the head file names it, ties the log to
                        // what the agent wrote: check that it is there (or that the file's
                        // genesis continues it) before the head file is moved past it.
                        let text = std::fs::read(path).map_err(|e| io("reading", e))?;
                        if let Err(broken) = super::verify::verify_at_rest(path, &text) {
                            return Err(Error::Startup(format!(
                                "the audit log {} goes past its head file (record {}), but does                                  not hold that record as the head file names it (line {}: {});                                  it was edited or swapped; run `signet audit verify` on it",
                                path.display(),
                                head.seq,
                                broken.line,
                                broken.reason
                            )));
                        }
                        tracing::info!(
                            log = %path.display(),
                            head = head.seq,
                            last = seq,
                            "the audit log goes past its head file (records written just \
                             before the agent stopped); `signet audit verify` checks their chain"
                        );
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
                writer.write_head()?;
                writer
            }
        };
        writer.sync(path)?;
        Ok(writer)
    }

    /// Appends the record (not synced: see
    /// [`AuditLog::append_and_sync`](super::AuditLog::append_and_sync)) and returns its number.
    pub(super) fn write_record(&mut self, record: &Record) -> Result<u64, Error> {
        let seq = self.next_seq()?;
        self.append(seq, record)?;
        Ok(seq)
    }

    /// Whether the file is full: the next record goes after a rotation.
    pub(super) fn is_full(&self, settings: &crate::config::Audit) -> bool {
        self.size >= settings.max_bytes
    }

    /// New handles on the current files for the [`Syncer`], everything so far synced.
    pub(super) fn syncer(&self) -> std::io::Result<Syncer> {
        Ok(Syncer {
            file: self.file.try_clone()?,
            head: self.head.try_clone()?,
            synced_seq: self.seq,
            last_sync: Instant::now(),
            last_head_sync: Instant::now(),
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
        Ok(())
    }

    /// Names the last record in the head file (see [`write_head`]).
    fn write_head(&mut self) -> Result<(), Error> {
        write_head(&mut self.head, self.seq, &self.last_hash)
    }

    /// The last record appended: its number and hash.
    pub(super) fn last(&self) -> (u64, &str) {
        (self.seq, &self.last_hash)
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
    pub(super) fn rotate(&mut self, path: &Path) -> Result<Syncer, Error> {
        self.write_head()?;
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
                last_head_sync: Instant::now(),
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
        // The new file is the log now (its genesis already on disk): whatever fails from here,
        // the caller must install its syncer, or later syncs would go to the renamed file and
        // answers would leave with their records not on disk. A head that still names the old
        // file's last record is true (the log goes past it); a failing disk shows again at the
        // next record's sync, which fails the call.
        if let Err(e) = self.write_head().and_then(|()| self.sync(path)) {
            tracing::error!(error = %e, "naming the new audit file's first record in the head file failed");
        }
        tracing::info!(rotated = %rotated.display(), "audit log rotated");
        Ok(syncer)
    }
}

/// Overwrites the head file with record `seq`'s number and hash, padded to a fixed width and
/// written with one call at offset 0, so it is never seen half-written.
fn write_head(head: &mut File, seq: u64, hash: &str) -> Result<(), Error> {
    let io = |e| Error::io("writing the audit head file", e);
    let mut text = serde_json::to_string(&Head {
        seq,
        hash: hash.to_owned(),
    })
    .map_err(|e| Error::Internal(format!("encoding the audit head: {e}")))?;
    text.push_str(&" ".repeat(HEAD_WIDTH.saturating_sub(text.len())));
    head.seek(SeekFrom::Start(0)).map_err(io)?;
    head.write_all(text.as_bytes()).map_err(io)?;
    Ok(())
}

/// Cuts off a last record whose write was cut short (SIGKILL or a crash can stop a write
/// between two pages of the file), when the complete records before it reach the one the
/// head file names: that record was never finished, so its call was never answered (an
/// answer leaves only after its record is written), and the log without it tells the truth.
/// Any other incomplete end is left for [`Writer::open`] to refuse: an operator must look.
fn cut_torn_tail(
    path: &Path,
    tail: Option<Tail>,
    head: Option<&Head>,
) -> std::io::Result<Option<Tail>> {
    let Some(tail) = tail else {
        return Ok(None);
    };
    if tail.complete {
        return Ok(Some(tail));
    }
    let (Some(before), Some(head)) = (&tail.before, head) else {
        return Ok(Some(tail));
    };
    let Ok(last) = serde_json::from_str::<Line<serde_json::Value>>(before) else {
        return Ok(Some(tail));
    };
    if head.seq > last.seq || (head.seq == last.seq && head.hash != hash(before)) {
        return Ok(Some(tail));
    }
    // The same check as `audit verify`'s report of a torn tail: the complete lines are an
    // intact chain that reaches the head's record. Otherwise nothing is cut: the log is refused.
    let text = std::fs::read(path)?;
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if !super::verify::intact_to_head(&text[..complete], head) {
        return Ok(Some(tail));
    }
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(complete as u64)?;
    file.sync_all()?;
    tracing::warn!(
        log = %path.display(),
        record = last.seq.saturating_add(1),
        bytes = text.len() - complete,
        "the audit log ended in a record whose write was cut short (the agent was killed or \
         crashed mid-write); its call was never answered; the partial record was cut off"
    );
    Ok(Some(Tail {
        line: before.clone(),
        complete: true,
        before: None,
    }))
}

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

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::tests_support::*;
    use super::super::verify::{verify, Verified};
    use super::super::AuditLog;
    use super::*;

    /// `verify` over the rotated files in order, then the log.
    fn verify_all(s: &crate::config::Audit) -> Verified {
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
    fn a_log_past_its_head_whose_head_record_is_not_the_heads_is_refused() {
        // The log may go past its head file (records written before a crash), but the head's
        // record must still be in it as the head file names it; otherwise a swapped or
        // re-chained log that is one record longer is taken, and the head rewritten over the
        // evidence.
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stopped_log(dir.path(), 2);
        let head = std::fs::read(head_path(&s.path)).expect("head");
        // Another chain (another agent's log, or this one rewritten) with more records.
        let other = tempfile::tempdir().expect("tempdir");
        let o = settings(other.path());
        let log = AuditLog::open(&o).expect("open");
        for i in 1..=4 {
            log.record(&record(i)).expect("write");
        }
        drop(log);
        std::fs::copy(&o.path, &s.path).expect("swap");
        let err = AuditLog::open(&s)
            .err()
            .expect("the swapped log is refused");
        assert!(err.to_string().contains("record 2"), "{err}");
        assert_eq!(
            std::fs::read(head_path(&s.path)).expect("head"),
            head,
            "the head file is left as it was"
        );
        verify(&s.path).expect("read").expect_err("verify agrees");

        // The same with the head's record in the rotated file before: the new file's genesis
        // must continue it.
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stopped_log(dir.path(), 1);
        let head = std::fs::read(head_path(&s.path)).expect("head");
        // A well-chained file that starts after record 1, but not from it.
        let genesis = serde_json::to_string(&Line {
            seq: 2,
            time: rfc3339_now(),
            prev: "00".repeat(32),
            body: Genesis {
                genesis: "rotated".into(),
                from: Some("audit.jsonl.1".into()),
            },
        })
        .expect("json");
        let next = serde_json::to_string(&Line {
            seq: 3,
            time: rfc3339_now(),
            prev: hash(&genesis),
            body: record(3),
        })
        .expect("json");
        std::fs::write(&s.path, format!("{genesis}\n{next}\n")).expect("swap");
        let err = AuditLog::open(&s)
            .err()
            .expect("a file not continuing the head is refused");
        assert!(err.to_string().contains("record 1"), "{err}");
        assert_eq!(std::fs::read(head_path(&s.path)).expect("head"), head);
    }

    #[test]
    fn a_torn_tail_after_records_that_do_not_hold_the_heads_record_is_left_in_place() {
        // The torn-tail cut is for a log that is intact up to its head's record; on any other
        // log the agent refuses to start, and must not have changed the file first.
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stopped_log(dir.path(), 1);
        let other = tempfile::tempdir().expect("tempdir");
        let o = settings(other.path());
        let log = AuditLog::open(&o).expect("open");
        for i in 1..=3 {
            log.record(&record(i)).expect("write");
        }
        drop(log);
        let mut swapped = std::fs::read(&o.path).expect("log");
        swapped.extend_from_slice(b"{\"seq\":4,\"ti");
        std::fs::write(&s.path, &swapped).expect("swap");
        AuditLog::open(&s).err().expect("refused");
        assert_eq!(
            std::fs::read(&s.path).expect("log"),
            swapped,
            "nothing cut off a log that is refused"
        );
    }

    #[test]
    fn a_write_cut_short_inside_a_multibyte_character_is_cut_off_too() {
        // Records are UTF-8 (an identity or key name may be non-ASCII), and a write can stop
        // between two pages inside a character: audit verify calls that a torn tail the agent
        // cuts off, so the agent must be able to.
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stopped_log(dir.path(), 1);
        let whole = std::fs::read(&s.path).expect("log");
        let mut torn = whole.clone();
        torn.extend_from_slice(b"{\"seq\":2,\"identity\":\"\xc3");
        std::fs::write(&s.path, &torn).expect("torn");
        let broken = verify(&s.path).expect("read").expect_err("torn");
        assert!(broken.reason.contains("cut short"), "{}", broken.reason);
        let log = AuditLog::open(&s).expect("the torn record is cut off");
        assert_eq!(std::fs::read(&s.path).expect("log"), whole);
        drop(log);
    }

    #[test]
    fn a_record_whose_write_was_cut_short_is_cut_off_at_start_and_nothing_else_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stopped_log(dir.path(), 2);
        let whole = std::fs::read(&s.path).expect("log");
        // As SIGKILL can leave it: record 3's write stopped between two pages.
        let mut torn = whole.clone();
        torn.extend_from_slice(b"{\"seq\":3,\"ti");
        std::fs::write(&s.path, &torn).expect("torn");
        let log = AuditLog::open(&s).expect("the torn record is cut off");
        assert_eq!(
            std::fs::read(&s.path).expect("log"),
            whole,
            "only the torn bytes go"
        );
        assert_eq!(log.record(&record(3)).expect("write"), Some(3));
        drop(log);
        assert_eq!(verify_all(&s).records, 4);

        // A record the head file names, cut short: that is not a torn write but damage.
        let text = std::fs::read(&s.path).expect("log");
        std::fs::write(&s.path, &text[..text.len() - 10]).expect("cut");
        let err = AuditLog::open(&s).err().expect("refused");
        assert!(err.to_string().contains("incomplete record"), "{err}");
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
}
