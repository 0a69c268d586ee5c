//! The `signet` command line: the clap definitions of the commands, and the dispatch to the
//! file that runs each group (`serve`, `keys`, `token`, `audit`, the agent clients, `bench`).

mod audit;
mod bench;
mod client;
mod keys;
mod serve;
mod token;
mod verify;

pub use verify::{NotValid, INVALID};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "signet", version, about = "A hardware-backed signing agent")]
pub struct Cli {
    /// Log format on standard error: human (default) or json (one object per line).
    #[arg(long, global = true, env = "SIGNET_LOG_FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub log_format: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Serve(ConfigArg),
    /// Manage keys on the token directly (no running agent needed).
    Keys {
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Prepare a development token.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// Work with the audit log.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Sign a message with a running agent (the message from --file or standard input).
    Sign(client::Sign),
    /// Print the public key of a key a running agent serves.
    PublicKey(client::PublicKey),
    /// Mint and sign an SWT3 anchor fingerprint with a running agent's HMAC key.
    Fingerprint(client::Fingerprint),
    /// List the keys a running agent serves.
    List(client::List),
    /// Check a signature with a running agent (exit 0 valid, 3 not valid, 1 error).
    Verify(verify::Verify),
    /// Check an SWT3 anchor and its witness signature with a running agent (exit 0 valid, 3
    /// not valid, 1 error).
    VerifyFingerprint(verify::VerifyFingerprint),
    /// Measure: load on a running agent, the raw PKCS#11 module, or both alternated.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

impl Command {
    /// Whether the command holds the PIN, a password or a secret being imported, and so must
    /// run without core dumps.
    pub fn holds_secrets(&self) -> bool {
        matches!(self, Command::Serve(_) | Command::Keys { .. })
    }
}

/// The configuration file argument of the commands that read it.
#[derive(Args)]
pub struct ConfigArg {
    /// The configuration file naming the module, token and PIN source (see
    /// signet.example.toml).
    #[arg(long, short, env = "SIGNET_CONFIG")]
    pub config: PathBuf,
}

/// Runs a command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(ConfigArg { config }) => serve::run(&config),
        Command::Keys { command } => keys::run(command),
        Command::Token { command } => token::run(command),
        Command::Audit { command } => audit::run(command),
        Command::Sign(sign) => sign.run(),
        Command::PublicKey(public_key) => public_key.run(),
        Command::Fingerprint(fingerprint) => fingerprint.run(),
        Command::List(list) => list.run(),
        Command::Verify(verify) => verify.run(),
        Command::VerifyFingerprint(verify) => verify.run(),
        Command::Bench { command } => bench::run(command),
    }
}
