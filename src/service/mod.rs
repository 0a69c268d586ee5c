//! The agent's request pipeline, free of tonic: every RPC is an operation that passes one gate
//! ([`gate`]): refusals before the policy → the policy, matched once → the run, bounded by the
//! call's deadline → one audit record with a typed outcome → one count and log line. A batch is
//! a list of the same operations through the same gate. The gRPC layer only converts proto
//! messages to operations and answers back.

mod call;
mod delivery;
mod gate;
mod verify;

use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use call::{Call, Rpc};
pub use delivery::Delivery;
pub use verify::{AnchorChecked, Verified, VerifyFingerprintOp, VerifyOp};

use crate::audit::{AuditLog, Outcome, Record};
use crate::config::Limits;
use crate::error::Error;
use crate::key::{Algorithm, KeyDescriptor, SignatureFormat};
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::signer::{PublicKeyInfo, Signature, Signer, Witness};
use crate::swt3::Anchor;
use gate::Watch;

/// Serves the operations of every RPC through the gate.
pub struct Service {
    signer: Arc<Signer>,
    policy: Arc<Policy>,
    audit: Option<Arc<AuditLog>>,
    metrics: Arc<Metrics>,
    max_batch_items: usize,
    max_message_bytes: usize,
}

/// A `Sign` (or one `SignBatch` item) as the transport delivered it.
#[derive(Debug)]
pub struct SignOp {
    /// The key to sign with.
    pub key_id: String,
    /// The exact bytes to sign.
    pub message: Vec<u8>,
    /// The encoding asked for, or why the field could not be read.
    pub format: Result<SignatureFormat, Error>,
    /// The CRC32C the client sent with the message, if any.
    pub message_crc32c: Option<u32>,
}

/// A `Fingerprint` (or one `FingerprintBatch` item): the SWT3 anchor fields.
#[derive(Debug)]
pub struct FingerprintOp {
    /// The HMAC key.
    pub key_id: String,
    /// The SWT3 tenant.
    pub tenant_id: String,
    /// The SWT3 procedure.
    pub procedure_id: String,
    /// Factors a, b and c.
    pub factors: [f64; 3],
    /// Milliseconds since the epoch; 0 means now.
    pub timestamp_ms: i64,
    /// The agent id appended to the signed payload, if any.
    pub agent_id: Option<String>,
}

/// A signature, with what the answer echoes.
#[derive(Debug)]
pub struct Signed {
    /// The key that signed.
    pub key_id: String,
    /// The signature.
    pub signature: Signature,
    /// Whether the message's CRC32C was checked against the client's.
    pub crc32c_checked: bool,
}

/// A minted and signed SWT3 anchor, with its key.
#[derive(Debug)]
pub struct Minted {
    /// The HMAC key that signed.
    pub key_id: String,
    /// The fingerprint, its signature and timestamp.
    pub witness: Witness,
}

impl Service {
    /// Serves `signer`'s keys to the clients `policy` admits, auditing into `audit`.
    pub fn new(
        signer: Arc<Signer>,
        policy: Arc<Policy>,
        audit: Option<Arc<AuditLog>>,
        metrics: Arc<Metrics>,
        limits: &Limits,
    ) -> Self {
        Service {
            signer,
            policy,
            audit,
            metrics,
            max_batch_items: limits.max_batch_items,
            max_message_bytes: limits.max_message_bytes,
        }
    }

    /// Signs one message.
    pub async fn sign(&self, call: &Call, op: SignOp) -> Result<Signed, Error> {
        let key_id = op.key_id.clone();
        let mut watch = Watch::new(self, call, Rpc::Sign, Some(&key_id));
        let result = self.sign_one(call, op, &mut watch).await;
        watch.finish(result)
    }

