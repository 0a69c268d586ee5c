//! Verification: checks the chain of one audit file, and against its head file that nothing
//! was cut off its end, naming the first broken line.

use std::path::Path;

use super::chain::{hash, head_path, read_head, Line};
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
mod tests {
    use super::super::tests_support::*;
    use super::super::AuditLog;
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
        assert!(verified.head_checked && !verified.last_unconfirmed);
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
}
