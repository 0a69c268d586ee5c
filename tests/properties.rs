//! Bad input at scale: property-based tests (proptest) over Sign and Fingerprint through the real
//! gRPC service, in this process, over a backend of software keys (so thousands of cases run in
//! seconds and every answer can be checked). Every answer is either a signature that verifies /
//! the fingerprint and signature the SWT3 SDK computes, or one of the documented error codes with
//! a message; nothing panics.

mod common;

use std::sync::Arc;

use common::in_process::InProcessAgent;
use hmac::Mac;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::ecdsa::signature::Verifier as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use signet::backend::{Backend, Registry};
use signet::grpc::proto::{FingerprintRequest, SignRequest};
use signet::swt3::number;
use signet::Error;
use signet::PublicKey;
use signet::{Algorithm, KeyDescriptor};
use tonic::Code;

const LIMIT: usize = 4096;
const SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// Software keys behind the backend trait: `ed`, `ec` and `hmac`.
struct SoftKeys {
    ed: ed25519_dalek::SigningKey,
    ec: p256::ecdsa::SigningKey,
    registry: Arc<Registry>,
}

impl SoftKeys {
    fn new() -> Self {
        let ed = ed25519_dalek::SigningKey::from_bytes(&[11; 32]);
        let ec = p256::ecdsa::SigningKey::from_slice(&[12; 32]).expect("key");
        let registry = Arc::new(Registry::new(descriptors(&ed, &ec)));
        SoftKeys { ed, ec, registry }
    }
}

/// The keys [`SoftKeys`] serves.
fn descriptors(ed: &ed25519_dalek::SigningKey, ec: &p256::ecdsa::SigningKey) -> Vec<KeyDescriptor> {
    vec![
        KeyDescriptor::new(
            "ed",
            Algorithm::Ed25519,
            Some(PublicKey::Ed25519(ed.verifying_key())),
        ),
        KeyDescriptor::new(
            "ec",
            Algorithm::EcdsaP256Sha256,
            Some(PublicKey::P256(*ec.verifying_key())),
        ),
        KeyDescriptor::new("hmac", Algorithm::HmacSha256, None),
    ]
}

impl Backend for SoftKeys {
    fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    fn rescan(&self) -> Result<(), Error> {
        Ok(())
    }

    fn sign(&self, key_id: &str, _version: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(match key_id {
            "ed" => ed25519_dalek::Signer::sign(&self.ed, input)
                .to_bytes()
                .to_vec(),
            "ec" => {
                let signature: p256::ecdsa::Signature = self
                    .ec
                    .sign_prehash(input)
                    .map_err(|e| Error::Internal(e.to_string()))?;
                signature.to_bytes().to_vec()
            }
            _ => {
                let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())
                    .map_err(|e| Error::Internal(e.to_string()))?;
                mac.update(input);
                mac.finalize().into_bytes().to_vec()
            }
        })
    }

    fn verify(
        &self,
        key_id: &str,
        version: u32,
        input: &[u8],
        signature: &[u8],
    ) -> Result<bool, Error> {
        // A software stand-in for the HSM's own check (this fake has no HSM).
        Ok(self.sign(key_id, version, input)? == signature)
    }

    fn shutdown(&self) {}
}

fn key_ids() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["ed", "ec", "hmac"]).prop_map(str::to_owned),
        1 => Just(String::new()),
        1 => ".{0,40}",
        1 => "[a-z]{250,300}",
    ]
}

fn messages() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        prop::collection::vec(any::<u8>(), LIMIT - 4..=LIMIT + 4),
    ]
}

fn formats() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![
        Just(None),
        Just(Some(1)),
        Just(Some(2)),
        Just(Some(0)),
        any::<i32>().prop_map(Some)
    ]
}

fn floats() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            0.0,
            f64::MIN_POSITIVE,
            f64::MIN_POSITIVE / 2.0, // subnormal
            5e-324,
            f64::MAX,
            9.223372036854775e18,
            -9.223372036854775e18,
            1e19,
            0.1,
            1.0,
            -1.0,
        ]),
        any::<f64>(),
        (-1e6f64..1e6),
        (-1000i64..1000).prop_map(|i| i as f64),
    ]
}

fn components() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[A-Za-z0-9_.-]{1,24}",
        1 => Just(String::new()),
        1 => ".{0,30}",
        1 => "[a-z]{0,5}:[a-z]{0,5}",
    ]
}

