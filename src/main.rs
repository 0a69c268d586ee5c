//! The `signet` command: `serve` runs the agent; `keys` manages keys on the token directly;
//! `sign`, `public-key`, `fingerprint`, `list`, `verify` and `verify-fingerprint` are clients
//! of a running agent; `token init` prepares a development token; `audit verify` checks the
//! audit log; `bench` measures. The commands are in [`cli`]; this file parses, sets up logging,
//! and turns the result into an exit code.

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    if cli.log_format == "json" {
        logs.json().with_current_span(false).init();
    } else {
        logs.with_ansi(std::io::stderr().is_terminal()).init();
    }
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        // The verdict is printed; the exit code says it.
        Err(e) if e.is::<cli::NotValid>() => ExitCode::from(cli::INVALID),
        Err(e) => {
            eprintln!("signet: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, each said once. The agent's own [`signet::Error`]
/// already ends with its cause, in the words logs and gRPC messages use, so the chain stops
/// there; a cause the message before spells out is left out too.
fn chain(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let said = cause.to_string();
        if !text.contains(&said) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&said);
        }
        if cause.is::<signet::Error>() {
            break;
        }
    }
    text
}

/// Runs a command, without core dumps when it holds a secret.
fn run(command: cli::Command) -> anyhow::Result<()> {
    if command.holds_secrets() {
        no_core_dumps()?;
    }
    cli::run(command)
}

/// For the commands that hold the PIN, a password or a secret being imported: no core dump
/// (RLIMIT_CORE 0, which systemd-coredump also honours) and not dumpable (no core even through
/// a core_pattern pipe, and no ptrace or /proc/PID/mem or environ access by other processes of
/// the same user).
fn no_core_dumps() -> anyhow::Result<()> {
    rlimit::setrlimit(rlimit::Resource::CORE, 0, 0)
        .context("disabling core dumps (RLIMIT_CORE)")?;
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("marking the process not dumpable (PR_SET_DUMPABLE)")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let ours = signet::Error::io("reading secret file /p", io);
        assert_eq!(
            chain(&anyhow::Error::new(ours)),
            "reading secret file /p: no such file"
        );
        let ours = signet::Error::Config("x.toml: line 2".into());
        let wrapped = anyhow::Error::new(ours).context("starting");
        assert_eq!(chain(&wrapped), "starting: configuration: x.toml: line 2");
    }

    #[test]
    fn no_core_dumps_leaves_the_process_undumpable() {
        no_core_dumps().expect("no core dumps");
        assert_eq!(
            rustix::process::dumpable_behavior().expect("PR_GET_DUMPABLE"),
            rustix::process::DumpableBehavior::NotDumpable
        );
        assert_eq!(
            rlimit::getrlimit(rlimit::Resource::CORE).expect("RLIMIT_CORE"),
            (0, 0)
        );
    }
}