    async fn sign_one(
        &self,
        call: &Call,
        op: SignOp,
        watch: &mut Watch<'_>,
    ) -> Result<Signed, Error> {
        let SignOp {
            key_id,
            message,
            format,
            message_crc32c,
        } = op;
        Self::precheck(call, &key_id)?;
        let mut record = self.admit(call, Rpc::Sign, &key_id, watch).await?;
        let message_sha256 = self.audit.is_some().then(|| sha256_hex(&message));
        let result = async {
            let format = format?;
            check_crc32c(&message, message_crc32c)?;
            self.signer
                .sign(&key_id, message, format, call.deadline)
                .await
        }
        .await;
        self.settle(&mut record, &result);
        if let Ok(signature) = &result {
            record.algorithm = Some(signature.algorithm.name());
            record.message_sha256 = message_sha256;
        }
        self.write(call, vec![record]).await?;
        Ok(Signed {
            key_id,
            signature: result?,
            crc32c_checked: message_crc32c.is_some(),
        })
    }

    /// Mints and signs one SWT3 anchor.
    pub async fn fingerprint(&self, call: &Call, op: FingerprintOp) -> Result<Minted, Error> {
        let key_id = op.key_id.clone();
        let mut watch = Watch::new(self, call, Rpc::Fingerprint, Some(&key_id));
        let result = self.fingerprint_one(call, &op, &mut watch).await;
        watch.finish(result)
    }

    async fn fingerprint_one(
        &self,
        call: &Call,
        op: &FingerprintOp,
        watch: &mut Watch<'_>,
    ) -> Result<Minted, Error> {
        Self::precheck(call, &op.key_id)?;
        let mut record = self
            .admit(call, Rpc::Fingerprint, &op.key_id, watch)
            .await?;
        let result = async {
            let anchor = anchor_of(op)?;
            self.signer
                .fingerprint(&op.key_id, anchor, call.deadline)
                .await
        }
        .await;
        self.settle(&mut record, &result);
        if let Ok(witness) = &result {
            record.algorithm = Some(Algorithm::HmacSha256.name());
            record.message_sha256 = Some(payload_sha256(witness, op.agent_id.as_deref()));
        }
        self.write(call, vec![record]).await?;
        Ok(Minted {
            key_id: op.key_id.clone(),
            witness: result?,
        })
    }

    /// Signs every item: each gets its own answer and its own record. Items not finished by
    /// the deadline answer `DEADLINE_EXCEEDED`; those not started by then are never started.
    pub async fn sign_batch(
        &self,
        call: &Call,
        ops: Vec<SignOp>,
    ) -> Result<Vec<Result<Signed, Error>>, Error> {
        let watch = Watch::new(self, call, Rpc::SignBatch, None);
        let result = self.sign_items(call, ops).await;
        watch.finish(result)
    }

    async fn sign_items(
        &self,
        call: &Call,
        ops: Vec<SignOp>,
    ) -> Result<Vec<Result<Signed, Error>>, Error> {
        self.check_batch(call, ops.len())?;
        let total = ops
            .iter()
            .fold(0usize, |sum, op| sum.saturating_add(op.message.len()));
        check_batch_bytes(total, self.max_message_bytes)?;
        let mut items = Vec::with_capacity(ops.len());
        let mut work = Vec::new();
        for op in ops {
            let SignOp {
                key_id,
                message,
                format,
                message_crc32c,
            } = op;
            let (mut record, admitted) = self.admit_item(call, Rpc::SignBatch, &key_id);
            let checked = admitted.and_then(|()| {
                let format = format?;
                check_crc32c(&message, message_crc32c)?;
                Ok(format)
            });
            let early = match checked {
                Ok(format) => {
                    if self.audit.is_some() {
                        record.message_sha256 = Some(sha256_hex(&message));
                    }
                    work.push((key_id.clone(), message, format));
                    None
                }
                Err(e) => Some(e),
            };
            items.push(Item {
                record,
                key_id,
                crc32c_checked: message_crc32c.is_some(),
                early,
            });
        }
        let signed = self.signer.sign_batch(work, call.deadline).await;
        let results = settle_items(self, &mut items, signed, |item, signature: Signature| {
            item.record.algorithm = Some(signature.algorithm.name());
            Signed {
                key_id: item.key_id.clone(),
                signature,
                crc32c_checked: item.crc32c_checked,
            }
        });
        self.finish_items(call, Rpc::SignBatch, items).await?;
        Ok(results)
    }