#[test]
fn sign_answers_every_request_with_a_verifying_signature_or_a_documented_error() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let keys = Arc::new(SoftKeys::new());
    let agent = runtime.block_on(InProcessAgent::start(
        keys.clone(),
        2,
        &format!("max_message_bytes = {LIMIT}"),
    ));
    let client = runtime.block_on(agent.client());
    let mut runner = TestRunner::new(Config::with_cases(1500));
    runner
        .run(
            &(key_ids(), messages(), formats()),
            |(key_id, message, format)| {
                let request = SignRequest {
                    key_id: key_id.clone(),
                    message: message.clone(),
                    signature_format: format,
                    message_crc32c: None,
                };
                let reply = runtime.block_on(client.clone().sign(request));
                let known = ["ed", "ec", "hmac"].contains(&key_id.as_str());
                let format_ok = match format {
                    None | Some(1) => true,
                    Some(2) => key_id == "ec",
                    _ => false,
                };
                match reply {
                    Ok(reply) => {
                        let reply = reply.into_inner();
                        prop_assert!(known && format_ok && message.len() <= LIMIT);
                        let signature = reply.signature;
                        let verified = match (key_id.as_str(), format) {
                            ("ed", _) => ed25519_dalek::Signature::from_slice(&signature)
                                .is_ok_and(|s| {
                                    keys.ed.verifying_key().verify_strict(&message, &s).is_ok()
                                }),
                            ("ec", Some(2)) => p256::ecdsa::Signature::from_der(&signature)
                                .is_ok_and(|s| {
                                    keys.ec.verifying_key().verify(&message, &s).is_ok()
                                }),
                            ("ec", _) => {
                                p256::ecdsa::Signature::from_slice(&signature).is_ok_and(|s| {
                                    keys.ec.verifying_key().verify(&message, &s).is_ok()
                                })
                            }
                            _ => {
                                let mut mac =
                                    hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes())
                                        .expect("key");
                                mac.update(&message);
                                mac.verify_slice(&signature).is_ok()
                            }
                        };
                        prop_assert!(verified, "the signature verifies");
                    }
                    Err(status) => {
                        prop_assert!(!status.message().is_empty());
                        let allowed: &[Code] = &[
                            Code::InvalidArgument,
                            Code::NotFound,
                            Code::ResourceExhausted,
                        ];
                        prop_assert!(allowed.contains(&status.code()), "{status:?}");
                        // The error matches a defect of the request.
                        let explained = match status.code() {
                            Code::NotFound => !known,
                            Code::ResourceExhausted => message.len() > LIMIT,
                            _ => !format_ok || key_id.is_empty() || key_id.len() > 256,
                        };
                        prop_assert!(
                            explained,
                            "{status:?} for {key_id:?}, {} bytes, {format:?}",
                            message.len()
                        );
                        if key_id.len() > 256 {
                            prop_assert!(
                                !status.message().contains(&key_id),
                                "long ids are not echoed"
                            );
                        }
                    }
                }
                Ok(())
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(agent.stop());
}

#[test]
fn fingerprint_matches_the_swt3_sdk_or_names_the_bad_field() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let keys = Arc::new(SoftKeys::new());
    let agent = runtime.block_on(InProcessAgent::start(keys, 2, ""));
    let client = runtime.block_on(agent.client());
    let mut runner = TestRunner::new(Config::with_cases(2000));
    let inputs = (
        components(),
        components(),
        [floats(), floats(), floats()],
        prop_oneof![Just(1_774_800_000_000i64), 1i64..i64::MAX, i64::MIN..0],
        prop::option::of(components()),
    );
    runner
        .run(&inputs, |(tenant, procedure, [a, b, c], ts, agent_id)| {
            let request = FingerprintRequest {
                key_id: "hmac".into(),
                tenant_id: tenant.clone(),
                procedure_id: procedure.clone(),
                factor_a: a,
                factor_b: b,
                factor_c: c,
                timestamp_ms: ts,
                agent_id: agent_id.clone(),
            };
            let valid_text = |s: &str| !s.is_empty() && !s.contains(':');
            let valid = valid_text(&tenant)
                && valid_text(&procedure)
                && agent_id.as_deref().is_none_or(valid_text)
                && [a, b, c].iter().all(|&f| {
                    // Python and JavaScript must write it alike (tests/factor_text.rs checks
                    // these texts against Python's repr and Node's String()).
                    f.is_finite() && f.abs() < 2f64.powi(63) && {
                        let (python, javascript) = number::python_and_javascript(f);
                        python == javascript
                    }
                })
                && ts >= 0;
            match runtime.block_on(client.clone().fingerprint(request)) {
                Ok(reply) => {
                    let reply = reply.into_inner();
                    prop_assert!(valid, "accepted an invalid anchor");
                    // swt3-ai's formula with the factors as its Python SDK writes them (the
                    // crate writes ties and magnitudes below 1e-4 differently).
                    let [ta, tb, tc] = [a, b, c].map(number::python_sdk);
                    let formula = format!("WITNESS:{tenant}:{procedure}:{ta}:{tb}:{tc}:{ts}");
                    let expected = swt3_ai::sha256_hex(&formula, 12);
                    prop_assert_eq!(&reply.fingerprint, &expected);
                    prop_assert_eq!(
                        reply.signature,
                        swt3_ai::sign_payload(SECRET, &expected, agent_id.as_deref())
                    );
                }
                Err(status) => {
                    prop_assert_eq!(status.code(), Code::InvalidArgument, "{:?}", status);
                    prop_assert!(!valid, "refused a valid anchor: {:?}", status);
                }
            }
            Ok::<(), TestCaseError>(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
    runtime.block_on(agent.stop());
}
