//! Request handling on arbitrary bytes: each input is decoded as a SignRequest and as a
//! FingerprintRequest (protobuf) and handed to the real gRPC service over a software Ed25519
//! key and a software HMAC key. Every answer must be a status or a response; nothing panics.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use prost::Message;
use signet::backend::Backend;
use signet::error::Error;
use signet::grpc::proto::signer_server::Signer as _;
use signet::grpc::proto::{FingerprintRequest, GetPublicKeyRequest, SignRequest};
use signet::grpc::service::SignerService;
use signet::key::{Algorithm, KeyDescriptor};
use signet::public_key::PublicKey;

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
        let service = SignerService::new(Arc::new(signer), Duration::from_secs(5));
        Harness { runtime, service }
    })
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    h.runtime.block_on(async {
        if let Ok(request) = SignRequest::decode(data) {
            let _ = h.service.sign(tonic::Request::new(request)).await;
        }
        if let Ok(request) = FingerprintRequest::decode(data) {
            let _ = h.service.fingerprint(tonic::Request::new(request)).await;
        }
        if let Ok(request) = GetPublicKeyRequest::decode(data) {
            let _ = h.service.get_public_key(tonic::Request::new(request)).await;
        }
    });
});
