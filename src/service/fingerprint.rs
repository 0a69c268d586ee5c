//! `Fingerprint` and `FingerprintBatch` through the gate: an SWT3 anchor minted and signed with
//! the HMAC key's primary version, and a batch of them.

use super::batch::{settle_items, Item};
use super::gate::Watch;
use super::{sha256_hex, Call, Rpc, Service};
use crate::error::Error;
use crate::signer::Witness;
use crate::swt3::Anchor;

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

/// A minted and signed SWT3 anchor, with its key.
#[derive(Debug)]
pub struct Minted {
    /// The HMAC key that signed.
    pub key_id: String,
    /// The fingerprint, its signature and timestamp.
    pub witness: Witness,
}

impl Service {
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
            record.algorithm = Some(witness.algorithm.name());
            record.key_version = Some(witness.key_version);
            record.message_sha256 = Some(payload_sha256(witness, op.agent_id.as_deref()));
        }
        self.write(call, vec![record]).await?;
        Ok(Minted {
            key_id: op.key_id.clone(),
            witness: result?,
        })
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
            item.record.algorithm = Some(witness.algorithm.name());
            item.record.key_version = Some(witness.key_version);
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
}

/// The anchor of a Fingerprint operation, checked.
pub(super) fn anchor_of(op: &FingerprintOp) -> Result<Anchor<'_>, Error> {
    Anchor::new(
        &op.tenant_id,
        &op.procedure_id,
        op.factors,
        op.timestamp_ms,
        op.agent_id.as_deref(),
    )
}

/// The SHA-256 of the payload an SWT3 witness signed (`fingerprint[:agent_id]`).
fn payload_sha256(witness: &Witness, agent_id: Option<&str>) -> String {
    match agent_id {
        Some(agent) => sha256_hex(format!("{}:{agent}", witness.fingerprint).as_bytes()),
        None => sha256_hex(witness.fingerprint.as_bytes()),
    }
}
