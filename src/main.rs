//! The `signet` command: `serve` runs the agent; `keys generate` creates a key inside the token.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use signet::backend::pkcs11::{initialize_token, provision, Token, TokenInit};
use signet::config::{self, Config};
use signet::key::Algorithm;
use signet::secret::Secret;

#[derive(Parser)]
#[command(name = "signet", version, about = "A hardware-backed signing agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent until SIGTERM or SIGINT.
    Serve {
        /// The configuration file (see signet.example.toml).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Manage keys on the token directly (no running agent needed).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Prepare a development token.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Generate a sensitive, non-extractable key inside the token.
    Generate {
        /// The configuration file naming the module, token and PIN source.
        #[arg(long, short)]
        config: PathBuf,
        /// ed25519, p256 or hmac-sha256.
        #[arg(long = "type", value_parser = parse_algorithm)]
        key_type: Algorithm,
        /// The key id (the object label). Refused if it already exists.
        #[arg(long)]
        id: String,
        /// Succeed without changing anything when a key with this id exists (for scripts).
        #[arg(long)]
        exists_ok: bool,
    },
    /// Import an existing SWT3 signing secret, read from standard input, as an HMAC key.
    ImportHmac {
        /// The configuration file naming the module, token and PIN source.
        #[arg(long, short)]
        config: PathBuf,
        /// The key id (the object label). Refused if it already exists.
        #[arg(long)]
        id: String,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Initialise a development token (SoftHSM2) with the configured label and user PIN.
    /// Production HSMs are initialised with their vendor's tools.
    Init {
        /// The configuration file naming the module, token label and PIN source.
        #[arg(long, short)]
        config: PathBuf,
        /// A file holding the security officer PIN to set (never on the command line).
        #[arg(long)]
        so_pin_file: PathBuf,
    },
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(name)
        .ok_or_else(|| format!("unknown key type '{name}': expected ed25519, p256 or hmac-sha256"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGNET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve { config } => {
            let config = Config::load(&config)?;
            let (backend, workers) = signet::server::open_backend(&config)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(signet::server::serve(config, backend, workers))?;
            Ok(())
        }
        Command::Keys {
            command:
                KeysCommand::Generate {
                    config,
                    key_type,
                    id,
                    exists_ok,
                },
        } => {
            let config = Config::load(&config)?;
            let config::Backend::Pkcs11(p) = &config.backend;
            let pin = p.pin.read()?;
            let token = Token::open(p, &pin, true)?;
            drop(pin);
            let result = provision::generate(&token.session, key_type, &id, exists_ok);
            token.close();
            match result? {
                provision::Generated::Created => {
                    println!("generated {} key '{id}'", key_type.name())
                }
                provision::Generated::AlreadyExists => {
                    println!("key '{id}' already exists; left as it is")
                }
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::ImportHmac { config, id },
        } => {
            let config = Config::load(&config)?;
            let config::Backend::Pkcs11(p) = &config.backend;
            let secret = Secret::from_reader(std::io::stdin().lock(), "standard input")?;
            let pin = p.pin.read()?;
            let token = Token::open(p, &pin, true)?;
            drop(pin);
            let result = provision::import_hmac(&token.session, &id, secret.expose().as_bytes());
            drop(secret);
            token.close();
            result?;
            println!("imported hmac-sha256 key '{id}'");
            Ok(())
        }
        Command::Token {
            command:
                TokenCommand::Init {
                    config,
                    so_pin_file,
                },
        } => {
            let config = Config::load(&config)?;
            let config::Backend::Pkcs11(p) = &config.backend;
            let so_pin = Secret::from_file(&so_pin_file)?;
            let pin = p.pin.read()?;
            match initialize_token(p, &so_pin, &pin)? {
                TokenInit::Created => println!("token initialised"),
                TokenInit::AlreadyExists => println!("token already exists; left as it is"),
            }
            Ok(())
        }
    }
}
