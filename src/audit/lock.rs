//! The writer's lock: one agent at a time writes a log. Two writers would interleave their
//! records into one file, each chaining to its own last record, and `signet audit verify`
//! would then report damage no one did.
//!
//! The agent holds an exclusive `flock` on `<path>.lock` (a file rotation never replaces) for
//! as long as it runs, and writes its pid into it. The kernel drops the lock when the process
//! ends, however it ends (SIGKILL too), so a stale lock file is no obstacle. `audit verify`
//! asks for the same lock, shared and without waiting, only to learn whether the log is live.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};
use rustix::io::Errno;

use crate::error::Error;

/// The exclusive lock on a log, held until it is dropped (or the process ends).
pub(super) struct WriterLock {
    /// Closing the file releases the lock.
    _file: File,
}

/// The agent writing a live log, as its lock file names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// The writer's process id, when the lock file names one.
    pub pid: Option<u32>,
}

/// The lock file of the log at `path`.
pub(super) fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The width the pid is padded to, so that a new pid overwrites an old one in one write.
const PID_WIDTH: usize = 16;

impl WriterLock {
    /// Takes the log's lock and writes this process's pid into it; refuses when another
    /// process holds it, naming the log and that process.
    pub(super) fn acquire(path: &Path) -> Result<WriterLock, Error> {
        let lock = lock_path(path);
        let io = |what: &str, e| {
            Error::io(
                format!("audit log {}: {what} {}", path.display(), lock.display()),
                e,
            )
        };
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .mode(0o600)
            .open(&lock)
            .map_err(|e| io("opening its lock file", e))?;
        // `audit verify` holds a shared lock for an instant while it looks; a few tries let
        // it pass.
        let mut locked = flock(&file, FlockOperation::NonBlockingLockExclusive);
        for _ in 0..3 {
            if locked != Err(Errno::WOULDBLOCK) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
            locked = flock(&file, FlockOperation::NonBlockingLockExclusive);
        }
        match locked {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                let holder = read_pid(&file)
                    .map_or_else(|| "another process".to_owned(), |pid| format!("pid {pid}"));
                return Err(Error::Startup(format!(
                    "the audit log {} is in use: another agent ({holder}) holds its lock {}. \
                     Two agents must not write one log (their records would interleave and \
                     break the chain); give each agent its own audit path, or stop the other",
                    path.display(),
                    lock.display()
                )));
            }
            Err(e) => return Err(io("locking", e.into())),
        }
        let pid = format!("{:<PID_WIDTH$}\n", std::process::id());
        file.write_all_at(pid.as_bytes(), 0)
            .and_then(|()| file.set_len(pid.len() as u64))
            .map_err(|e| io("writing its pid into", e))?;
        Ok(WriterLock { _file: file })
    }
}

/// Who writes the log at `path` now: `None` when no process holds its lock (or it has no
/// lock file: a rotated file, or a log no agent of this version wrote; or this user may not
/// open it).
pub fn holder(path: &Path) -> Result<Option<Holder>, Error> {
    let lock = lock_path(path);
    let file = match File::open(&lock) {
        Ok(file) => file,
        // No lock file, or one this user may not open (mode 0600, another owner): no writer
        // can be seen, and the log is read as one at rest.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            return Ok(None)
        }
        Err(e) => {
            return Err(Error::io(
                format!("opening the audit log's lock file {}", lock.display()),
                e,
            ))
        }
    };
    // A shared lock is granted unless a writer holds the exclusive one; it is released when
    // `file` is closed, at once.
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(None),
        Err(Errno::WOULDBLOCK) => Ok(Some(Holder {
            pid: read_pid(&file),
        })),
        Err(e) => Err(Error::io(
            format!("probing the audit log's lock file {}", lock.display()),
            e.into(),
        )),
    }
}

/// The pid a lock file holds.
fn read_pid(file: &File) -> Option<u32> {
    let mut buffer = [0u8; PID_WIDTH + 1];
    let n = file.read_at(&mut buffer, 0).ok()?;
    std::str::from_utf8(&buffer[..n]).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holders_pid_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.jsonl");
        assert_eq!(holder(&path).expect("probe"), None, "no lock file yet");
        let first = WriterLock::acquire(&path).expect("first");
        let pid = std::process::id();
        assert_eq!(
            holder(&path).expect("probe"),
            Some(Holder { pid: Some(pid) })
        );
        // flock locks belong to the open file, so a second open in this process conflicts
        // just as another process would.
        let err = WriterLock::acquire(&path).err().expect("refused");
        let message = err.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains(&format!("pid {pid}")),
            "{message}"
        );
        drop(first);
        assert_eq!(holder(&path).expect("probe"), None, "released");
        let _again = WriterLock::acquire(&path).expect("a stale lock file is no obstacle");
    }
}
