//! Request handling on arbitrary bytes: each input is decoded as every request message of the
//! API (protobuf) and, where it decodes, converted to its operation and run through the
//! service's gate (policy, limits, SWT3 formula, the HSM path over a software Ed25519 key and
//! a software HMAC key, verify-after-sign, the audit log). Every answer must be a result or an
//! error; nothing panics, and every signature the service returns verifies.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use ed25519_dalek::Verifier as _;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use signet::backend::Registry;
use signet::grpc::convert;
use signet::grpc::proto::{
    FingerprintBatchRequest, FingerprintRequest, GetPublicKeyRequest, SignBatchRequest,
    SignRequest, VerifyBatchRequest, VerifyFingerprintBatchRequest, VerifyFingerprintRequest,
    VerifyRequest,
};
use signet::service::{Call, Service};
use signet::{Algorithm, Backend, Caller, Config, Error, Identity, KeyDescriptor, PublicKey};

const HMAC_KEY: [u8; 32] = [0x5a; 32];

/// An Ed25519 key and an HMAC-SHA256 key held in memory, standing in for a token.
struct SoftKeys {
    ed: ed25519_dalek::SigningKey,
    registry: Arc<Registry>,
}

impl SoftKeys {
    fn tag(input: &[u8]) -> Vec<u8> {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&HMAC_KEY).expect("any length");
        mac.update(input);
        mac.finalize().into_bytes().to_vec()
    }
}

impl Backend for SoftKeys {
    fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    fn sign(&self, key_id: &str, _version: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(match key_id {
            "ed" => ed25519_dalek::Signer::sign(&self.ed, input).to_bytes().to_vec(),
            _ => Self::tag(input),
        })
    }

    fn rescan(&self) -> Result<(), Error> {
        Ok(())
    }

    fn verify(&self, _key: &str, _version: u32, input: &[u8], sig: &[u8]) -> Result<bool, Error> {
        Ok(Self::tag(input) == sig)
    }

    fn shutdown(&self) {}
}

struct Harness {
    runtime: tokio::runtime::Runtime,
    service: Service,
    ed: ed25519_dalek::VerifyingKey,
    _dir: std::path::PathBuf,
}

const CONFIG: &str = r#"
[[listen]]
type = "unix"
path = "/nonexistent/signet-fuzz.sock"

[backend]
type = "pkcs11"
module = "/nonexistent/module.so"
token = { label = "fuzz" }
pin = { env = "SIGNET_FUZZ_PIN" }

[[clients]]
name = "fuzzer"
uid = 0
keys = ["*"]
operations = ["sign", "fingerprint", "verify"]

[limits]
max_message_bytes = 1024
max_batch_items = 64

[audit]
fsync = "interval"
"#;

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("signet-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("audit directory");
        let text = format!("{CONFIG}path = {:?}\n", dir.join("audit.jsonl"));
        let config = Config::parse(&text).expect("the fuzz configuration parses");
        let audit = config.audit.as_ref().expect("an audit section");
        let audit = signet::audit::AuditLog::open(audit).expect("audit log");
        let ed = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let registry = Arc::new(Registry::new([
            KeyDescriptor::new(
                "ed",
                Algorithm::Ed25519,
                Some(PublicKey::Ed25519(ed.verifying_key())),
            ),
            KeyDescriptor::new("hmac", Algorithm::HmacSha256, None),
        ]));
        let verifying = ed.verifying_key();
        let backend = Arc::new(SoftKeys { ed, registry });
        let service = runtime.block_on(async {
            let signer = signet::signer::start(backend, 1, &config.limits).expect("signer");
            Service::new(
                Arc::new(signer),
                Arc::new(signet::Policy::new(&config.clients)),
                Some(Arc::new(audit)),
                Arc::new(signet::Metrics::new()),
                &config.limits,
            )
        });
        Harness {
            runtime,
            service,
            ed: verifying,
            _dir: dir,
        }
    })
}

fn call() -> Call {
    let arrived = Instant::now();
    Call {
        caller: Caller {
            identity: Identity::Unix {
                uid: 0,
                gid: 0,
                pid: None,
            },
            listener: "unix:fuzz".into(),
        },
        arrived,
        deadline: arrived + Duration::from_secs(5),
        delivery: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let h = harness();
    let s = &h.service;
    h.runtime.block_on(async {
        if let Ok(r) = SignRequest::decode(data) {
            let message = r.message.clone();
            if let Ok(signed) = s.sign(&call(), convert::sign_op(r)).await {
                if signed.key_id == "ed" {
                    let sig = ed25519_dalek::Signature::from_slice(&signed.signature.bytes)
                        .expect("an Ed25519 signature is 64 bytes");
                    assert!(h.ed.verify(&message, &sig).is_ok(), "a returned signature verifies");
                }
            }
        }
        if let Ok(r) = FingerprintRequest::decode(data) {
            let _ = s.fingerprint(&call(), convert::fingerprint_op(r)).await;
        }
        if let Ok(r) = VerifyRequest::decode(data) {
            let _ = s.verify(&call(), convert::verify_op(r)).await;
        }
        if let Ok(r) = VerifyFingerprintRequest::decode(data) {
            let _ = s
                .verify_fingerprint(&call(), convert::verify_fingerprint_op(r))
                .await;
        }
        if let Ok(r) = SignBatchRequest::decode(data) {
            let ops = r.items.into_iter().map(convert::sign_op).collect();
            let _ = s.sign_batch(&call(), ops).await;
        }
        if let Ok(r) = FingerprintBatchRequest::decode(data) {
            let ops = r.items.into_iter().map(convert::fingerprint_op).collect();
            let _ = s.fingerprint_batch(&call(), ops).await;
        }
        if let Ok(r) = VerifyBatchRequest::decode(data) {
            let ops = r.items.into_iter().map(convert::verify_op).collect();
            let _ = s.verify_batch(&call(), ops).await;
        }
        if let Ok(r) = VerifyFingerprintBatchRequest::decode(data) {
            let ops = r
                .items
                .into_iter()
                .map(convert::verify_fingerprint_op)
                .collect();
            let _ = s.verify_fingerprint_batch(&call(), ops).await;
        }
        if let Ok(r) = GetPublicKeyRequest::decode(data) {
            if let Ok(info) = s.public_key(&call(), &r.key_id, r.key_version) {
                let _ = convert::public_key_response(info);
            }
        }
    });
});
