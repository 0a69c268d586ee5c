//! `Verify`, `VerifyFingerprint` and their batches through the gate: the `verify` grant, one
//! audit record per check with its verdict (valid or invalid; the message hashed, never
//! stored), the client's rate limit, and the batch bounds of `SignBatch`.

use super::batch::{settle_items, Item};
use super::fingerprint::anchor_of;
use super::gate::Watch;
use super::{sha256_hex, Call, FingerprintOp, Rpc, Service};
use crate::audit::Verdict as Audited;
use crate::error::Error;
use crate::key::SignatureFormat;
use crate::signer::{Checked, Claim, Verdict, VerifyItem};

/// A `Verify` (or one `VerifyBatch` item) as the transport delivered it.
#[derive(Debug)]
pub struct VerifyOp {
    /// The key to verify with.
    pub key_id: String,
    /// The exact bytes that were signed.
    pub message: Vec<u8>,
    /// The signature to check.
    pub signature: Vec<u8>,
    /// The encoding of `signature`, or why the field could not be read.
    pub format: Result<SignatureFormat, Error>,
    /// The key version asked for, if any.
    pub key_version: Option<u32>,
    /// The CRC32C the client sent with the message, if any.
    pub message_crc32c: Option<u32>,
    /// The CRC32C the client sent with the signature, if any.
    pub signature_crc32c: Option<u32>,
}

/// A `VerifyFingerprint` (or one batch item): the anchor fields and the witness's claim.
#[derive(Debug)]
pub struct VerifyFingerprintOp {
    /// The HMAC key and the anchor fields (`timestamp_ms` required).
    pub anchor: FingerprintOp,
    /// The fingerprint the witness claims.
    pub fingerprint: String,
    /// The witness's signature, hex.
    pub signature: String,
    /// The key version asked for, if any.
    pub key_version: Option<u32>,
}

/// A verdict, with what the answer echoes.
#[derive(Debug)]
pub struct Verified {
    /// The key.
    pub key_id: String,
    /// Valid or not, and the version.
    pub verdict: Verdict,
    /// Whether the message's CRC32C was checked against the client's.
    pub message_crc32c_checked: bool,
    /// Whether the signature's CRC32C was checked against the client's.
    pub signature_crc32c_checked: bool,
}

/// What VerifyFingerprint found, with its key.
#[derive(Debug)]
pub struct AnchorChecked {
    /// The HMAC key.
    pub key_id: String,
    /// Both parts of the check.
    pub checked: Checked,
}

impl Service {
    /// Checks one signature.
    pub async fn verify(&self, call: &Call, op: VerifyOp) -> Result<Verified, Error> {
        let key_id = op.key_id.clone();
        let mut watch = Watch::new(self, call, Rpc::Verify, Some(&key_id));
        let result = self.verify_one(call, op, &mut watch).await;
        watch.finish(result)
    }

    async fn verify_one(
        &self,
        call: &Call,
        op: VerifyOp,
        watch: &mut Watch<'_>,
    ) -> Result<Verified, Error> {
        Self::precheck(call, &op.key_id)?;
        let mut record = self.admit(call, Rpc::Verify, &op.key_id, watch).await?;
        let message_sha256 = self.audit.is_some().then(|| sha256_hex(&op.message));
        let (key_id, crcs) = (op.key_id.clone(), crcs_of(&op));
        let result = async {
            let item = verify_item(op)?;
            self.signer.verify(item, call.deadline).await
        }
        .await;
        self.settle(&mut record, &result);
        if let Ok(verdict) = &result {
            record.algorithm = Some(verdict.algorithm.name());
            record.key_version = Some(verdict.key_version);
            record.message_sha256 = message_sha256;
            record.verdict = Some(Audited::of(verdict.valid));
        }
        self.write(call, vec![record]).await?;
        Ok(Verified {
            key_id,
            verdict: result?,
            message_crc32c_checked: crcs.0,
            signature_crc32c_checked: crcs.1,
        })
    }

