//! `signet token init`: prepares a development PKCS#11 token (SoftHSM2).

use std::path::PathBuf;

use anyhow::bail;
use clap::Subcommand;

use signet::backend::pkcs11::{initialize_token, TokenInit};
use signet::{Config, Secret};

use super::ConfigArg;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Initialise a development token (SoftHSM2) with the configured label and user PIN.
    /// Production HSMs are initialised with their vendor's tools.
    Init {
        #[command(flatten)]
        config: ConfigArg,
        /// A file holding the security officer PIN to set (never on the command line).
        #[arg(long)]
        so_pin_file: PathBuf,
    },
}

/// Runs a `signet token` command.
pub fn run(command: TokenCommand) -> anyhow::Result<()> {
    let TokenCommand::Init {
        config,
        so_pin_file,
    } = command;
    let config = Config::load(&config.config)?;
    let Some(p) = signet::backend::pkcs11_only(&config) else {
        bail!(
            "`signet token init` prepares PKCS#11 development tokens (SoftHSM2); a \
             YubiHSM2 is set up with Yubico's yubihsm-shell"
        );
    };
    let so_pin = Secret::from_file(&so_pin_file)?;
    let pin = p.pin.read()?;
    match initialize_token(p, &so_pin, &pin)? {
        TokenInit::Created => println!("token initialised"),
        TokenInit::AlreadyExists => println!("token already exists; left as it is"),
    }
    Ok(())
}
