//! The conformance suite: the same RPC-level and key-command assertions against every backend,
//! with the same independent verification (ed25519-dalek, p256, hmac, swt3-ai, sqooler) and the
//! same error codes. The verification RPCs' cases are in `conformance/verify.rs`. `softhsm::*`
//! runs on a real SoftHSM2 token through the PKCS#11 backend; `kryoptic::*` on a real Kryoptic
//! token (a second, independent PKCS#11 implementation, built by `scripts/kryoptic.sh`) through
//! the same backend; `yubihsm::*` runs on `yubihsm`'s MockHsm, served over HTTP like
//! `yubihsm-connector`, through
//! the native YubiHSM backend (built with `--features yubihsm-mock`). Both drive the real
//! `signet` binary.

mod common;
#[path = "conformance/verify.rs"]
mod verify;

use base64::Engine as _;
use common::output::{failed, list, listed_ids, stderr, stdout};
use common::requests::{public_key, sign_request, sign_with_format};
use common::sqooler::sqooler_key;
use common::{b64, ed25519_from_jwk, p256_from_jwk, python, Device};
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use p256::ecdsa::signature::Verifier as _;
use signet::grpc::proto::{
    Algorithm, FingerprintRequest, GetPublicKeyRequest, ListKeysRequest, SignRequest,
    SignatureFormat,
};
use tonic::Code;
use verify::*;

/// Runs each conformance test against every backend, as `softhsm::NAME`, `kryoptic::NAME` and
/// `yubihsm::NAME`.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod softhsm {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::TestToken::new()).await
                }
            )*
        }
        mod kryoptic {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::TestToken::kryoptic()).await
                }
            )*
        }
        #[cfg(feature = "yubihsm-mock")]
        mod yubihsm {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::yubihsm::TestYubiHsm::new()).await
                }
            )*
        }
    };
}

conformance!(
    ed25519_signs_and_every_public_encoding_verifies,
    p256_signs_raw_and_der_and_every_public_encoding_verifies,
    hmac_signs_like_an_independent_hmac,
    list_keys_names_every_served_key,
    fingerprint_uses_the_agent_clock_when_asked,
    every_bad_input_gets_its_code_and_message,
    generated_keys_are_served_and_destroyed_keys_are_not_found,
    a_sqooler_key_moves_into_the_hsm_and_its_signatures_stay_byte_identical,
    an_exportable_key_is_reported_and_refused_by_name,
    hmac_verify_checks_swt3_ai_tags_inside_the_hsm,
    asymmetric_verify_accepts_what_sign_returned_and_refuses_altered_ones,
    a_sqooler_jws_verifies_through_the_agent,
    verify_fingerprint_names_the_failing_part,
);

fn fingerprint(key_id: &str, edit: impl FnOnce(&mut FingerprintRequest)) -> FingerprintRequest {
    let mut r = FingerprintRequest {
        key_id: key_id.into(),
        tenant_id: "ACME".into(),
        procedure_id: "AI-INF.1".into(),
        factor_a: 1.0,
        factor_b: 1.0,
        factor_c: 0.0,
        timestamp_ms: 1_774_800_000_000,
        agent_id: None,
    };
    edit(&mut r);
    r
}

/// The RFC 7638 thumbprint of a canonical JWK, computed here independently of the agent.
fn rfc7638_thumbprint(canonical: &str) -> String {
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical))
}

