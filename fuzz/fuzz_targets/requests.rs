//! Request handling on arbitrary bytes: each input is decoded as a SignRequest, a
//! FingerprintRequest and a SignBatchRequest (protobuf) and handed to the signer's checks and
//! HSM path (over a software Ed25519 key and a software HMAC key), and as a GetPublicKeyRequest
//! to the gRPC service. Every answer must be a result or an error; nothing panics. (Sign and
//! Fingerprint through the service need a caller identity, which only a real connection has;
//! the policy in front of them is covered by unit and integration tests.)
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use prost::Message;
use signet::backend::Backend;
use signet::Error;
use signet::grpc::proto::signer_server::Signer as _;
use signet::grpc::proto::{FingerprintRequest, GetPublicKeyRequest, SignBatchRequest, SignRequest};
use signet::grpc::service::{Access, SignerService};
use signet::SignatureFormat;
use signet::Policy;
use signet::signer::Signer;
use signet::Anchor;
use signet::{Algorithm, KeyDescriptor};
use signet::PublicKey;

struct SoftKeys(ed25519_dalek::SigningKey);

impl Backend for SoftKeys {
    fn keys(&self) -> Vec<KeyDescriptor> {
        vec![
            KeyDescriptor {
                id: "ed".into(),
                algorithm: Algorithm::Ed25519,
                public_key: Some(PublicKey::Ed25519(self.0.verifying_key())),
            },
            KeyDescriptor {
                id: "hmac".into(),
                algorithm: Algorithm::HmacSha256,
                public_key: None,
            },
        ]
    }

    fn sign(&self, key_id: &str, input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(match key_id {
            "ed" => ed25519_dalek::Signer::sign(&self.0, input).to_bytes().to_vec(),
            _ => vec![0x5a; 32],
        })
    }

    fn shutdown(&self) {}
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    signer: Arc<Signer>,
    service: SignerService,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let limits = signet::config::Limits {
            max_message_bytes: 1024,
            ..Default::default()
        };
        let backend = Arc::new(SoftKeys(ed25519_dalek::SigningKey::from_bytes(&[7; 32])));
        let signer = runtime
            .block_on(async { signet::signer::start(backend, 1, &limits) })
            .expect("signer");
        let signer = Arc::new(signer);
        let access = Access {
            policy: Arc::new(Policy::new(&[])),
            audit: None,
            metrics: Arc::new(signet::Metrics::new()),
        };
        let service = SignerService::new(Arc::clone(&signer), access, &limits);
        Harness {
            runtime,
            signer,
            service,
        }
    })
}

fn format(value: Option<i32>) -> SignatureFormat {
    match value {
        Some(2) => SignatureFormat::Der,
        _ => SignatureFormat::Raw,
    }
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let deadline = Instant::now() + Duration::from_secs(5);
    h.runtime.block_on(async {
        if let Ok(r) = SignRequest::decode(data) {
            let _ = h.signer.sign(&r.key_id, r.message, format(r.signature_format), deadline).await;
        }
        if let Ok(r) = FingerprintRequest::decode(data) {
            let anchor = Anchor::new(
                &r.tenant_id,
                &r.procedure_id,
                [r.factor_a, r.factor_b, r.factor_c],
                r.timestamp_ms,
                r.agent_id.as_deref(),
            );
            if let Ok(anchor) = anchor {
                let _ = h.signer.fingerprint(&r.key_id, anchor, deadline).await;
            }
        }
        if let Ok(r) = SignBatchRequest::decode(data) {
            let items = r
                .items
                .into_iter()
                .take(64)
                .map(|i| (i.key_id, i.message, format(i.signature_format)))
                .collect();
            let _ = h.signer.sign_batch(items, deadline).await;
        }
        if let Ok(request) = GetPublicKeyRequest::decode(data) {
            let _ = h.service.get_public_key(tonic::Request::new(request)).await;
        }
    });
});
