//! ML-DSA-65 keys end to end on a real Kryoptic token (PKCS#11 3.2): `keys generate`, Sign
//! (every signature checked with the `fips204` crate, not through the agent), the public-key
//! forms (SPKI parsed with the `spki` crate, PEM, the draft-ietf-cose-dilithium JWK), Verify
//! (also of a version rotated out), SWT3 Fingerprint, and the refusals: SoftHSM2 2.6.1 and the
//! YubiHSM (MockHsm, with the yubihsm-mock feature) have no ML-DSA, and an extractable ML-DSA key is not served.

mod common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::output::{failed, stdout};
use common::requests::{public_key, published_fingerprint_request, sign_request};
use common::{assert_success, Device as _, TestToken};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, MlDsaParameterSetType};
use fips204::ml_dsa_65;
use fips204::traits::{SerDes as _, Verifier as _};
use sha2::Digest as _;
use signet::grpc::proto::{Algorithm, ListKeysRequest, VerifyFingerprintRequest, VerifyRequest};
use spki::der::{Decode as _, DecodePem as _};
use tonic::Code;

const ID_ML_DSA_65: &str = "2.16.840.1.101.3.4.3.18";

/// Whether `signature` is a valid pure ML-DSA-65 signature (empty context) of `message` by the
/// FIPS 204-encoded `public` key, by the fips204 crate.
fn ml_dsa_verifies(public: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let public: [u8; ml_dsa_65::PK_LEN] = public.try_into().expect("1,952-byte public key");
    let Ok(signature) = <&[u8; ml_dsa_65::SIG_LEN]>::try_from(signature) else {
        return false;
    };
    ml_dsa_65::PublicKey::try_from_bytes(public)
        .expect("a valid ML-DSA-65 public key")
        .verify(message, signature, &[])
}