    /// Checks one SWT3 anchor.
    pub async fn verify_fingerprint(
        &self,
        call: &Call,
        op: VerifyFingerprintOp,
    ) -> Result<AnchorChecked, Error> {
        let key_id = op.anchor.key_id.clone();
        let mut watch = Watch::new(self, call, Rpc::VerifyFingerprint, Some(&key_id));
        let result = self.verify_fingerprint_one(call, &op, &mut watch).await;
        watch.finish(result)
    }

    async fn verify_fingerprint_one(
        &self,
        call: &Call,
        op: &VerifyFingerprintOp,
        watch: &mut Watch<'_>,
    ) -> Result<AnchorChecked, Error> {
        let key_id = &op.anchor.key_id;
        Self::precheck(call, key_id)?;
        let mut record = self
            .admit(call, Rpc::VerifyFingerprint, key_id, watch)
            .await?;
        let result = async {
            let claim = claim_of(op)?;
            self.signer
                .verify_fingerprint(key_id, claim, call.deadline)
                .await
        }
        .await;
        self.settle(&mut record, &result);
        if let Ok(checked) = &result {
            note_anchor(&mut record, op, checked);
        }
        self.write(call, vec![record]).await?;
        Ok(AnchorChecked {
            key_id: key_id.clone(),
            checked: result?,
        })
    }

    /// Checks every signature: each item gets its own answer and its own record, as
    /// [`sign_batch`](Self::sign_batch) signs.
    pub async fn verify_batch(
        &self,
        call: &Call,
        ops: Vec<VerifyOp>,
    ) -> Result<Vec<Result<Verified, Error>>, Error> {
        let watch = Watch::new(self, call, Rpc::VerifyBatch, None);
        let result = self.verify_items(call, ops).await;
        watch.finish(result)
    }

    async fn verify_items(
        &self,
        call: &Call,
        ops: Vec<VerifyOp>,
    ) -> Result<Vec<Result<Verified, Error>>, Error> {
        self.check_batch(call, ops.len())?;
        let total = ops
            .iter()
            .fold(0usize, |sum, op| sum.saturating_add(op.message.len()));
        if total > self.max_message_bytes {
            return Err(Error::ResourceExhausted(format!(
                "the batch's messages total {total} bytes, over this agent's limit of {} bytes \
                 for one request; nothing was checked",
                self.max_message_bytes
            )));
        }
        let mut items = Vec::with_capacity(ops.len());
        let mut crcs = Vec::with_capacity(ops.len());
        let mut work = Vec::new();
        for op in ops {
            let (mut record, admitted) = self.admit_item(call, Rpc::VerifyBatch, &op.key_id);
            if self.audit.is_some() {
                record.message_sha256 = Some(sha256_hex(&op.message));
            }
            let key_id = op.key_id.clone();
            crcs.push(crcs_of(&op));
            let early = match admitted.and_then(|()| verify_item(op)) {
                Ok(item) => {
                    work.push(item);
                    None
                }
                Err(e) => {
                    record.message_sha256 = None;
                    Some(e)
                }
            };
            items.push(Item {
                record,
                key_id,
                crc32c_checked: false,
                early,
            });
        }
        let verdicts = self.signer.verify_batch(work, call.deadline).await;
        let mut crcs = crcs.into_iter();
        let results = settle_items(self, &mut items, verdicts, |item, verdict: Verdict| {
            item.record.algorithm = Some(verdict.algorithm.name());
            item.record.key_version = Some(verdict.key_version);
            item.record.verdict = Some(Audited::of(verdict.valid));
            Verified {
                key_id: item.key_id.clone(),
                verdict,
                message_crc32c_checked: false,
                signature_crc32c_checked: false,
            }
        });
        let results = results
            .into_iter()
            .map(|r| {
                let (message, signature) = crcs.next().unwrap_or_default();
                r.map(|v| Verified {
                    message_crc32c_checked: message,
                    signature_crc32c_checked: signature,
                    ..v
                })
            })
            .collect();
        self.finish_items(call, Rpc::VerifyBatch, items).await?;
        Ok(results)
    }