async fn ed25519_signs_and_every_public_encoding_verifies(token: impl Device) {
    token.add_demo_keys();
    let agent = token.start().await;
    let mut client = agent.client().await;

    let public = public_key(&mut client, "ed").await;
    assert_eq!(public.key_id, "ed");
    assert_eq!(public.algorithm(), Algorithm::Ed25519);
    let raw: [u8; 32] = public.raw.as_slice().try_into().expect("32-byte key");
    let from_raw = ed25519_dalek::VerifyingKey::from_bytes(&raw).expect("raw key");
    let from_spki =
        ed25519_dalek::VerifyingKey::from_public_key_der(&public.spki_der).expect("spki");
    let from_pem = ed25519_dalek::VerifyingKey::from_public_key_pem(&public.pem).expect("pem");
    let jwk: serde_json::Value = serde_json::from_str(&public.jwk).expect("jwk json");
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["crv"], "Ed25519");
    assert_eq!(jwk["kid"], "ed");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["key_ops"], serde_json::json!(["verify"]));
    let jwk_x: [u8; 32] = b64(&jwk["x"]).try_into().expect("32-byte x");
    let from_jwk = ed25519_dalek::VerifyingKey::from_bytes(&jwk_x).expect("jwk key");
    assert_eq!(from_raw, from_spki);
    assert_eq!(from_raw, from_pem);
    assert_eq!(from_raw, from_jwk);
    // RFC 7638 thumbprint, computed here independently.
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        jwk["x"].as_str().expect("x")
    );
    assert_eq!(public.jwk_thumbprint, rfc7638_thumbprint(&canonical));

    for message in [
        b"".to_vec(),
        b"hello".to_vec(),
        vec![0xa5; 64],
        vec![7; token.max_whole_message().unwrap_or(100_000)],
    ] {
        let response = client
            .sign(sign_request("ed", &message))
            .await
            .expect("Sign")
            .into_inner();
        assert_eq!(response.key_id, "ed");
        assert_eq!(response.algorithm(), Algorithm::Ed25519);
        assert_eq!(response.signature_format(), SignatureFormat::Raw);
        let signature =
            ed25519_dalek::Signature::from_slice(&response.signature).expect("64 bytes");
        from_jwk
            .verify_strict(&message, &signature)
            .expect("the Ed25519 signature verifies with ed25519-dalek");
    }
}

async fn p256_signs_raw_and_der_and_every_public_encoding_verifies(token: impl Device) {
    use p256::pkcs8::DecodePublicKey as _;
    token.add_demo_keys();
    let agent = token.start().await;
    let mut client = agent.client().await;

    let public = public_key(&mut client, "ec").await;
    assert_eq!(public.algorithm(), Algorithm::EcdsaP256Sha256);
    assert_eq!(public.raw.len(), 65);
    let from_raw = p256::ecdsa::VerifyingKey::from_sec1_bytes(&public.raw).expect("sec1");
    let from_spki = p256::ecdsa::VerifyingKey::from_public_key_der(&public.spki_der).expect("spki");
    let from_pem = p256::ecdsa::VerifyingKey::from_public_key_pem(&public.pem).expect("pem");
    let from_jwk = p256_from_jwk(&public.jwk);
    assert_eq!(from_raw, from_spki);
    assert_eq!(from_raw, from_pem);
    assert_eq!(from_raw, from_jwk);
    let jwk: serde_json::Value = serde_json::from_str(&public.jwk).expect("jwk json");
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        (jwk["kid"].as_str(), jwk["alg"].as_str()),
        (Some("ec"), Some("ES256"))
    );
    assert_eq!(jwk["key_ops"], serde_json::json!(["verify"]));
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().expect("x"),
        jwk["y"].as_str().expect("y")
    );
    assert_eq!(public.jwk_thumbprint, rfc7638_thumbprint(&canonical));

    for message in [
        b"".to_vec(),
        b"hello".to_vec(),
        vec![0x5a; 64],
        vec![1; 300_000],
    ] {
        let raw = client
            .sign(sign_request("ec", &message))
            .await
            .expect("Sign raw")
            .into_inner();
        assert_eq!(raw.signature_format(), SignatureFormat::Raw);
        assert_eq!(raw.signature.len(), 64, "JWS ES256 form is r||s");
        let signature = p256::ecdsa::Signature::from_slice(&raw.signature).expect("r||s");
        from_jwk
            .verify(&message, &signature)
            .expect("the raw ECDSA signature verifies with p256 over SHA-256(message)");

        let der = client
            .sign(SignRequest {
                signature_format: Some(SignatureFormat::Der.into()),
                ..sign_request("ec", &message)
            })
            .await
            .expect("Sign DER")
            .into_inner();
        assert_eq!(der.signature_format(), SignatureFormat::Der);
        let signature = p256::ecdsa::DerSignature::try_from(der.signature.as_slice()).expect("DER");
        from_spki
            .verify(&message, &signature)
            .expect("the DER ECDSA signature verifies with p256");
    }
}