#[tokio::test]
async fn ml_dsa_65_keys_sign_verify_and_witness_on_kryoptic() {
    let token = TestToken::kryoptic();
    let printed = token.generate("ml-dsa-65", "pq");
    let printed: serde_json::Value = serde_json::from_str(printed.trim()).expect("a JWK");
    let listed = token.keys("list", &["--json"]);
    assert_success(&listed, "keys list");
    assert!(stdout(&listed).contains("ml-dsa-65"), "{}", stdout(&listed));

    let agent = token.start_agent().await;
    let mut client = agent.client().await;

    // The public key in every form.
    let key = public_key(&mut client, "pq").await;
    assert_eq!(key.algorithm, Algorithm::MlDsa65 as i32);
    assert_eq!(key.raw.len(), 1952);
    let spki = spki::SubjectPublicKeyInfoRef::from_der(&key.spki_der).expect("SPKI DER");
    assert_eq!(spki.algorithm.oid.to_string(), ID_ML_DSA_65);
    assert!(spki.algorithm.parameters.is_none(), "parameters absent");
    assert_eq!(spki.subject_public_key.raw_bytes(), &key.raw[..]);
    assert!(
        key.pem.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{}",
        key.pem
    );
    let from_pem = spki::SubjectPublicKeyInfoOwned::from_pem(&key.pem).expect("PEM");
    assert_eq!(
        spki::der::Encode::to_der(&from_pem).expect("DER"),
        key.spki_der
    );
    let jwk: serde_json::Value = serde_json::from_str(&key.jwk).expect("JWK JSON");
    assert_eq!(jwk["kty"], "AKP");
    assert_eq!(jwk["alg"], "ML-DSA-65");
    assert_eq!(jwk["kid"], "pq");
    assert_eq!(jwk["key_ops"], serde_json::json!(["verify"]));
    let pub_b64 = jwk["pub"].as_str().expect("pub");
    assert_eq!(URL_SAFE_NO_PAD.decode(pub_b64).expect("base64url"), key.raw);
    assert_eq!(
        printed["pub"], jwk["pub"],
        "keys generate printed the same key"
    );
    let canonical = format!(r#"{{"alg":"ML-DSA-65","kty":"AKP","pub":"{pub_b64}"}}"#);
    assert_eq!(
        key.jwk_thumbprint,
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
    );

    // Sign: the message as given, every signature checked by fips204.
    let messages: [&[u8]; 3] = [b"", b"hello, post-quantum world", &[0xa5; 10_000]];
    let mut signatures = Vec::new();
    for message in messages {
        let reply = client
            .sign(sign_request("pq", message))
            .await
            .expect("Sign")
            .into_inner();
        assert_eq!(reply.algorithm, Algorithm::MlDsa65 as i32);
        assert_eq!(reply.signature.len(), 3309);
        assert!(ml_dsa_verifies(&key.raw, message, &reply.signature));
        assert!(!ml_dsa_verifies(
            &key.raw,
            b"another message",
            &reply.signature
        ));
        signatures.push(reply.signature);
    }

    // Verify: true for each signature, false for a wrong message or a flipped bit, and a
    // signature of the wrong length is INVALID_ARGUMENT.
    let verify = |message: &[u8], signature: &[u8]| VerifyRequest {
        key_id: "pq".into(),
        message: message.to_vec(),
        signature: signature.to_vec(),
        ..Default::default()
    };
    for (message, signature) in messages.iter().zip(&signatures) {
        let verdict = client
            .verify(verify(message, signature))
            .await
            .expect("Verify");
        let verdict = verdict.into_inner();
        assert!(verdict.valid);
        assert_eq!(verdict.algorithm, Algorithm::MlDsa65 as i32);
    }
    let verdict = client.verify(verify(b"not it", &signatures[1])).await;
    assert!(!verdict.expect("Verify").into_inner().valid);
    let mut flipped = signatures[1].clone();
    flipped[100] ^= 1;
    let verdict = client.verify(verify(messages[1], &flipped)).await;
    assert!(!verdict.expect("Verify").into_inner().valid);
    let status = client
        .verify(verify(messages[1], &signatures[1][..64]))
        .await
        .expect_err("a 64-byte signature");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("3309"), "{}", status.message());

    // Fingerprint: the SWT3 payload "{fingerprint}:{agent_id}", signature hex-encoded.
    let witness = client
        .fingerprint(published_fingerprint_request("pq"))
        .await
        .expect("Fingerprint")
        .into_inner();
    assert_eq!(witness.fingerprint, "f7f20b581cbf");
    assert_eq!(witness.signature.len(), 2 * 3309);
    let signature = hex::decode(&witness.signature).expect("hex");
    assert!(ml_dsa_verifies(
        &key.raw,
        b"f7f20b581cbf:agent-007",
        &signature
    ));
    let mut without_agent = published_fingerprint_request("pq");
    without_agent.agent_id = None;
    let witness = client
        .fingerprint(without_agent)
        .await
        .expect("Fingerprint");
    let signature = hex::decode(witness.into_inner().signature).expect("hex");
    assert!(ml_dsa_verifies(&key.raw, b"f7f20b581cbf", &signature));

    // VerifyFingerprint checks an ML-DSA anchor against the public key, as for HMAC in the HSM.
    let anchor = published_fingerprint_request("pq");
    let claim = |agent: &str, signature: &str| VerifyFingerprintRequest {
        key_id: "pq".into(),
        tenant_id: anchor.tenant_id.clone(),
        procedure_id: anchor.procedure_id.clone(),
        factor_a: anchor.factor_a,
        factor_b: anchor.factor_b,
        factor_c: anchor.factor_c,
        timestamp_ms: anchor.timestamp_ms,
        agent_id: Some(agent.into()),
        fingerprint: "f7f20b581cbf".into(),
        signature: signature.into(),
        key_version: None,
    };
    let witnessed = client
        .fingerprint(published_fingerprint_request("pq"))
        .await
        .expect("Fingerprint")
        .into_inner();
    let checked = client
        .verify_fingerprint(claim("agent-007", &witnessed.signature))
        .await
        .expect("VerifyFingerprint")
        .into_inner();
    assert!(checked.valid && checked.fingerprint_matches && checked.signature_matches);
    let checked = client
        .verify_fingerprint(claim("agent-008", &witnessed.signature))
        .await
        .expect("VerifyFingerprint")
        .into_inner();
    assert!(!checked.valid && checked.fingerprint_matches && !checked.signature_matches);
    let status = client
        .verify_fingerprint(claim("agent-007", &witnessed.signature[..64]))
        .await
        .expect_err("an HMAC-length signature");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("6618"), "{}", status.message());

    let keys = client
        .list_keys(ListKeysRequest {})
        .await
        .expect("ListKeys");
    let listed = keys.into_inner().keys;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].algorithm, Algorithm::MlDsa65 as i32);

    // After a rotation (another process, then SIGHUP: the agent reads the token again) the old
    // version still verifies what it signed, and the new one signs.
    let out = token.keys("rotate", &["pq"]);
    assert_success(&out, "keys rotate pq");
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()
        .expect("kill (procps)");
    assert!(hup.success(), "kill -HUP");
    let mut rotated = false;
    for _ in 0..400 {
        let key = public_key(&mut client, "pq").await;
        if key.key_version == 2 {
            rotated = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(rotated, "the agent never served version 2");
    let verdict = client.verify(verify(messages[1], &signatures[1])).await;
    let verdict = verdict.expect("Verify").into_inner();
    assert!(verdict.valid);
    assert_eq!(verdict.key_version, 1);
    let reply = client.sign(sign_request("pq", b"v2")).await.expect("Sign");
    let reply = reply.into_inner();
    assert_eq!(reply.key_version, 2);
    let new_key = public_key(&mut client, "pq").await;
    assert_eq!(new_key.key_version, 2);
    assert_ne!(new_key.raw, key.raw);
    assert!(ml_dsa_verifies(&new_key.raw, b"v2", &reply.signature));
    // Let the runtime close the connection before the agent is stopped (its drop blocks this
    // thread), so the agent need not wait out its drain time.
    drop(client);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

#[test]
fn softhsm2_says_it_has_no_ml_dsa() {
    let token = TestToken::new();
    let out = token.keys("generate", &["--type", "ml-dsa-65", "--id", "pq"]);
    let err = failed(&out, "keys generate --type ml-dsa-65 on SoftHSM2");
    assert!(
        err.contains("does not offer CKM_ML_DSA_KEY_PAIR_GEN") && err.contains("Kryoptic"),
        "{err}"
    );
    assert!(!err.contains("CKR_"), "a sentence, not a CKR code: {err}");
    let listed = token.keys("list", &["--json"]);
    assert_success(&listed, "keys list");
    assert_eq!(
        stdout(&listed).trim(),
        "[]",
        "nothing was left on the token"
    );
}

#[cfg(feature = "yubihsm-mock")]
#[test]
fn the_yubihsm_says_it_has_no_ml_dsa() {
    let device = common::yubihsm::TestYubiHsm::new();
    let out = std::process::Command::new(common::signet_bin())
        .current_dir(device.dir.path())
        .args([
            "keys",
            "generate",
            "--config",
            common::path_str(&device.config),
        ])
        .args(["--type", "ml-dsa-65", "--id", "pq"])
        .output()
        .expect("running signet");
    let err = failed(&out, "keys generate --type ml-dsa-65 on the YubiHSM");
    assert!(err.contains("the YubiHSM 2 has no ML-DSA"), "{err}");
}

#[test]
fn an_extractable_ml_dsa_key_is_refused() {
    let token = TestToken::kryoptic();
    // Made with the module directly: Signet cannot make such a key.
    let (pkcs11, session) = token.open_session();
    let common = |id: &[u8]| {
        vec![
            Attribute::Token(true),
            Attribute::Label(b"leaky".to_vec()),
            Attribute::Id(id.to_vec()),
        ]
    };
    let mut public = common(b"leaky-id");
    public.extend([
        Attribute::Verify(true),
        Attribute::ParameterSet(MlDsaParameterSetType::ML_DSA_65.into()),
    ]);
    let mut private = common(b"leaky-id");
    private.extend([
        Attribute::Private(true),
        Attribute::Sensitive(false),
        Attribute::Extractable(true),
        Attribute::Sign(true),
    ]);
    session
        .generate_key_pair(&Mechanism::MlDsaKeyPairGen, &public, &private)
        .expect("an extractable ML-DSA key pair");
    drop(session);
    pkcs11.finalize().expect("finalize");

    let err = token.refused_start();
    assert!(err.contains("key 'leaky' is refused"), "{err}");
    assert!(err.contains("CKA_EXTRACTABLE is true"), "{err}");
}