    /// Checks every SWT3 anchor, each with its own answer and record.
    pub async fn verify_fingerprint_batch(
        &self,
        call: &Call,
        ops: Vec<VerifyFingerprintOp>,
    ) -> Result<Vec<Result<AnchorChecked, Error>>, Error> {
        let watch = Watch::new(self, call, Rpc::VerifyFingerprintBatch, None);
        let result = self.verify_fingerprint_items(call, ops).await;
        watch.finish(result)
    }

    async fn verify_fingerprint_items(
        &self,
        call: &Call,
        ops: Vec<VerifyFingerprintOp>,
    ) -> Result<Vec<Result<AnchorChecked, Error>>, Error> {
        self.check_batch(call, ops.len())?;
        let mut items = Vec::with_capacity(ops.len());
        let mut work = Vec::new();
        for op in &ops {
            let key_id = &op.anchor.key_id;
            let (record, admitted) = self.admit_item(call, Rpc::VerifyFingerprintBatch, key_id);
            let early = match admitted.and_then(|()| claim_of(op)) {
                Ok(claim) => {
                    work.push((key_id.clone(), claim));
                    None
                }
                Err(e) => Some(e),
            };
            items.push(Item {
                record,
                key_id: key_id.clone(),
                crc32c_checked: false,
                early,
            });
        }
        let checked = self
            .signer
            .verify_fingerprint_batch(work, call.deadline)
            .await;
        let results = settle_items(self, &mut items, checked, |item, checked: Checked| {
            AnchorChecked {
                key_id: item.key_id.clone(),
                checked,
            }
        });
        for ((item, result), op) in items.iter_mut().zip(&results).zip(&ops) {
            if let Ok(done) = result {
                note_anchor(&mut item.record, op, &done.checked);
            }
        }
        self.finish_items(call, Rpc::VerifyFingerprintBatch, items)
            .await?;
        Ok(results)
    }
}

/// The CRC32C flags an answer carries: whether each was sent (and, if the call got that far,
/// matched).
fn crcs_of(op: &VerifyOp) -> (bool, bool) {
    (op.message_crc32c.is_some(), op.signature_crc32c.is_some())
}

/// The signer's item, after the field checks the transport leaves to the gate.
fn verify_item(op: VerifyOp) -> Result<VerifyItem, Error> {
    let format = op.format?;
    check_crc32c("message", &op.message, op.message_crc32c)?;
    check_crc32c("signature", &op.signature, op.signature_crc32c)?;
    Ok(VerifyItem {
        key_id: op.key_id,
        message: op.message,
        signature: op.signature,
        format,
        key_version: op.key_version,
    })
}

/// Refuses a field whose CRC32C is not the one the client sent, naming it.
fn check_crc32c(field: &str, bytes: &[u8], expected: Option<u32>) -> Result<(), Error> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let received = crc32c::crc32c(bytes);
    if received != expected {
        return Err(Error::InvalidArgument(format!(
            "{field}_crc32c does not match the {field} received (got {received:#010x}, \
             expected {expected:#010x}): the request was corrupted in transit; nothing was \
             checked"
        )));
    }
    Ok(())
}

/// The claim of a VerifyFingerprint operation, its anchor checked.
fn claim_of(op: &VerifyFingerprintOp) -> Result<Claim<'_>, Error> {
    Ok(Claim {
        anchor: anchor_of(&op.anchor)?,
        fingerprint: &op.fingerprint,
        signature: &op.signature,
        key_version: op.key_version,
    })
}

/// What an answered VerifyFingerprint's record says: the algorithm, the SHA-256 of the payload
/// checked (built from the claimed fingerprint), and the verdict.
fn note_anchor(record: &mut crate::audit::Record, op: &VerifyFingerprintOp, checked: &Checked) {
    let payload = match &op.anchor.agent_id {
        Some(agent) => format!("{}:{agent}", op.fingerprint),
        None => op.fingerprint.clone(),
    };
    record.algorithm = Some(checked.algorithm.name());
    record.key_version = Some(checked.key_version);
    record.message_sha256 = Some(sha256_hex(payload.as_bytes()));
    record.verdict = Some(Audited::of(checked.valid()));
}
