//! Verification: checks the chain of one audit file, and against its head file that nothing
//! was cut off its end, naming the first broken line. A live log (its writer holds the lock)
//! is read with the head file first, so records appended meanwhile are not taken for damage.

use std::path::Path;
use std::time::Duration;

use super::chain::{hash, head_path, read_head, Head, Line};
use super::lock::{holder, Holder};
use crate::error::Error;

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
    /// How many records go past the one the head file names. The agent names a record there
    /// once it is on disk, so records written just before it stopped (or crashed) are left
    /// like this, but so are records appended by someone who can write the log (the chain has
    /// no key): they are intact but not confirmed.
    pub unconfirmed: u64,
    /// The log is live: an agent holds its lock and may append while it is read.
    pub live: Option<Live>,
}

/// What `verify` saw of the agent writing a live log.
#[derive(Debug, PartialEq, Eq)]
pub struct Live {
    /// The writer, as the lock file names it.
    pub holder: Holder,
    /// Records after the one the head file named when it was read: appended while the log was
    /// read, chained, but not yet confirmed by the head.
    pub unconfirmed: u64,
    /// The file ended in a record still being written, which was left out.
    pub partial: bool,
}

/// How often a live log is read again when it changed under the reader in a way one read
/// cannot tell from damage (rotated twice, or the head file caught mid-write).
const LIVE_ATTEMPTS: usize = 50;

/// Checks the chain of one audit file (and, when its head file is next to it, that nothing
/// was cut off its end). Returns what it verified, or the first broken line.
pub fn verify(path: &Path) -> Result<Result<Verified, Broken>, Error> {
    if let Some(holder) = holder(path)? {
        return verify_live(path, holder);
    }
    let text = read(path)?;
    let result = verify_at_rest(path, &text);
    if result.is_err() {
        // An agent may have started on the log while it was read.
        if let Some(holder) = holder(path)? {
            return verify_live(path, holder);
        }
    }
    Ok(result)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| Error::io(format!("reading the audit log {}", path.display()), e))
}

fn broken<T>(line: usize, reason: String) -> Result<T, Broken> {
    Err(Broken { line, reason })
}

/// A log no one writes: the whole file, then its head.
pub(super) fn verify_at_rest(path: &Path, text: &[u8]) -> Result<Verified, Broken> {
    let head = read_head(&head_path(path));
    torn_tail(text, head.as_ref())?;
    let scan = scan(text, head.as_ref().map(|h| h.seq))?;
    let unconfirmed = match &head {
        Some(head) => past_head(&scan, head)?,
        None => 0,
    };
    Ok(Verified {
        records: scan.records,
        first_prev: scan.first_prev,
        last_hash: scan.last_hash,
        head_checked: head.is_some(),
        unconfirmed,
        live: None,
    })
}

/// How many records of a stopped file go past the one its head file names. The agent names a
/// record in the head file only once it is on disk, so the log may go past it (records written
/// just before the agent stopped or crashed: intact, chained, not yet confirmed) but never
/// stops short of it, and the head's record must be the one the head file describes.
fn past_head(scan: &Scan, head: &Head) -> Result<u64, Broken> {
    if head.seq > scan.last_seq {
        return broken(
            scan.lines,
            format!(
                "the log ends at record {} but the agent wrote up to record {}: records \
                 were cut off after this line",
                scan.last_seq, head.seq
            ),
        );
    }
    if head.seq < scan.first_seq {
        // The head's record is the last of the file before (a crash right after a rotation):
        // this file's genesis must continue it.
        if head.seq.checked_add(1) != Some(scan.first_seq) || scan.first_prev != head.hash {
            return broken(
                1,
                format!(
                    "the file does not continue record {}, which the head file names: that \
                     record was edited, or files were swapped",
                    head.seq
                ),
            );
        }
        return Ok(scan.records);
    }
    if scan.wanted.as_deref() != Some(head.hash.as_str()) {
        let line = usize::try_from(head.seq - scan.first_seq).map_or(usize::MAX, |i| i + 1);
        return broken(
            line,
            format!(
                "record {} was edited: its hash does not match the head file",
                head.seq
            ),
        );
    }
    Ok(scan.last_seq - head.seq)
}

/// Whether the complete lines `text` holds are an intact chain that holds the record `head`
/// names (or whose genesis continues it): what a torn last record is cut off after.
pub(super) fn intact_to_head(text: &[u8], head: &Head) -> bool {
    scan(text, Some(head.seq)).is_ok_and(|scan| past_head(&scan, head).is_ok())
}