    /// Mints and signs every anchor, as [`sign_batch`](Self::sign_batch) signs messages.
    pub async fn fingerprint_batch(
        &self,
        call: &Call,
        ops: Vec<FingerprintOp>,
    ) -> Result<Vec<Result<Minted, Error>>, Error> {
        let watch = Watch::new(self, call, Rpc::FingerprintBatch, None);
        let result = self.fingerprint_items(call, ops).await;
        watch.finish(result)
    }

    async fn fingerprint_items(
        &self,
        call: &Call,
        ops: Vec<FingerprintOp>,
    ) -> Result<Vec<Result<Minted, Error>>, Error> {
        self.check_batch(call, ops.len())?;
        let mut items = Vec::with_capacity(ops.len());
        let mut work = Vec::new();
        for op in &ops {
            let (record, admitted) = self.admit_item(call, Rpc::FingerprintBatch, &op.key_id);
            let early = match admitted.and_then(|()| anchor_of(op)) {
                Ok(anchor) => {
                    work.push((op.key_id.clone(), anchor));
                    None
                }
                Err(e) => Some(e),
            };
            items.push(Item {
                record,
                key_id: op.key_id.clone(),
                crc32c_checked: false,
                early,
            });
        }
        let minted = self.signer.fingerprint_batch(work, call.deadline).await;
        let agent_ids: Vec<Option<&str>> = ops.iter().map(|op| op.agent_id.as_deref()).collect();
        let mut agent_ids = agent_ids.into_iter();
        let results = settle_items(self, &mut items, minted, |item, witness: Witness| {
            item.record.algorithm = Some(Algorithm::HmacSha256.name());
            Minted {
                key_id: item.key_id.clone(),
                witness,
            }
        });
        for (item, result) in items.iter_mut().zip(&results) {
            let agent_id = agent_ids.next().flatten();
            if let Ok(minted) = result {
                item.record.message_sha256 = Some(payload_sha256(&minted.witness, agent_id));
            }
        }
        self.finish_items(call, Rpc::FingerprintBatch, items)
            .await?;
        Ok(results)
    }

    /// The public key of an asymmetric key: of version `key_version`, or of its primary
    /// version; with the JWK Set of every version that may verify.
    pub fn public_key(
        &self,
        call: &Call,
        key_id: &str,
        key_version: Option<u32>,
    ) -> Result<PublicKeyInfo, Error> {
        let mut watch = Watch::new(self, call, Rpc::GetPublicKey, Some(key_id));
        let result = self
            .allowed(call, Rpc::GetPublicKey, key_id, &mut watch)
            .and_then(|()| self.signer.public_key(key_id, key_version));
        watch.finish(result)
    }

    /// The served keys, sorted by id.
    pub fn list_keys(&self, call: &Call) -> Result<Vec<KeyDescriptor>, Error> {
        let mut watch = Watch::new(self, call, Rpc::ListKeys, None);
        let result = self
            .allowed(call, Rpc::ListKeys, "", &mut watch)
            .map(|()| self.signer.keys());
        watch.finish(result)
    }

    /// The policy check of the calls that are not audited.
    fn allowed(
        &self,
        call: &Call,
        rpc: Rpc,
        key_id: &str,
        watch: &mut Watch<'_>,
    ) -> Result<(), Error> {
        // A call whose deadline has passed is answered DEADLINE_EXCEEDED, as every RPC is.
        Self::in_time(call)?;
        let client = self
            .policy
            .authorize(&call.caller.identity, rpc.operation(), key_id)?;
        watch.client(client);
        Ok(())
    }

    /// Refuses a batch that is late or has more items than allowed (no record: nothing was
    /// attempted).
    fn check_batch(&self, call: &Call, items: usize) -> Result<(), Error> {
        Self::in_time(call)?;
        if items > self.max_batch_items {
            return Err(Error::ResourceExhausted(format!(
                "the batch has {items} items; at most {} are allowed",
                self.max_batch_items
            )));
        }
        Ok(())
    }

