//! `signet verify` and `signet verify-fingerprint`: clients of a running agent that check a
//! signature or an SWT3 anchor without holding any key. Exit code 0: valid; [`INVALID`]:
//! checked and not valid; 1: the check could not be made (2: bad usage, as clap says).

use std::path::PathBuf;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::Args;

use super::client::{output_of, read_message, AgentArgs};
use signet::grpc::client;
use signet::grpc::proto::{SignatureFormat, VerifyFingerprintRequest, VerifyRequest};

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
        let agent = self.agent.agent()?;
        let format = if self.der {
            SignatureFormat::Der
        } else {
            SignatureFormat::Raw
        };
        let request = VerifyRequest {
            key_id: self.key,
            message,
            signature,
            signature_format: Some(format.into()),
            key_version: self.key_version,
            message_crc32c: None,
            signature_crc32c: None,
        };
        let output = output_of(&self.output);
        answer(client::verify(&agent, request, output))
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
        let agent = self.agent.agent()?;
        let request = VerifyFingerprintRequest {
            key_id: self.key,
            tenant_id: self.tenant_id,
            procedure_id: self.procedure_id,
            factor_a: self.factor_a,
            factor_b: self.factor_b,
            factor_c: self.factor_c,
            timestamp_ms: self.timestamp_ms,
            agent_id: self.agent_id,
            fingerprint: self.fingerprint,
            signature: self.signature,
            key_version: self.key_version,
        };
        let output = match self.output.as_str() {
            "text" => client::Output::Hex,
            _ => client::Output::Json,
        };
        answer(client::verify_fingerprint(&agent, request, output))
    }
}

/// Runs the call, prints the verdict, and fails with [`NotValid`] when it is not valid.
fn answer(
    work: impl std::future::Future<Output = Result<client::Answer, client::ClientError>>,
) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = runtime.block_on(work)?;
    println!("{}", answer.text);
    if !answer.valid {
        return Err(NotValid.into());
    }
    Ok(())
}
