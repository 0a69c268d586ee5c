//! Secrets (the token PIN, a key being imported): read from a file, standard input, the
//! terminal without echo, or the environment; zeroized on drop and never printed.

use std::fmt;
use std::io::Read;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::Error;

/// The longest secret accepted (PINs, HMAC secrets and sqooler key strings are far shorter).
pub const MAX_SECRET_BYTES: usize = 16 * 1024;

/// A secret string held in memory that is wiped when dropped. Its `Debug` output is redacted
/// and it has no `Display`, so it cannot end up in a log line or an error message by accident.
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a string that is already in memory; the caller's copy is moved, not duplicated.
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }

    /// Reads a secret from a file, dropping one trailing newline (`\n` or `\r\n`).
    pub fn from_file(path: &Path) -> Result<Self, Error> {
        let file = std::fs::File::open(path)
            .map_err(|e| Error::io(format!("reading secret file {}", path.display()), e))?;
        Self::from_reader(file, &path.display().to_string())
    }

    /// Reads a secret from a reader (a file, standard input) to its end, dropping one trailing
    /// newline. Every intermediate buffer is wiped; `source` names the input in errors.
    pub fn from_reader(reader: impl std::io::Read, source: &str) -> Result<Self, Error> {
        // Allocated once at full size: a growing Vec would free unwiped copies as it moves.
        let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_SECRET_BYTES + 1));
        reader
            .take(MAX_SECRET_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(format!("reading the secret from {source}"), e))?;
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(Error::InvalidArgument(format!(
                "the secret from {source} is longer than {MAX_SECRET_BYTES} bytes"
            )));
        }
        strip_newline(&mut bytes);
        let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
            // The bytes are inside the error; wipe them before reporting.
            drop(Zeroizing::new(e.into_bytes()));
            Error::InvalidArgument(format!("the secret from {source} is not UTF-8"))
        })?;
        Self::non_empty(Secret::new(text), source)
    }

    /// Reads a secret from standard input: typed at the terminal without echo (after
    /// `prompt`, shown on the terminal) when standard input is a terminal, otherwise read to
    /// its end (`echo "$SECRET" | signet …`), dropping one trailing newline.
    pub fn from_stdin(prompt: &str) -> Result<Self, Error> {
        let stdin = std::io::stdin();
        if std::io::IsTerminal::is_terminal(&stdin) {
            let typed = rpassword::prompt_password(prompt)
                .map_err(|e| Error::io("reading the secret from the terminal", e))?;
            Self::non_empty(Secret::new(typed), "the terminal")
        } else {
            Self::from_reader(stdin.lock(), "standard input")
        }
    }

    /// Reads a secret from an environment variable and removes the variable from this
    /// process's environment, so that child processes do not inherit it. The kernel's copy of
    /// the initial environment (`/proc/PID/environ`, readable by the same user) keeps it: a
    /// PIN file is the better source.
    pub fn from_env(var: &str) -> Result<Self, Error> {
        let value = std::env::var(var).map_err(|_| {
            Error::Config(format!(
                "environment variable {var} (named as the PIN source) is not set or not UTF-8"
            ))
        })?;
        std::env::remove_var(var);
        Self::non_empty(Secret::new(value), var)
    }

    fn non_empty(secret: Secret, source: &str) -> Result<Self, Error> {
        if secret.0.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "the secret from {source} is empty"
            )));
        }
        Ok(secret)
    }

    /// The secret's text, for handing to the HSM library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn strip_newline(bytes: &mut Vec<u8>) {
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("1234-very-secret".into());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn file_drops_one_trailing_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pin");
        std::fs::write(&p, "abc\r\n").expect("write");
        assert_eq!(Secret::from_file(&p).expect("read").expose(), "abc");
        std::fs::write(&p, "abc\n\n").expect("write");
        assert_eq!(Secret::from_file(&p).expect("read").expose(), "abc\n");
    }

    #[test]
    fn empty_file_is_refused_without_echo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("pin");
        std::fs::write(&p, "\n").expect("write");
        let err = Secret::from_file(&p).expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
