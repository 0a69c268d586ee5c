//! `signet audit verify`: checks the hash chain of audit log files, across rotations.

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain of audit log files (oldest first when several, so the links
    /// across rotations are checked too); reports the first record that was edited, removed,
    /// inserted or reordered, with its line number. Exits non-zero if anything is wrong.
    Verify {
        /// The files, oldest first (for example audit.jsonl.1 audit.jsonl).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// Runs a `signet audit` command: one line per intact file, or the first break and failure.
pub fn run(command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::Verify { files } = command;
    let mut last_hash: Option<String> = None;
    for file in &files {
        match signet::audit::verify(file)? {
            Ok(verified) => {
                if last_hash
                    .as_ref()
                    .is_some_and(|h| *h != verified.first_prev)
                {
                    bail!(
                        "{}: line 1: does not continue the file before it (a file \
                         between them is missing, or they are out of order)",
                        file.display()
                    );
                }
                println!(
                    "{}: {} records, chain intact{}{}",
                    file.display(),
                    verified.records,
                    if verified.head_checked {
                        ""
                    } else {
                        " (no head file next to it: records cut off its end could not \
                         be detected; normal for a rotated file, a sign of tampering \
                         for the live log)"
                    },
                    match verified.unconfirmed {
                        0 => String::new(),
                        n => format!(
                            "; the last {n} record(s) go past the one the head file names \
                             (written just before the agent stopped or crashed, or appended \
                             by someone who can write the log)"
                        ),
                    }
                );
                if let Some(live) = &verified.live {
                    let pid = live
                        .holder
                        .pid
                        .map_or("an unknown pid".into(), |p| format!("pid {p}"));
                    println!(
                        "{}: the log is live (written by {pid}): records may be appended \
                         while it is read, and the last may not be confirmed by the head file \
                         yet{}{}",
                        file.display(),
                        match live.unconfirmed {
                            0 => String::new(),
                            n => format!(
                                "; {n} record(s) after the one the head file named were \
                                 appended meanwhile (chained, not yet confirmed)"
                            ),
                        },
                        if live.partial {
                            "; one still being written was left out"
                        } else {
                            ""
                        }
                    );
                }
                last_hash = Some(verified.last_hash);
            }
            Err(broken) => bail!(
                "{}: line {}: {}",
                file.display(),
                broken.line,
                broken.reason
            ),
        }
    }
    Ok(())
}