async fn hmac_signs_like_an_independent_hmac(token: impl Device) {
    use hmac::Mac;
    let secret = "b5e0c1f3a9d84e7f6a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";
    token.import_hmac_key("witness", secret);
    let agent = token.start().await;
    let mut client = agent.client().await;
    for message in [
        b"".to_vec(),
        b"b16bf9139c16:agent-007".to_vec(),
        vec![9; token.max_whole_message().unwrap_or(65_536)],
    ] {
        let response = client
            .sign(sign_request("witness", &message))
            .await
            .expect("Sign")
            .into_inner();
        assert_eq!(response.algorithm(), Algorithm::HmacSha256);
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(&message);
        mac.verify_slice(&response.signature)
            .expect("the HMAC matches the hmac crate's");
    }
}

async fn list_keys_names_every_served_key(token: impl Device) {
    token.add_demo_keys();
    let agent = token.start().await;
    let keys = agent
        .client()
        .await
        .list_keys(ListKeysRequest {})
        .await
        .expect("ListKeys")
        .into_inner()
        .keys;
    let summary: Vec<_> = keys
        .iter()
        .map(|k| (k.key_id.as_str(), k.algorithm(), k.has_public_key))
        .collect();
    assert_eq!(
        summary,
        [
            ("ec", Algorithm::EcdsaP256Sha256, true),
            ("ed", Algorithm::Ed25519, true),
            ("hmac", Algorithm::HmacSha256, false),
        ]
    );
}

