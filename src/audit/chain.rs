//! The chain format: one JSON line per record, numbered and carrying the SHA-256 of the line
//! before it; the genesis line that starts a file; the `<path>.head` file that names the last
//! record; and the paths, hashing and timestamps they use.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
/// One line of the file: the chain fields, then the record (or the genesis fields).
#[derive(Serialize, Deserialize)]
pub(super) struct Line<R> {
    pub(super) seq: u64,
    pub(super) time: String,
    pub(super) prev: String,
    #[serde(flatten)]
    pub(super) body: R,
}

/// The first line of a file.
#[derive(Serialize, Deserialize)]
pub(super) struct Genesis {
    /// `new` (a random seed) or `rotated` (continues the file named in `from`).
    pub(super) genesis: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) from: Option<String>,
}

/// What the head file holds: the last record's number and hash.
#[derive(Serialize, Deserialize, PartialEq, Debug)]
pub(super) struct Head {
    pub(super) seq: u64,
    pub(super) hash: String,
}

/// The head file's fixed width (a record number and a hex SHA-256 fit with room to spare).
pub(super) const HEAD_WIDTH: usize = 128;

/// Where a rotation prepares the next file.
pub(super) fn staging_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

pub(super) fn head_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".head");
    PathBuf::from(name)
}

pub(super) fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

pub(super) fn read_head(path: &Path) -> Option<Head> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_str(String::from_utf8_lossy(&text).trim_end()).ok()
}

/// The end of a log file.
pub(super) struct Tail {
    /// The last line, without its newline.
    pub(super) line: String,
    /// Whether it ends with a newline.
    pub(super) complete: bool,
    /// The line before it.
    pub(super) before: Option<String>,
}

/// The last two lines of the file; `None` for an empty or missing file. A complete line that
/// is not UTF-8 is an error; an incomplete last line (a write cut short, possibly inside a
/// character) is read lossily: it is only ever cut off or refused.
pub(super) fn last_lines(path: &Path) -> std::io::Result<Option<Tail>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut tail: Option<Tail> = None;
    let mut reader = BufReader::new(file);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        if reader.read_until(b'\n', &mut buffer)? == 0 {
            break;
        }
        let complete = buffer.ends_with(b"\n");
        let line = if complete {
            String::from_utf8(buffer[..buffer.len() - 1].to_vec()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "stream did not contain valid UTF-8",
                )
            })?
        } else {
            String::from_utf8_lossy(&buffer).into_owned()
        };
        tail = Some(Tail {
            complete,
            line,
            before: tail.map(|t| t.line),
        });
    }
    Ok(tail)
}

pub(super) fn hash(line: &str) -> String {
    hex::encode(Sha256::digest(line.as_bytes()))
}

pub(super) fn rand_seed() -> std::io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    std::io::Read::read_exact(&mut File::open("/dev/urandom")?, &mut seed)?;
    Ok(seed)
}

/// Now as RFC 3339 UTC with milliseconds (`2026-11-21T08:30:00.123Z`).
pub(super) fn rfc3339_now() -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_the_epoch_and_a_leap_day() {
        assert_eq!(&rfc3339_now()[..2], "20");
        assert_eq!(rfc3339_now().len(), 24);
    }
}
