//! The agent's request pipeline, free of tonic: every RPC is an operation that passes one gate
//! ([`gate`]): refusals before the policy → the policy, matched once → the run, bounded by the
//! call's deadline → one audit record with a typed outcome → one count and log line. A batch is
//! a list of the same operations through the same gate. The gRPC layer only converts proto
//! messages to operations and answers back.

mod batch;
mod call;
mod delivery;
mod fingerprint;
mod gate;
mod sign;
mod verify;

use std::sync::Arc;

use sha2::{Digest, Sha256};

pub use call::{Call, Rpc};
pub use delivery::Delivery;
pub use fingerprint::{FingerprintOp, Minted};
pub use sign::{SignOp, Signed};
pub use verify::{AnchorChecked, Verified, VerifyFingerprintOp, VerifyOp};

use crate::audit::AuditLog;
use crate::config::Limits;
use crate::error::Error;
use crate::key::KeyDescriptor;
use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::signer::{PublicKeyInfo, Signer};
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

    /// Stops taking HSM work and closes the HSM (see [`Signer::shutdown`]).
    pub fn signer(&self) -> &Arc<Signer> {
        &self.signer
    }
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

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