async fn fingerprint_uses_the_agent_clock_when_asked(token: impl Device) {
    let secret = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";
    token.import_hmac_key("witness", secret);
    let agent = token.start().await;
    let before = now_ms();
    let response = agent
        .client()
        .await
        .fingerprint(FingerprintRequest {
            key_id: "witness".into(),
            tenant_id: "ACME".into(),
            procedure_id: "AI-INF.1".into(),
            factor_a: 1.0,
            factor_b: 2.0,
            factor_c: 0.0,
            timestamp_ms: 0,
            agent_id: Some("agent-1".into()),
        })
        .await
        .expect("Fingerprint")
        .into_inner();
    let after = now_ms();
    assert!(
        (before..=after).contains(&response.timestamp_ms),
        "timestamp from the agent's clock"
    );
    let fp = swt3_ai::mint_fingerprint("ACME", "AI-INF.1", 1.0, 2.0, 0.0, response.timestamp_ms);
    assert_eq!(response.fingerprint, fp);
    assert_eq!(
        response.signature,
        swt3_ai::sign_payload(secret, &fp, Some("agent-1"))
    );
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

async fn generated_keys_are_served_and_destroyed_keys_are_not_found(token: impl Device) {
    let ed_jwk = token.generate_key("ed25519", "ed");
    let ec_jwk = token.generate_key("p256", "ec");
    assert_eq!(
        token.generate_key("hmac-sha256", "mac"),
        "",
        "HMAC keys have no JWK"
    );
    let ed_key = ed25519_from_jwk(&ed_jwk);
    let ec_key = p256_from_jwk(&ec_jwk);
    let jwk: serde_json::Value = serde_json::from_str(&ed_jwk).expect("json");
    assert_eq!((&jwk["kid"], &jwk["alg"]), (&"ed".into(), &"EdDSA".into()));

    // An existing id is refused, whatever the type, and the key is unchanged.
    for key_type in ["ed25519", "hmac-sha256"] {
        let out = token.keys("generate", &["--type", key_type, "--id", "ed"]);
        let err = failed(&out, "generate over an existing id");
        assert!(err.contains("already exists"), "{err}");
        assert!(err.contains("never overwritten"), "{err}");
    }
    // --exists-ok (for scripts) leaves the key alone and prints its JWK again.
    let out = token.keys(
        "generate",
        &["--type", "ed25519", "--id", "ed", "--exists-ok"],
    );
    common::assert_success(&out, "generate --exists-ok");
    assert_eq!(stdout(&out), ed_jwk);
    let out = token.keys("generate", &["--type", "p256", "--id", "ed", "--exists-ok"]);
    assert!(failed(&out, "exists-ok with another type").contains("is not a key of type p256"));

    let agent = token.start().await;
    let mut client = agent.client().await;
    let message = b"generated inside the token";
    let sig = client
        .sign(sign_request("ed", message))
        .await
        .expect("Sign ed")
        .into_inner()
        .signature;
    let sig = ed25519_dalek::Signature::from_slice(&sig).expect("64 bytes");
    ed_key
        .verify_strict(message, &sig)
        .expect("verifies with the JWK that generate printed");
    let sig = client
        .sign(sign_request("ec", message))
        .await
        .expect("Sign ec")
        .into_inner()
        .signature;
    let sig = p256::ecdsa::Signature::from_slice(&sig).expect("r||s");
    ec_key.verify(message, &sig).expect("P-256 verifies");

    // Destroyed while the agent serves it: the agent answers NOT_FOUND, not an HSM error.
    let out = token.keys("destroy", &["ed", "--yes"]);
    common::assert_success(&out, "destroy");
    assert!(
        stderr(&out).contains("destroyed key 'ed' ("),
        "{}",
        stderr(&out)
    );
    let status = client
        .sign(sign_request("ed", message))
        .await
        .expect_err("the key is gone");
    assert_eq!(
        status.code(),
        tonic::Code::NotFound,
        "{status:?}\n{}",
        agent.log_text()
    );
    assert!(
        status.message().contains("no longer on the token"),
        "{status:?}"
    );
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");

    assert_eq!(listed_ids(&token), ["ec", "mac"]);
    let out = token.keys("destroy", &["mac", "--yes"]);
    assert!(
        stderr(&out).contains("destroyed key 'mac' (1 object)"),
        "{}",
        stderr(&out)
    );

    let agent = token.start().await;
    let status = agent
        .client()
        .await
        .sign(sign_request("ed", message))
        .await
        .expect_err("a restarted agent does not serve it");
    assert_eq!(
        status.code(),
        tonic::Code::NotFound,
        "{status:?}\n{}",
        agent.log_text()
    );
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");
}

async fn a_sqooler_key_moves_into_the_hsm_and_its_signatures_stay_byte_identical(
    token: impl Device,
) {
    let kid = "spooler-ä1";
    let (config, public) = sqooler_key(kid);

    let out = token.keys_with_stdin("import-sqooler", &[], format!("{config}\n").as_bytes());
    common::assert_success(&out, "import-sqooler");
    assert_eq!(
        stdout(&out).trim_end(),
        public,
        "prints sqooler's public JWK"
    );
    let out = token.keys("public", &[kid, "--format", "sqooler"]);
    common::assert_success(&out, "public --format sqooler");
    assert_eq!(stdout(&out), format!("{public}\n"), "byte for byte");
    let listed = list(&token);
    assert_eq!(listed[0]["id"], kid);
    assert_eq!(
        (&listed[0]["served"], &listed[0]["local"]),
        (&true.into(), &false.into())
    );

    // The agent signs what sqooler signs: header_b64 + "." + payload_b64, sqooler's encoding.
    let payload = r#"{"job_id": "42", "status": "DONE", "counts": [1, 2, 3]}"#;
    let out = python(
        "import sys, json, base64\n\
         from sqooler.security import JWSHeader, payload_to_base64url, sign_payload, jwk_from_config_str\n\
         private = jwk_from_config_str(sys.argv[1])\n\
         payload = json.loads(sys.argv[2])\n\
         signing_input = JWSHeader(kid=private.kid).to_base64url() + b'.' + payload_to_base64url(payload)\n\
         print(json.dumps([base64.b64encode(signing_input).decode(), sign_payload(payload, private).model_dump_json()]))",
        &[&config, payload],
    );
    let [signing_input, sqooler_jws]: [String; 2] = serde_json::from_str(&out).expect("json");
    let signing_input = base64::engine::general_purpose::STANDARD
        .decode(signing_input)
        .expect("base64");

    let agent = token.start().await;
    let signature = agent
        .client()
        .await
        .sign(sign_request(kid, &signing_input))
        .await
        .expect("Sign")
        .into_inner()
        .signature;
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");

    // Independent check with ed25519-dalek and the original x.
    let jwk: serde_json::Value = serde_json::from_str(&public).expect("json");
    let x = base64::engine::general_purpose::URL_SAFE
        .decode(jwk["x"].as_str().expect("x"))
        .expect("padded base64url");
    let original =
        ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().expect("32 bytes")).expect("point");
    original
        .verify_strict(
            &signing_input,
            &ed25519_dalek::Signature::from_slice(&signature).expect("sig"),
        )
        .expect("verifies with the original public key");

    // sqooler's own verifier accepts it, and the JWS equals what sqooler makes with the
    // original private key (Ed25519 is deterministic).
    let agent_signature = base64::engine::general_purpose::URL_SAFE.encode(&signature);
    let verdict = python(
        "import sys, json\n\
         from sqooler.security import JWK, JWSDict, JWSHeader\n\
         public = JWK(**json.loads(sys.argv[1]))\n\
         jws = JWSDict(header=JWSHeader(kid=public.kid), payload=json.loads(sys.argv[2]), signature=sys.argv[3])\n\
         print(jws.verify_signature(public), jws.model_dump_json() == sys.argv[4])",
        &[&public, payload, &agent_signature, &sqooler_jws],
    );
    assert_eq!(
        verdict.trim(),
        "True True",
        "sqooler verifies; the JWS is byte-identical"
    );
}

