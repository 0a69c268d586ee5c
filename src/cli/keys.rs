//! `signet keys`: generate, import, list, print and destroy keys on the token directly (no
//! running agent needed).

use std::io::{IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use clap::Subcommand;

use signet::backend::admin::KeyAdmin;
use signet::keys::{self, PublicFormat};
use signet::{sqooler, Algorithm, Config, Secret};

use super::ConfigArg;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a sensitive, non-extractable key inside the token; prints its public JWK.
    Generate {
        #[command(flatten)]
        config: ConfigArg,
        /// ed25519, p256, hmac-sha256 or ml-dsa-65 (ML-DSA needs a PKCS#11 3.2 token with
        /// CKM_ML_DSA, such as Kryoptic).
        #[arg(long = "type", value_parser = parse_algorithm)]
        key_type: Algorithm,
        /// The key id (the object label). Refused if it already exists.
        #[arg(long)]
        id: String,
        /// Succeed without changing anything when a key of this type and id exists (scripts).
        #[arg(long)]
        exists_ok: bool,
    },
    /// Import an SWT3 signing secret, read from standard input, as an HMAC-SHA256 key.
    ImportHmac {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id (the object label). Refused if it already exists.
        #[arg(long)]
        id: String,
    },
    /// Import a spooler's Ed25519 key from the sqooler private-key string read from standard
    /// input; prints the public JWK in sqooler's form.
    ImportSqooler {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id; defaults to (and must equal) the key's sqooler kid.
        #[arg(long)]
        id: Option<String>,
    },
    /// List the private and secret keys on the token and whether the agent would serve them.
    List {
        #[command(flatten)]
        config: ConfigArg,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the public key of an asymmetric key.
    Public {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// jwk, pem, der, raw (binary) or sqooler (the JWK as sqooler stores it).
        #[arg(long, default_value = "jwk", value_parser = parse_public_format)]
        format: PublicFormat,
    },
    /// Destroy a key and its public-key object (version 1, the object labelled ID, or the
    /// version given). This cannot be undone.
    Destroy {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// The version to destroy (default: the object labelled ID itself, version 1).
        #[arg(long)]
        version: Option<u32>,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Generate a new version of a key inside the token (same type, same flags and checks as
    /// `generate`) and make it primary; prints its public JWK.
    Rotate {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// Add the new version for verification only; the primary stays as it is.
        #[arg(long)]
        stage: bool,
    },
    /// List the versions of a key and what each may do.
    Versions {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Make a version of a key the one that signs; the others that could sign become
    /// verify-only.
    SetPrimary {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// The version.
        version: u32,
    },
    /// Disable a version of a key: no signing, no verifying (`set-primary` brings it back).
    Disable {
        #[command(flatten)]
        config: ConfigArg,
        /// The key id.
        id: String,
        /// The version.
        version: u32,
    },
}

fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    Algorithm::from_name(name).ok_or_else(|| {
        format!("unknown key type '{name}': expected ed25519, p256, hmac-sha256 or ml-dsa-65")
    })
}

fn parse_public_format(name: &str) -> Result<PublicFormat, String> {
    PublicFormat::ALL
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| format!("unknown format '{name}': expected jwk, pem, der, raw or sqooler"))
}

fn open(config: &Path) -> anyhow::Result<Box<dyn KeyAdmin>> {
    Ok(signet::backend::open_admin(&Config::load(config)?)?)
}

/// Key commands: results go to standard output (JWKs, tables, keys), everything meant for the
/// operator to read goes to standard error.
pub fn run(command: KeysCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        KeysCommand::Generate {
            config,
            key_type,
            id,
            exists_ok,
        } => {
            let admin = open(&config.config)?;
            let public = keys::generate(admin.as_ref(), key_type, &id, exists_ok)?;
            eprintln!(
                "{} key '{}' is on the token",
                key_type.name(),
                id.escape_debug()
            );
            if let Some(public) = public {
                writeln!(stdout, "{}", public.jwk(&id))?;
            }
        }
        KeysCommand::ImportHmac { config, id } => {
            let config = Config::load(&config.config)?;
            let secret = Secret::from_stdin("SWT3 signing secret (not echoed): ")?;
            let admin = signet::backend::open_admin(&config)?;
            keys::import_hmac(admin.as_ref(), &id, &secret)?;
            drop(secret);
            eprintln!(
                "imported hmac-sha256 key '{}' (sensitive, non-extractable); it signed and \
                 matched a test message",
                id.escape_debug()
            );
        }
        KeysCommand::ImportSqooler { config, id } => {
            let config = Config::load(&config.config)?;
            let input = Secret::from_stdin("sqooler private-key string (not echoed): ")?;
            let key = sqooler::PrivateKey::from_config_str(input.expose())?;
            drop(input);
            let admin = signet::backend::open_admin(&config)?;
            keys::import_sqooler(admin.as_ref(), id.as_deref(), &key)?;
            let public_jwk = sqooler::public_jwk(&key.kid, &key.public);
            let kid = key.kid.escape_debug().to_string();
            drop(key);
            eprintln!(
                "imported ed25519 key '{kid}' (sensitive, non-extractable); it signed and \
                 verified with the original public key. Its public JWK, as sqooler stores it:"
            );
            writeln!(stdout, "{public_jwk}")?;
        }
        KeysCommand::List { config, json } => {
            let config = Config::load(&config.config)?;
            let listed = signet::backend::open_admin(&config)?.list()?;
            let missing = keys::missing(&listed, config.backend.keys());
            let text = if json {
                keys::list_json(&listed, &missing)
            } else {
                keys::list_table(&listed, &missing)
            };
            stdout.write_all(text.as_bytes())?;
        }
        KeysCommand::Public { config, id, format } => {
            if format.is_binary() && stdout.is_terminal() {
                bail!(
                    "refusing to write binary output to a terminal; redirect it to a file \
                     (> key.bin) or use --format pem"
                );
            }
            let bytes = keys::public(open(&config.config)?.as_ref(), &id, format)?;
            stdout.write_all(&bytes)?;
        }
        KeysCommand::Destroy {
            config,
            id,
            version: Some(version),
            yes,
        } => {
            let admin = open(&config.config)?;
            let label = signet::versions::ring(admin.as_ref(), &id)?
                .into_iter()
                .find(|v| v.version == version)
                .map(|v| v.label)
                .ok_or_else(|| signet::error::Error::NotOnToken(format!("{id}#{version}")))?;
            if !yes {
                confirm_destroy(&label)?;
            }
            let objects = signet::versions::destroy(admin.as_ref(), &id, version)?;
            eprintln!(
                "destroyed version {version} of key '{}' ({objects} object{}); a serving agent \
                 drops it at its next re-scan (or at once on SIGHUP)",
                id.escape_debug(),
                if objects == 1 { "" } else { "s" }
            );
        }
        KeysCommand::Rotate { config, id, stage } => {
            let admin = open(&config.config)?;
            let rotated = signet::versions::rotate(admin.as_ref(), &id, stage)?;
            eprintln!(
                "key '{}' version {} is on the token{}; a serving agent follows at its next \
                 re-scan (or at once on SIGHUP)",
                id.escape_debug(),
                rotated.version,
                if rotated.primary {
                    " and is primary"
                } else {
                    ", verify-only (staged)"
                }
            );
            if let Some(public) = rotated.public_key {
                let kid = signet::versions::ring(admin.as_ref(), &id)?
                    .into_iter()
                    .find(|v| v.version == rotated.version)
                    .map_or_else(|| id.clone(), |v| v.label);
                writeln!(stdout, "{}", public.jwk(&kid))?;
            }
        }
        KeysCommand::Versions { config, id, json } => {
            let versions = signet::versions::ring(open(&config.config)?.as_ref(), &id)?;
            let text = if json {
                signet::versions::json(&versions)
            } else {
                signet::versions::table(&versions)
            };
            stdout.write_all(text.as_bytes())?;
        }
        KeysCommand::SetPrimary {
            config,
            id,
            version,
        } => {
            signet::versions::set_primary(open(&config.config)?.as_ref(), &id, version)?;
            eprintln!(
                "version {version} of key '{}' is primary",
                id.escape_debug()
            );
        }
        KeysCommand::Disable {
            config,
            id,
            version,
        } => {
            signet::versions::disable(open(&config.config)?.as_ref(), &id, version)?;
            eprintln!(
                "version {version} of key '{}' is disabled (no signing, no verifying)",
                id.escape_debug()
            );
        }
        KeysCommand::Destroy {
            config,
            id,
            version: None,
            yes,
        } => {
            let admin = open(&config.config)?;
            keys::the_key(admin.as_ref(), &id)?;
            if !yes {
                confirm_destroy(&id)?;
            }
            let objects = admin.destroy(&id)?;
            eprintln!(
                "destroyed key '{}' ({objects} object{})",
                id.escape_debug(),
                if objects == 1 { "" } else { "s" }
            );
        }
    }
    stdout.flush()?;
    Ok(())
}

/// Asks the operator to type the key id. Without a terminal there is nobody to ask: `--yes`
/// is required.
fn confirm_destroy(id: &str) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("refusing to destroy key '{}' without confirmation: standard input is not a terminal; pass --yes", id.escape_debug());
    }
    eprint!(
        "Destroying key '{}' cannot be undone; signatures it made can no longer be produced.\n\
         Type the key id to confirm: ",
        id.escape_debug()
    );
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if answer.trim_end_matches(['\r', '\n']) != id {
        bail!("not confirmed; nothing was destroyed");
    }
    Ok(())
}
