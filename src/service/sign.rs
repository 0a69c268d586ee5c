//! `Sign` and `SignBatch` through the gate: a message signed with the key's primary version,
//! and a batch of them, each item checked, authorised, audited and answered on its own.

use super::batch::{settle_items, Item};
use super::gate::Watch;
use super::{check_crc32c, sha256_hex, Call, Rpc, Service};
use crate::error::Error;
use crate::key::SignatureFormat;
use crate::signer::Signature;

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

impl Service {
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
            record.key_version = Some(signature.key_version);
            record.message_sha256 = message_sha256;
        }
        self.write(call, vec![record]).await?;
        Ok(Signed {
            key_id,
            signature: result?,
            crc32c_checked: message_crc32c.is_some(),
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
            item.record.key_version = Some(signature.key_version);
            Signed {
                key_id: item.key_id.clone(),
                signature,
                crc32c_checked: item.crc32c_checked,
            }
        });
        self.finish_items(call, Rpc::SignBatch, items).await?;
        Ok(results)
    }
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