    /// Writes a batch's records (one per item, one sync) and counts each item.
    async fn finish_items(&self, call: &Call, rpc: Rpc, items: Vec<Item>) -> Result<(), Error> {
        let counted: Vec<(Rpc, String, &'static str)> = items
            .iter()
            .map(|i| (rpc, i.record.key_id.clone(), i.record.code))
            .collect();
        self.write(call, items.into_iter().map(|i| i.record).collect())
            .await?;
        self.count_items(&counted);
        Ok(())
    }

    /// Stops taking HSM work and closes the HSM (see [`Signer::shutdown`]).
    pub fn signer(&self) -> &Arc<Signer> {
        &self.signer
    }
}

/// One batch item on its way through the gate: its record, and the error found before the
/// HSM, if any.
struct Item {
    record: Record,
    key_id: String,
    crc32c_checked: bool,
    early: Option<Error>,
}

/// Pairs each item with its result: its early error, or the next HSM result (in order), and
/// settles its record.
fn settle_items<T, R>(
    service: &Service,
    items: &mut [Item],
    done: Vec<Result<T, Error>>,
    mut answer: impl FnMut(&mut Item, T) -> R,
) -> Vec<Result<R, Error>> {
    let mut done = done.into_iter();
    items
        .iter_mut()
        .map(|item| {
            let result = match item.early.take() {
                Some(e) => Err(e),
                None => done
                    .next()
                    .unwrap_or_else(|| Err(Error::Internal("a batch item got no result".into()))),
            };
            if item.record.outcome != Outcome::Denied {
                service.settle(&mut item.record, &result);
            }
            result.map(|value| answer(item, value))
        })
        .collect()
}

/// Refuses, with `RESOURCE_EXHAUSTED` and before any item is authorised or audited, a
/// `SignBatch` whose messages total more than `max_message_bytes`: they count together, as one
/// `Sign`'s message does.
///
/// `max_message_bytes` is what an operator allows one call to make the agent hold and sign.
/// Counted per item, one batch could carry `max_batch_items` times that (1000 MiB with the
/// defaults), more than `limits.max_queued_bytes` holds, so an accepted batch would fail item
/// by item on an idle agent. Counted together, a batch within the bound always fits the
/// queue's byte budget, and the encoded request fits the transport's decoding limit
/// (`max_message_bytes` + 64 KiB for key ids and framing) unless its key ids alone take more.
fn check_batch_bytes(total: usize, max_message_bytes: usize) -> Result<(), Error> {
    if total > max_message_bytes {
        return Err(Error::ResourceExhausted(format!(
            "the batch's messages total {total} bytes, over this agent's limit of \
             {max_message_bytes} bytes for one request; nothing was signed"
        )));
    }
    Ok(())
}

/// Refuses a message whose CRC32C is not the `expected` one the client sent, if it sent one.
fn check_crc32c(message: &[u8], expected: Option<u32>) -> Result<(), Error> {
    let Some(expected) = expected else {
        return Ok(());
    };
    let received = crc32c::crc32c(message);
    if received != expected {
        return Err(Error::ChecksumMismatch { expected, received });
    }
    Ok(())
}

/// The anchor of a Fingerprint operation, checked.
fn anchor_of(op: &FingerprintOp) -> Result<Anchor<'_>, Error> {
    Anchor::new(
        &op.tenant_id,
        &op.procedure_id,
        op.factors,
        op.timestamp_ms,
        op.agent_id.as_deref(),
    )
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The SHA-256 of the payload an SWT3 witness signed (`fingerprint[:agent_id]`).
fn payload_sha256(witness: &Witness, agent_id: Option<&str>) -> String {
    match agent_id {
        Some(agent) => sha256_hex(format!("{}:{agent}", witness.fingerprint).as_bytes()),
        None => sha256_hex(witness.fingerprint.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn the_messages_of_a_batch_count_together() {
        assert!(check_batch_bytes(0, 100).is_ok());
        assert!(check_batch_bytes(100, 100).is_ok());
        let err = check_batch_bytes(101, 100).expect_err("over the bound");
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted);
        assert_eq!(
            err.to_string(),
            "the batch's messages total 101 bytes, over this agent's limit of 100 bytes for \
             one request; nothing was signed"
        );
    }
}
