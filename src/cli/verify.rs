//! `signet verify` and `signet verify-fingerprint`: clients of a running agent that check a
//! signature or an SWT3 anchor without holding any key. Exit code 0: valid; [`INVALID`]:
//! checked and not valid; 1: the check could not be made (2: bad usage, as clap says).

use std::path::PathBuf;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::Args;

use super::client::{print_line, read_message, AgentArgs};
use signet_client::{Anchor, SignatureFormat};

/// The exit code of a signature that was checked and is not valid.
pub const INVALID: u8 = 3;

/// A check that was made and failed: the answer is printed; `main` exits with [`INVALID`].
#[derive(Debug, thiserror::Error)]
#[error("not valid")]
pub struct NotValid;

/// `signet verify`.
#[derive(Args)]
pub struct Verify {
    #[command(flatten)]
    agent: AgentArgs,
    /// The key id.
    #[arg(long)]
    key: String,
    /// The message file; standard input when absent or "-".
    #[arg(long)]
    file: Option<PathBuf>,
    /// The signature, as `signet sign` prints it: base64 (default) or hex (--signature-hex).
    #[arg(long)]
    signature: String,
    /// The signature is hex, not base64.
    #[arg(long)]
    signature_hex: bool,
    /// ECDSA only: the signature is DER (X.509) rather than the 64-byte r||s.
    #[arg(long)]
    der: bool,
    /// The key version to check against; all verify-enabled versions when absent.
    #[arg(long)]
    key_version: Option<u32>,
    /// text (default) or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    output: String,
}

impl Verify {
    /// Checks the signature and prints the verdict.
    pub fn run(self) -> anyhow::Result<()> {
        let signature = if self.signature_hex {
            hex::decode(self.signature.trim()).context("--signature is not hex")?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(self.signature.trim())
                .context("--signature is not base64 (give --signature-hex for hex)")?
        };
        let message = read_message(self.file.as_deref())?;
        let format = if self.der {
            SignatureFormat::Der
        } else {
            SignatureFormat::Raw
        };
        let (key, version, json) = (self.key, self.key_version, self.output == "json");
        let verdict = self.agent.call(|client| async move {
            client
                .verify(&key, message, signature, format, version)
                .await
        })?;
        let text = if json {
            serde_json::json!({
                "valid": verdict.valid,
                "key_id": verdict.key_id,
                "key_version": verdict.key_version,
                "algorithm": verdict.algorithm.name(),
            })
            .to_string()
        } else {
            verdict_text(verdict.valid, verdict.key_version)
        };
        answer(verdict.valid, &text)
    }
}

/// `signet verify-fingerprint`.
#[derive(Args)]
pub struct VerifyFingerprint {
    #[command(flatten)]
    agent: AgentArgs,
    /// The HMAC key id.
    #[arg(long)]
    key: String,
    /// The tenant id.
    #[arg(long)]
    tenant_id: String,
    /// The procedure id (e.g. AI-INF.1).
    #[arg(long)]
    procedure_id: String,
    /// Factor a.
    #[arg(long, allow_hyphen_values = true)]
    factor_a: f64,
    /// Factor b.
    #[arg(long, allow_hyphen_values = true)]
    factor_b: f64,
    /// Factor c.
    #[arg(long, allow_hyphen_values = true)]
    factor_c: f64,
    /// The anchor's timestamp, milliseconds since the epoch (required).
    #[arg(long)]
    timestamp_ms: i64,
    /// The agent id the witness bound into the signed payload, if any.
    #[arg(long)]
    agent_id: Option<String>,
    /// The claimed fingerprint (12 hex characters).
    #[arg(long)]
    fingerprint: String,
    /// The witness's signature (64 hex characters).
    #[arg(long)]
    signature: String,
    /// The key version to check against; all verify-enabled versions when absent.
    #[arg(long)]
    key_version: Option<u32>,
    /// json (default) or text.
    #[arg(long, default_value = "json", value_parser = ["json", "text"])]
    output: String,
}

impl VerifyFingerprint {
    /// Checks the anchor and prints which parts hold.
    pub fn run(self) -> anyhow::Result<()> {
        if self.timestamp_ms == 0 {
            bail!("--timestamp-ms must be the anchor's timestamp, not 0");
        }
        let mut anchor = Anchor::new(
            self.tenant_id,
            self.procedure_id,
            [self.factor_a, self.factor_b, self.factor_c],
        )
        .at(self.timestamp_ms);
        anchor.agent_id = self.agent_id;
        let (key, version) = (self.key, self.key_version);
        let (fingerprint, signature) = (self.fingerprint, self.signature);
        let text_output = self.output == "text";
        let v = self.agent.call(|client| async move {
            client
                .verify_fingerprint(&key, &anchor, &fingerprint, &signature, version)
                .await
        })?;
        let text = if text_output {
            let mut text = verdict_text(v.valid, v.key_version);
            if !v.fingerprint_matches {
                text.push_str(&format!(
                    "\nthe fingerprint does not match the anchor fields (they give {})",
                    v.expected_fingerprint
                ));
            }
            if !v.signature_matches {
                text.push_str("\nthe signature is not the key's signature of this fingerprint");
            }
            text
        } else {
            serde_json::json!({
                "valid": v.valid,
                "fingerprint_matches": v.fingerprint_matches,
                "signature_matches": v.signature_matches,
                "expected_fingerprint": v.expected_fingerprint,
                "key_id": v.key_id,
                "key_version": v.key_version,
            })
            .to_string()
        };
        answer(v.valid, &text)
    }
}

/// Prints the verdict, and fails with [`NotValid`] when it is not valid.
fn answer(valid: bool, text: &str) -> anyhow::Result<()> {
    print_line(text)?;
    if !valid {
        return Err(NotValid.into());
    }
    Ok(())
}

fn verdict_text(valid: bool, version: u32) -> String {
    if valid {
        format!("valid (key version {version})")
    } else {
        format!("invalid (key version {version} tried)")
    }
}