async fn every_bad_input_gets_its_code_and_message(token: impl Device) {
    token.add_demo_keys();
    // A 4 KiB limit keeps the oversized case cheap; the default (1 MiB) is tested in bad_input.
    let text = std::fs::read_to_string(token.config()).expect("config");
    std::fs::write(
        token.config(),
        format!("{text}\n[limits]\nmax_message_bytes = 4096\n"),
    )
    .expect("config");
    let agent = token.start().await;
    let mut client = agent.client().await;

    let sign_cases: Vec<(&str, SignRequest, Code, &str)> = vec![
        (
            "unknown key",
            sign_with_format("nope", b"m".to_vec(), None),
            Code::NotFound,
            "no key with id 'nope'",
        ),
        (
            "empty key id",
            sign_with_format("", b"m".to_vec(), None),
            Code::InvalidArgument,
            "key_id must not be empty",
        ),
        (
            "oversized message",
            sign_with_format("ed", vec![0; 4097], None),
            Code::ResourceExhausted,
            "4097 bytes, over this agent's limit of 4096",
        ),
        (
            "DER for Ed25519",
            sign_with_format("ed", b"m".to_vec(), Some(2)),
            Code::InvalidArgument,
            "DER applies to ECDSA keys only",
        ),
        (
            "DER for HMAC",
            sign_with_format("hmac", b"m".to_vec(), Some(2)),
            Code::InvalidArgument,
            "DER applies to ECDSA keys only",
        ),
        (
            "explicit UNSPECIFIED format",
            sign_with_format("ec", b"m".to_vec(), Some(0)),
            Code::InvalidArgument,
            "SIGNATURE_FORMAT_UNSPECIFIED",
        ),
        (
            "unknown format number",
            sign_with_format("ec", b"m".to_vec(), Some(9)),
            Code::InvalidArgument,
            "signature_format 9 is not a known",
        ),
    ];
    let long_id = "k".repeat(257);
    let mut sign_cases = sign_cases;
    sign_cases.push((
        "key id over 256 bytes",
        sign_with_format(&long_id, b"m".to_vec(), None),
        Code::InvalidArgument,
        "key_id is 257 bytes; key ids are at most 256 bytes",
    ));
    for (name, request, code, message) in sign_cases {
        let status = client.sign(request).await.expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(message),
            "{name}: {:?} lacks {message:?}",
            status.message()
        );
    }
    // The limit is inclusive: exactly max_message_bytes is signed (P-256 signs a digest, so no
    // HSM limit applies).
    client
        .sign(sign_with_format("ec", vec![0; 4096], None))
        .await
        .expect("a message at the limit is signed");
    // An HSM that signs whole messages in a bounded buffer refuses longer ones as a limit.
    if let Some(max) = token.max_whole_message() {
        for key in ["ed", "hmac"] {
            let status = client
                .sign(sign_with_format(key, vec![1; max + 1], None))
                .await
                .expect_err("over the HSM's whole-message limit");
            assert_eq!(status.code(), Code::ResourceExhausted, "{key}: {status:?}");
            assert!(status.message().contains("at most"), "{status:?}");
            client
                .sign(sign_with_format(key, vec![1; max], None))
                .await
                .expect("a message at the HSM's limit is signed");
        }
    }

    let key_cases: Vec<(&str, &str, Code, &str)> = vec![
        (
            "HMAC has no public key",
            "hmac",
            Code::FailedPrecondition,
            "a symmetric key has no public key",
        ),
        (
            "unknown key",
            "nope",
            Code::NotFound,
            "no key with id 'nope'",
        ),
        (
            "empty key id",
            "",
            Code::InvalidArgument,
            "key_id must not be empty",
        ),
    ];
    for (name, key_id, code, message) in key_cases {
        let status = client
            .get_public_key(GetPublicKeyRequest {
                key_id: key_id.into(),
                key_version: None,
            })
            .await
            .expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(message),
            "{name}: {:?} lacks {message:?}",
            status.message()
        );
    }

    let fp_cases: Vec<(&str, FingerprintRequest, Code, &str)> = vec![
        (
            "Ed25519 key",
            fingerprint("ed", |_| {}),
            Code::FailedPrecondition,
            "needs an hmac-sha256 or ml-dsa-65 key",
        ),
        (
            "P-256 key",
            fingerprint("ec", |_| {}),
            Code::FailedPrecondition,
            "needs an hmac-sha256 or ml-dsa-65 key",
        ),
        (
            "unknown key",
            fingerprint("nope", |_| {}),
            Code::NotFound,
            "no key with id 'nope'",
        ),
        (
            "empty key id",
            fingerprint("", |_| {}),
            Code::InvalidArgument,
            "key_id must not be empty",
        ),
        (
            "empty tenant",
            fingerprint("hmac", |r| r.tenant_id.clear()),
            Code::InvalidArgument,
            "tenant_id must not be empty",
        ),
        (
            "empty procedure",
            fingerprint("hmac", |r| r.procedure_id.clear()),
            Code::InvalidArgument,
            "procedure_id must not be empty",
        ),
        (
            "':' in tenant",
            fingerprint("hmac", |r| r.tenant_id = "A:B".into()),
            Code::InvalidArgument,
            "tenant_id must not contain ':'",
        ),
        (
            "':' in procedure",
            fingerprint("hmac", |r| r.procedure_id = "AI:1".into()),
            Code::InvalidArgument,
            "procedure_id must not contain ':'",
        ),
        (
            "':' in agent id",
            fingerprint("hmac", |r| r.agent_id = Some("a:b".into())),
            Code::InvalidArgument,
            "agent_id must not contain ':'",
        ),
        (
            "empty agent id",
            fingerprint("hmac", |r| r.agent_id = Some(String::new())),
            Code::InvalidArgument,
            "agent_id is present but empty",
        ),
        (
            "NaN factor",
            fingerprint("hmac", |r| r.factor_a = f64::NAN),
            Code::InvalidArgument,
            "factor_a must be a finite number",
        ),
        (
            "+inf factor",
            fingerprint("hmac", |r| r.factor_b = f64::INFINITY),
            Code::InvalidArgument,
            "factor_b must be a finite number",
        ),
        (
            "-inf factor",
            fingerprint("hmac", |r| r.factor_c = f64::NEG_INFINITY),
            Code::InvalidArgument,
            "factor_c must be a finite number",
        ),
        (
            "factor beyond 2^63",
            fingerprint("hmac", |r| r.factor_a = 1e19),
            Code::InvalidArgument,
            "factor_a is out of range",
        ),
        (
            "negative timestamp",
            fingerprint("hmac", |r| r.timestamp_ms = -1),
            Code::InvalidArgument,
            "timestamp_ms must not be negative",
        ),
    ];
    for (name, request, code, message) in fp_cases {
        let status = client.fingerprint(request).await.expect_err(name);
        assert_eq!(status.code(), code, "{name}: {status:?}");
        assert!(
            status.message().contains(message),
            "{name}: {:?} lacks {message:?}",
            status.message()
        );
    }

    let log = agent.log_text();
    assert!(
        !log.contains(token.secret()),
        "the PIN or password never appears in the log"
    );
}

async fn an_exportable_key_is_reported_and_refused_by_name(token: impl Device) {
    token.add_demo_keys();
    token.put_exportable_p256("leaky");
    let listed = list(&token);
    let leaky = listed
        .iter()
        .find(|k| k["id"] == "leaky")
        .expect("keys list shows the exportable key");
    assert_eq!(
        (
            &leaky["extractable"],
            &leaky["served"],
            &leaky["blocks_agent_start"]
        ),
        (&true.into(), &false.into(), &true.into()),
        "{leaky}"
    );
    let stderr = token.refused_start();
    assert!(!stderr.contains(token.secret()), "{stderr}");
    assert!(stderr.contains("key 'leaky' is refused"), "{stderr}");
    assert!(stderr.contains("can never leave the HSM"), "{stderr}");
    assert!(
        stderr.contains("CKA_EXTRACTABLE is true") || stderr.contains("EXPORTABLE_UNDER_WRAP"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("'ed'"),
        "only the bad key is named: {stderr}"
    );
}
