//! The gRPC requests the tests send most, built one way for every test binary.

use signet::grpc::proto::signer_client::SignerClient;
use signet::grpc::proto::{
    FingerprintRequest, GetPublicKeyRequest, GetPublicKeyResponse, SignRequest,
};
use tonic::transport::Channel;

/// A Sign request for `message` with `key_id`, every other field left out.
pub fn sign_request(key_id: &str, message: &[u8]) -> SignRequest {
    SignRequest {
        key_id: key_id.into(),
        message: message.to_vec(),
        ..Default::default()
    }
}

/// A Sign request with an explicit `signature_format` (or none) and no CRC32C.
pub fn sign_with_format(key_id: &str, message: Vec<u8>, format: Option<i32>) -> SignRequest {
    SignRequest {
        key_id: key_id.into(),
        message,
        signature_format: format,
        message_crc32c: None,
    }
}

/// The SWT3 SDK's first published vector (tenant `ENCLAVE_ALPHA`, procedure `AI-INF.1`,
/// factors 1, 1, 0), with agent `agent-007`, for `key_id`: its fingerprint is `f7f20b581cbf`.
pub fn published_fingerprint_request(key_id: &str) -> FingerprintRequest {
    FingerprintRequest {
        key_id: key_id.into(),
        tenant_id: "ENCLAVE_ALPHA".into(),
        procedure_id: "AI-INF.1".into(),
        factor_a: 1.0,
        factor_b: 1.0,
        factor_c: 0.0,
        timestamp_ms: 1774800000000,
        agent_id: Some("agent-007".into()),
    }
}

/// GetPublicKey for `key_id`, which must succeed.
pub async fn public_key(client: &mut SignerClient<Channel>, key_id: &str) -> GetPublicKeyResponse {
    client
        .get_public_key(GetPublicKeyRequest {
            key_id: key_id.into(),
            key_version: None,
        })
        .await
        .expect("GetPublicKey")
        .into_inner()
}
