//! The `signet verify | verify-fingerprint` calls: the answer rendered as text or JSON, with
//! the verdict apart so the command can turn it into its exit code.

use super::{algorithm_name, connect, Agent, ClientError, Output};
use crate::grpc::proto::{VerifyFingerprintRequest, VerifyRequest};

/// A verdict and how to print it.
#[derive(Debug)]
pub struct Answer {
    /// The signature (and, for an anchor, the fingerprint) verified.
    pub valid: bool,
    /// The rendered answer.
    pub text: String,
}

/// `signet verify`: checks a signature over a message (CRC32C of both sent along).
pub async fn verify(
    agent: &Agent,
    mut request: VerifyRequest,
    output: Output,
) -> Result<Answer, ClientError> {
    request.message_crc32c = Some(crc32c::crc32c(&request.message));
    request.signature_crc32c = Some(crc32c::crc32c(&request.signature));
    let r = connect(agent).await?.verify(request).await?.into_inner();
    let text = match output {
        Output::Json | Output::Pem | Output::Jwk => serde_json::json!({
            "valid": r.valid,
            "key_id": r.key_id,
            "key_version": r.key_version,
            "algorithm": algorithm_name(r.algorithm),
        })
        .to_string(),
        Output::Hex | Output::Base64 => verdict_text(r.valid, r.key_version),
    };
    Ok(Answer {
        valid: r.valid,
        text,
    })
}

/// `signet verify-fingerprint`: checks an SWT3 anchor and its witness signature.
pub async fn verify_fingerprint(
    agent: &Agent,
    request: VerifyFingerprintRequest,
    output: Output,
) -> Result<Answer, ClientError> {
    let r = connect(agent)
        .await?
        .verify_fingerprint(request)
        .await?
        .into_inner();
    let text = match output {
        Output::Json | Output::Pem | Output::Jwk => serde_json::json!({
            "valid": r.valid,
            "fingerprint_matches": r.fingerprint_matches,
            "signature_matches": r.signature_matches,
            "expected_fingerprint": r.expected_fingerprint,
            "key_id": r.key_id,
            "key_version": r.key_version,
        })
        .to_string(),
        Output::Hex | Output::Base64 => {
            let mut text = verdict_text(r.valid, r.key_version);
            if !r.fingerprint_matches {
                text.push_str(&format!(
                    "\nthe fingerprint does not match the anchor fields (they give {})",
                    r.expected_fingerprint
                ));
            }
            if !r.signature_matches {
                text.push_str("\nthe signature is not the key's signature of this fingerprint");
            }
            text
        }
    };
    Ok(Answer {
        valid: r.valid,
        text,
    })
}

fn verdict_text(valid: bool, version: u32) -> String {
    if valid {
        format!("valid (key version {version})")
    } else {
        format!("invalid (key version {version} tried)")
    }
}