/// A stopped log whose last line has no newline, while the lines before it are intact and
/// reach the record the head file names: the agent's write of the next record was cut short
/// (SIGKILL or a crash can stop a write between two pages of the file). Its call was never
/// answered (an answer leaves only after its record is written), and the agent cuts it off
/// when it next starts on this log. Reported as what it is, not as an edit; anything else is
/// left to the full check.
fn torn_tail(text: &[u8], head: Option<&Head>) -> Result<(), Broken> {
    let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete == 0 || complete == text.len() {
        return Ok(());
    }
    let Some(head) = head else {
        return Ok(());
    };
    let Ok(scan) = scan(&text[..complete], Some(head.seq)) else {
        return Ok(());
    };
    if past_head(&scan, head).is_err() {
        return Ok(());
    }
    broken(
        scan.lines + 1,
        format!(
            "the last record is incomplete: the agent's write of record {} was cut short (it \
             was killed or crashed mid-write); the {} records before it are intact. Its call \
             was never answered, and the agent cuts it off when it next starts on this log",
            scan.last_seq.saturating_add(1),
            scan.records
        ),
    )
}

/// A log an agent holds: the head first, then the file. The agent writes a record before the
/// head that names it, so the file read after the head holds the head's record (or, after a
/// rotation, starts right after it); whatever follows was appended meanwhile.
fn verify_live(path: &Path, holder: Holder) -> Result<Result<Verified, Broken>, Error> {
    let head_file = head_path(path);
    let mut damage_seen = 0;
    for _ in 0..LIVE_ATTEMPTS {
        let head = read_head(&head_file);
        if head.is_none() && head_file.exists() {
            // Caught while the agent rewrote it.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        let text = match std::fs::read(path) {
            Ok(text) => text,
            // Between a rotation's two renames.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            Err(e) => {
                return Err(Error::io(
                    format!("reading the audit log {}", path.display()),
                    e,
                ))
            }
        };
        // Bytes after the last newline are a record still being appended.
        let complete = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if complete == 0 {
            // A new log, its genesis not written yet.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        match check_live(&text[..complete], head, holder, complete < text.len()) {
            // Damage stays where it is; a head file read while the agent rewrote it (a torn
            // read that still parses) does not: look twice more before calling it damage.
            Some(Err(_)) if damage_seen < 2 => damage_seen += 1,
            Some(result) => return Ok(result),
            None => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(Error::io(
        format!("reading the live audit log {}", path.display()),
        std::io::Error::other(format!(
            "it changed under the reader on each of {LIVE_ATTEMPTS} tries (rotated more than \
             once between reading its head file and the log, or its head file not readable as \
             one); run verify again"
        )),
    ))
}

/// One read of a live log against the head read just before it; `None` when the log rotated
/// more than once in between, so that this read proves nothing either way.
fn check_live(
    text: &[u8],
    head: Option<Head>,
    holder: Holder,
    partial: bool,
) -> Option<Result<Verified, Broken>> {
    let scan = match scan(text, head.as_ref().map(|h| h.seq)) {
        Ok(scan) => scan,
        Err(broken) => return Some(Err(broken)),
    };
    let unconfirmed = match &head {
        None => 0,
        Some(head) if head.seq < scan.first_seq => {
            if head.seq.checked_add(1) != Some(scan.first_seq) {
                return None;
            }
            // Rotated between the two reads: the genesis continues the head's record.
            if scan.first_prev != head.hash {
                return Some(broken(
                    1,
                    format!(
                        "the file does not continue record {}, which the head file names: \
                         that record was edited",
                        head.seq
                    ),
                ));
            }
            scan.records
        }
        Some(head) if head.seq > scan.last_seq => {
            return Some(broken(
                scan.lines,
                format!(
                    "the log ends at record {} but the agent wrote up to record {}: records \
                     were cut off after this line",
                    scan.last_seq, head.seq
                ),
            ));
        }
        Some(head) => {
            if scan.wanted.as_deref() != Some(head.hash.as_str()) {
                let line = usize::try_from(head.seq - scan.first_seq).map_or(usize::MAX, |i| i + 1);
                return Some(broken(
                    line,
                    format!(
                        "record {} was edited: its hash does not match the head file",
                        head.seq
                    ),
                ));
            }
            scan.last_seq - head.seq
        }
    };
    Some(Ok(Verified {
        records: scan.records,
        first_prev: scan.first_prev,
        last_hash: scan.last_hash,
        head_checked: head.is_some(),
        unconfirmed: 0,
        live: Some(Live {
            holder,
            unconfirmed,
            partial,
        }),
    }))
}

/// What a chain-intact file holds.
struct Scan {
    records: u64,
    /// How many lines: the number of the last one.
    lines: usize,
    first_seq: u64,
    first_prev: String,
    last_seq: u64,
    last_hash: String,
    /// The hash of the record numbered as asked, when the file holds it.
    wanted: Option<String>,
}

/// Checks the chain of the lines in `text`, each of which must end with a newline; notes the
/// hash of record `want`.
fn scan(text: &[u8], want: Option<u64>) -> Result<Scan, Broken> {
    // The agent writes UTF-8 only: a line that is not was edited. (Hashing a lossy copy would
    // let bytes be swapped for other invalid ones unseen.)
    let text = match std::str::from_utf8(text) {
        Ok(text) => text,
        Err(e) => {
            let valid = &text[..e.valid_up_to()];
            let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
            return broken(line, "not UTF-8: the line was edited".into());
        }
    };
    let mut previous: Option<(String, u64)> = None;
    let mut first = (0, String::new());
    let mut records = 0u64;
    let mut wanted = None;
    let mut lines = 0;
    for (i, raw) in text.split_inclusive('\n').enumerate() {
        let number = i + 1;
        lines = number;
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
            first = (parsed.seq, parsed.prev.clone());
        }
        let line_hash = hash(line);
        if want == Some(parsed.seq) {
            wanted = Some(line_hash.clone());
        }
        previous = Some((line_hash, parsed.seq));
        records += 1;
    }
    let Some((last_hash, last_seq)) = previous else {
        return broken(1, "the file is empty".into());
    };
    Ok(Scan {
        records,
        lines,
        first_seq: first.0,
        first_prev: first.1,
        last_seq,
        last_hash,
        wanted,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::*;
    use super::super::AuditLog;
    use super::*;

    #[test]
    fn a_crash_between_records_and_their_head_is_not_called_tampering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let log = AuditLog::open(&s).expect("open");
        log.record(&record(1)).expect("write");
        let head = std::fs::read(head_path(&s.path)).expect("head");
        log.record(&record(2)).expect("write");
        log.record(&record(3)).expect("write");
        drop(log);
        // As if the machine lost power after records 2 and 3 reached the disk but before the
        // head file that names them did (under load, one sync covers several records).
        std::fs::write(head_path(&s.path), &head).expect("old head");
        let verified = verify(&s.path)
            .expect("read")
            .expect("records past the head are intact");
        assert_eq!(verified.unconfirmed, 2, "but not confirmed by the head");
        let log = AuditLog::open(&s).expect("reopens");
        log.record(&record(4)).expect("continues");
        drop(log);
        let verified = verify(&s.path).expect("read").expect("intact");
        assert_eq!(verified.records, 5);
        assert_eq!(verified.unconfirmed, 0);

        // The record the head names, edited: the head's hash no longer matches it.
        std::fs::write(head_path(&s.path), &head).expect("old head");
        let text = std::fs::read_to_string(&s.path).expect("log");
        let edited = text.replacen("\"latency_us\":", "\"latency_us\":9", 1);
        std::fs::write(&s.path, edited).expect("edited");
        let broken = verify(&s.path).expect("read").expect_err("edited");
        assert_eq!(broken.line, 2, "{}", broken.reason);
    }

    #[test]
    fn bytes_that_are_not_utf8_are_an_edit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stopped_log(dir.path(), 2);
        let mut bytes = std::fs::read(&s.path).expect("read");
        let second_line = bytes.iter().position(|&b| b == b'\n').expect("a line") + 5;
        bytes[second_line] = 0xff;
        std::fs::write(&s.path, bytes).expect("edited");
        let broken = verify(&s.path).expect("read").expect_err("edited");
        assert_eq!(broken.line, 2, "{}", broken.reason);
        assert!(broken.reason.contains("not UTF-8"), "{}", broken.reason);
    }

    #[test]
    fn a_log_with_an_undelivered_record_verifies_clean() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let log = AuditLog::open(&s).expect("open");
        let allowed = record(1);
        let seq = log.record(&allowed).expect("write").expect("a number");
        assert_eq!(seq, 1, "the first record after the genesis");
        let withdrawn = allowed.undelivered(seq, "CANCELLED");
        assert_eq!(log.record(&withdrawn).expect("write"), Some(2));
        let batch = log.record_all(&[record(3), record(4)]).expect("write");
        assert_eq!(batch, vec![Some(3), Some(4)]);
        drop(log);
        let verified = verify(&s.path).expect("read").expect("intact");
        assert_eq!(verified.records, 5);
        assert!(verified.head_checked && verified.unconfirmed == 0);
        let text = std::fs::read_to_string(&s.path).expect("log");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines[1]["outcome"], "allowed");
        assert_eq!(lines[2]["outcome"], "undelivered");
        assert_eq!(lines[2]["undelivered_seq"], lines[1]["seq"]);
        assert!(lines[1].get("undelivered_seq").is_none());
    }

    #[test]
    fn a_log_written_before_typed_outcomes_still_verifies() {
        // Lines as earlier versions wrote them, chained by hand.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("old.jsonl");
        let mut text = String::new();
        let mut prev = "00".repeat(32);
        let bodies = [
            r#""genesis":"new""#,
            r#""client":"c","identity":"uid=1","listener":"unix:/s","rpc":"Sign","key_id":"k","algorithm":"ed25519","message_sha256":null,"outcome":"allowed","code":"OK","latency_us":3"#,
            r#""client":null,"identity":"uid=2","listener":"unix:/s","rpc":"Sign","key_id":"k","algorithm":null,"message_sha256":null,"outcome":"denied","code":"PERMISSION_DENIED","latency_us":1,"suppressed_denials":4"#,
        ];
        for (seq, body) in bodies.iter().enumerate() {
            let line = format!(
                r#"{{"seq":{seq},"time":"2026-11-01T00:00:00.000Z","prev":"{prev}",{body}}}"#
            );
            prev = hash(&line);
            text.push_str(&line);
            text.push('\n');
        }
        std::fs::write(&path, text).expect("old log");
        let verified = verify(&path).expect("read").expect("intact");
        assert_eq!(verified.records, 3);
        assert_eq!(verified.last_hash, prev);
    }

    #[test]
    fn a_live_log_being_appended_to_is_intact_and_said_to_be_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let log = AuditLog::open(&s).expect("open");
        log.record(&record(1)).expect("write");
        let head = std::fs::read(head_path(&s.path)).expect("head");
        log.record(&record(2)).expect("write");
        // As the reader can find it: record 2 written, its head not yet, and record 3 half
        // written.
        std::fs::write(head_path(&s.path), &head).expect("the head before record 2");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&s.path)
            .expect("log");
        std::io::Write::write_all(&mut file, b"{\"seq\":3,\"ti").expect("half a record");
        let verified = verify(&s.path).expect("read").expect("intact");
        assert_eq!(verified.records, 3);
        assert_eq!(
            verified.live,
            Some(Live {
                holder: Holder {
                    pid: Some(std::process::id())
                },
                unconfirmed: 1,
                partial: true,
            })
        );
        drop(log);
        // At rest, the half record is a write that was cut short: reported (the agent cuts it
        // off at its next start), and not called an edit.
        let broken = verify(&s.path).expect("read").expect_err("torn");
        assert_eq!(broken.line, 4, "{}", broken.reason);
        assert!(
            broken.reason.contains("write of record 3 was cut short"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn a_write_cut_short_after_the_heads_record_is_reported_as_such() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = stopped_log(dir.path(), 2);
        // As SIGKILL can leave it: record 3's write stopped between two pages.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&s.path)
            .expect("log");
        std::io::Write::write_all(&mut file, b"{\"seq\":3,\"ti").expect("half a record");
        let broken = verify(&s.path).expect("read").expect_err("torn");
        assert_eq!(broken.line, 4, "{}", broken.reason);
        assert!(
            broken.reason.contains("write of record 3 was cut short")
                && broken.reason.contains("the 3 records before it are intact"),
            "{}",
            broken.reason
        );
    }

    #[test]
    fn an_edit_in_a_live_log_is_still_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = settings(dir.path());
        let log = AuditLog::open(&s).expect("open");
        for i in 1..=3 {
            log.record(&record(i)).expect("write");
        }
        let text = std::fs::read_to_string(&s.path).expect("log");
        std::fs::write(&s.path, text.replacen("uid=2", "uid=9", 1)).expect("edited");
        let broken = verify(&s.path).expect("read").expect_err("edited");
        assert_eq!(broken.line, 3, "{}", broken.reason);
        // The last record, which only the head vouches for.
        let text = std::fs::read_to_string(&s.path).expect("log");
        std::fs::write(
            &s.path,
            text.replacen("uid=9", "uid=2", 1)
                .replacen("uid=3", "uid=8", 1),
        )
        .expect("edited");
        let broken = verify(&s.path).expect("read").expect_err("edited");
        assert_eq!(broken.line, 4, "{}", broken.reason);
        assert!(broken.reason.contains("head file"), "{}", broken.reason);
        drop(log);
    }

    #[test]
    fn a_live_log_verifies_clean_while_threads_write_and_rotate_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = settings(dir.path());
        s.max_bytes = 8_000; // rotate now and then meanwhile
        let log = std::sync::Arc::new(AuditLog::open(&s).expect("open"));
        let writers: Vec<_> = (0..3)
            .map(|t| {
                let log = std::sync::Arc::clone(&log);
                std::thread::spawn(move || {
                    for i in 0..300 {
                        log.record(&record(t * 1000 + i)).expect("record");
                    }
                })
            })
            .collect();
        let mut checks = 0;
        while checks < 3 || writers.iter().any(|w| !w.is_finished()) {
            let verified = verify(&s.path)
                .expect("read")
                .unwrap_or_else(|b| panic!("line {}: {}", b.line, b.reason));
            assert!(verified.live.is_some() && verified.head_checked);
            checks += 1;
        }
        for writer in writers {
            writer.join().expect("writer");
        }
    }
}
