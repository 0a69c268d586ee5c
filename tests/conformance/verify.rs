//! The conformance cases of `Verify`, `VerifyFingerprint` and their batches: what `Sign`,
//! `Fingerprint`, swt3-ai and sqooler made verifies; altered signatures and anchors do not, and
//! the answer names the failing part; malformed input is refused naming the field.

use base64::Engine as _;
use signet::grpc::proto::{
    verify_batch_result, verify_fingerprint_batch_result, Algorithm, FingerprintRequest,
    SignRequest, SignatureFormat, VerifyBatchRequest, VerifyFingerprintBatchRequest,
    VerifyFingerprintRequest, VerifyFingerprintResponse, VerifyRequest,
};
use tonic::transport::Channel;
use tonic::Code;

use crate::common::requests::sign_request;
use crate::common::sqooler::sqooler_key;
use crate::common::{python, Device};

type Client = signet::grpc::proto::signer_client::SignerClient<Channel>;

const SECRET: &str = "5ec2e7a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3";
const OTHER_SECRET: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn verify_request(key_id: &str, message: &[u8], signature: &[u8]) -> VerifyRequest {
    VerifyRequest {
        key_id: key_id.into(),
        message: message.to_vec(),
        signature: signature.to_vec(),
        ..Default::default()
    }
}

async fn verify(client: &mut Client, request: VerifyRequest) -> bool {
    let key_id = request.key_id.clone();
    let r = client.verify(request).await.expect("Verify").into_inner();
    assert_eq!((r.key_id.as_str(), r.key_version), (key_id.as_str(), 1));
    r.valid
}

async fn refused(client: &mut Client, request: VerifyRequest, code: Code, field: &str) {
    let status = client.verify(request).await.expect_err("refused");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(status.message().contains(field), "{status:?}");
}

fn flipped(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut bytes = bytes.to_vec();
    bytes[at] ^= 0x01;
    bytes
}

/// Makes `swt3_ai.fingerprint` and `swt3_ai.signing` importable on Python 3.11, as the Python
/// client's conftest.py does: swt3-ai 0.7.8's package `__init__` needs Python 3.12, the two
/// modules only the standard library.
const SWT3_IMPORT: &str = "import importlib.util, sys, types\n\
    spec = importlib.util.find_spec('swt3_ai')\n\
    try:\n    import swt3_ai\n\
    except SyntaxError:\n    package = types.ModuleType('swt3_ai')\n\
    \x20   package.__path__ = list(spec.submodule_search_locations)\n\
    \x20   sys.modules['swt3_ai'] = package\n";

/// swt3-ai's own `sign_payload`, in Python: the hex tag over `fp[:agent]`.
fn swt3_sign(secret: &str, fingerprint: &str, agent: &str) -> String {
    let code = format!(
        "{SWT3_IMPORT}from swt3_ai.signing import sign_payload\n\
         print(sign_payload(sys.argv[1], sys.argv[2], sys.argv[3] or None))"
    );
    python(&code, &[secret, fingerprint, agent])
        .trim()
        .to_owned()
}

pub async fn hmac_verify_checks_swt3_ai_tags_inside_the_hsm(token: impl Device) {
    token.import_hmac_key("witness", SECRET);
    token.import_hmac_key("other", OTHER_SECRET);
    let agent = token.start().await;
    let mut client = agent.client().await;
    let payload = "b16bf9139c16:agent-007";
    let tag = hex::decode(swt3_sign(SECRET, "b16bf9139c16", "agent-007")).expect("hex");
    let ok = client
        .verify(verify_request("witness", payload.as_bytes(), &tag))
        .await
        .expect("Verify")
        .into_inner();
    assert!(ok.valid, "swt3-ai's tag verifies in the HSM");
    assert_eq!(ok.algorithm(), Algorithm::HmacSha256);
    // What Sign returned verifies too, for an empty and a long message.
    for message in [
        b"".to_vec(),
        vec![3; token.max_whole_message().unwrap_or(70_000) - 32],
    ] {
        let signed = client
            .sign(sign_request("witness", &message))
            .await
            .expect("Sign")
            .into_inner()
            .signature;
        assert!(verify(&mut client, verify_request("witness", &message, &signed)).await);
    }
    for (what, key, message, signature) in [
        (
            "one bit flipped",
            "witness",
            payload.as_bytes(),
            flipped(&tag, 31),
        ),
        (
            "another message",
            "witness",
            b"b16bf9139c16:agent-008",
            tag.clone(),
        ),
        ("the wrong key", "other", payload.as_bytes(), tag.clone()),
    ] {
        let request = verify_request(key, message, &signature);
        assert!(!verify(&mut client, request).await, "{what}: not valid");
    }
    let check = |signature: &[u8]| verify_request("witness", payload.as_bytes(), signature);
    refused(
        &mut client,
        check(&tag[..31]),
        Code::InvalidArgument,
        "signature is 31 bytes",
    )
    .await;
    refused(
        &mut client,
        check(b""),
        Code::InvalidArgument,
        "signature must not be empty",
    )
    .await;
    let der = VerifyRequest {
        signature_format: Some(SignatureFormat::Der.into()),
        ..check(&tag)
    };
    refused(
        &mut client,
        der,
        Code::InvalidArgument,
        "signature_format DER",
    )
    .await;
    let other_version = VerifyRequest {
        key_version: Some(2),
        ..check(&tag)
    };
    refused(
        &mut client,
        other_version,
        Code::NotFound,
        "key 'witness' has no version 2",
    )
    .await;
    let bad_crc = VerifyRequest {
        signature_crc32c: Some(crc32c::crc32c(&tag) ^ 1),
        ..check(&tag)
    };
    refused(
        &mut client,
        bad_crc,
        Code::InvalidArgument,
        "signature_crc32c",
    )
    .await;
    let with_crcs = VerifyRequest {
        message_crc32c: Some(crc32c::crc32c(payload.as_bytes())),
        signature_crc32c: Some(crc32c::crc32c(&tag)),
        key_version: Some(1),
        ..check(&tag)
    };
    let r = client.verify(with_crcs).await.expect("Verify").into_inner();
    assert!(r.valid && r.verified_message_crc32c && r.verified_signature_crc32c);
    let missing = verify_request("no-such-key", b"m", &tag);
    refused(&mut client, missing, Code::NotFound, "no-such-key").await;
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");
}

pub async fn asymmetric_verify_accepts_what_sign_returned_and_refuses_altered_ones(
    token: impl Device,
) {
    token.add_demo_keys();
    let agent = token.start().await;
    let mut client = agent.client().await;
    let message = b"the message".to_vec();
    for key in ["ed", "ec"] {
        let raw = client
            .sign(sign_request(key, &message))
            .await
            .expect("Sign")
            .into_inner()
            .signature;
        assert!(
            verify(&mut client, verify_request(key, &message, &raw)).await,
            "{key}"
        );
        for at in [0, 31, 63] {
            let altered = verify_request(key, &message, &flipped(&raw, at));
            assert!(
                !verify(&mut client, altered).await,
                "{key}: bit {at} flipped"
            );
        }
        let other = verify_request(key, b"another message", &raw);
        assert!(!verify(&mut client, other).await, "{key}: another message");
        let short = verify_request(key, &message, &raw[..63]);
        refused(
            &mut client,
            short,
            Code::InvalidArgument,
            "signature is 63 bytes",
        )
        .await;
    }
    let ed_der = VerifyRequest {
        signature_format: Some(SignatureFormat::Der.into()),
        ..verify_request("ed", &message, &[0x30, 0])
    };
    refused(
        &mut client,
        ed_der,
        Code::InvalidArgument,
        "signature_format DER",
    )
    .await;
    // P-256 in DER: what Sign returned verifies; a bit flipped inside r does not; bytes that
    // are not DER are refused.
    let der = client
        .sign(SignRequest {
            signature_format: Some(SignatureFormat::Der.into()),
            ..sign_request("ec", &message)
        })
        .await
        .expect("Sign DER")
        .into_inner()
        .signature;
    let as_der = |signature: Vec<u8>| VerifyRequest {
        signature_format: Some(SignatureFormat::Der.into()),
        ..verify_request("ec", &message, &signature)
    };
    assert!(
        verify(&mut client, as_der(der.clone())).await,
        "DER verifies"
    );
    let last = der.len() - 1;
    assert!(
        !verify(&mut client, as_der(flipped(&der, last))).await,
        "altered s"
    );
    refused(
        &mut client,
        as_der(vec![0x30, 0x03, 1, 2, 3]),
        Code::InvalidArgument,
        "DER",
    )
    .await;

    // A batch answers item by item.
    let raw = client
        .sign(sign_request("ed", &message))
        .await
        .expect("Sign")
        .into_inner()
        .signature;
    let items = vec![
        verify_request("ed", &message, &raw),
        verify_request("ed", &message, &flipped(&raw, 9)),
        verify_request("ed", &message, b""),
        as_der(der),
    ];
    let results = client
        .verify_batch(VerifyBatchRequest { items })
        .await
        .expect("VerifyBatch")
        .into_inner()
        .results;
    let summary: Vec<_> = results
        .into_iter()
        .map(|r| match r.result.expect("a result") {
            verify_batch_result::Result::Verdict(v) => Ok(v.valid),
            verify_batch_result::Result::Error(e) => Err(e.code),
        })
        .collect();
    assert_eq!(
        summary,
        [
            Ok(true),
            Ok(false),
            Err(Code::InvalidArgument as i32),
            Ok(true)
        ]
    );
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");
}

pub async fn a_sqooler_jws_verifies_through_the_agent(token: impl Device) {
    let kid = "spooler-v";
    let (config, _public) = sqooler_key(kid);
    let out = token.keys_with_stdin("import-sqooler", &[], format!("{config}\n").as_bytes());
    crate::common::assert_success(&out, "import-sqooler");
    // sqooler signs with its own private key; the agent checks the JWS with the imported one.
    let out = python(
        "import sys, json, base64\n\
         from sqooler.security import JWSHeader, payload_to_base64url, sign_payload, jwk_from_config_str\n\
         private = jwk_from_config_str(sys.argv[1])\n\
         payload = {'job_id': '7', 'status': 'DONE'}\n\
         signing_input = JWSHeader(kid=private.kid).to_base64url() + b'.' + payload_to_base64url(payload)\n\
         jws = sign_payload(payload, private)\n\
         print(json.dumps([base64.b64encode(signing_input).decode(), jws.signature]))",
        &[&config],
    );
    let [signing_input, signature]: [String; 2] = serde_json::from_str(&out).expect("json");
    let signing_input = base64::engine::general_purpose::STANDARD
        .decode(signing_input)
        .expect("base64");
    // sqooler writes padded base64url, as the other sqooler test shows.
    let signature = base64::engine::general_purpose::URL_SAFE
        .decode(&signature)
        .expect("base64url");
    let agent = token.start().await;
    let mut client = agent.client().await;
    assert!(verify(&mut client, verify_request(kid, &signing_input, &signature)).await);
    let altered = verify_request(kid, &signing_input, &flipped(&signature, 40));
    assert!(!verify(&mut client, altered).await);
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");
}

fn claim(
    key_id: &str,
    fingerprint: &str,
    signature: &str,
    edit: impl FnOnce(&mut VerifyFingerprintRequest),
) -> VerifyFingerprintRequest {
    let mut r = VerifyFingerprintRequest {
        key_id: key_id.into(),
        tenant_id: "ACME".into(),
        procedure_id: "AI-INF.1".into(),
        factor_a: 12.5,
        factor_b: 3.0,
        factor_c: 0.0,
        timestamp_ms: 1_774_800_000_123,
        agent_id: Some("agent-7".into()),
        fingerprint: fingerprint.into(),
        signature: signature.into(),
        key_version: None,
    };
    edit(&mut r);
    r
}

async fn check(
    client: &mut Client,
    request: VerifyFingerprintRequest,
) -> VerifyFingerprintResponse {
    client
        .verify_fingerprint(request)
        .await
        .expect("VerifyFingerprint")
        .into_inner()
}

pub async fn verify_fingerprint_names_the_failing_part(token: impl Device) {
    token.import_hmac_key("witness", SECRET);
    let agent = token.start().await;
    let mut client = agent.client().await;
    let minted = client
        .fingerprint(FingerprintRequest {
            key_id: "witness".into(),
            tenant_id: "ACME".into(),
            procedure_id: "AI-INF.1".into(),
            factor_a: 12.5,
            factor_b: 3.0,
            factor_c: 0.0,
            timestamp_ms: 1_774_800_000_123,
            agent_id: Some("agent-7".into()),
        })
        .await
        .expect("Fingerprint")
        .into_inner();
    let (fp, sig) = (minted.fingerprint.as_str(), minted.signature.as_str());
    let r = check(&mut client, claim("witness", fp, sig, |_| {})).await;
    assert!(
        r.valid && r.fingerprint_matches && r.signature_matches,
        "{r:?}"
    );
    assert_eq!((r.key_version, r.expected_fingerprint.as_str()), (1, fp));

    // What swt3-ai minted and signed with the same secret, in Python.
    let code = format!(
        "{SWT3_IMPORT}from swt3_ai.fingerprint import mint_fingerprint\n\
         from swt3_ai.signing import sign_payload\n\
         fp = mint_fingerprint('ACME', 'AI-INF.2', 7.25, 1.0, 2.0, 1774800000999)\n\
         print(fp, sign_payload(sys.argv[1], fp, None))"
    );
    let out = python(&code, &[SECRET]);
    let (py_fp, py_sig) = out.trim().split_once(' ').expect("two words");
    let from_python = claim("witness", py_fp, py_sig, |r| {
        (r.procedure_id, r.factor_a, r.factor_b, r.factor_c) = ("AI-INF.2".into(), 7.25, 1.0, 2.0);
        (r.timestamp_ms, r.agent_id) = (1_774_800_000_999, None);
    });
    let r = check(&mut client, from_python).await;
    assert!(r.valid, "swt3-ai's anchor verifies: {r:?}");

    // Each alteration, and which part it breaks.
    let mut flipped_sig = sig.to_owned();
    flipped_sig.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
    let cases: Vec<(&str, VerifyFingerprintRequest, bool, bool)> = vec![
        (
            "factor",
            claim("witness", fp, sig, |r| r.factor_a = 12.25),
            false,
            true,
        ),
        (
            "timestamp",
            claim("witness", fp, sig, |r| r.timestamp_ms += 1),
            false,
            true,
        ),
        (
            "agent id",
            claim("witness", fp, sig, |r| r.agent_id = Some("agent-8".into())),
            true,
            false,
        ),
        (
            "no agent id",
            claim("witness", fp, sig, |r| r.agent_id = None),
            true,
            false,
        ),
        (
            "signature",
            claim("witness", fp, &flipped_sig, |_| {}),
            true,
            false,
        ),
        (
            "fingerprint",
            claim("witness", "000000000000", sig, |_| {}),
            false,
            false,
        ),
    ];
    let mut batch = Vec::new();
    for (what, request, fingerprint_matches, signature_matches) in cases {
        batch.push(request.clone());
        let r = check(&mut client, request).await;
        assert!(!r.valid, "{what}: {r:?}");
        assert_eq!(
            (r.fingerprint_matches, r.signature_matches),
            (fingerprint_matches, signature_matches),
            "{what}"
        );
    }
    for (request, field) in [
        (
            claim("witness", fp, sig, |r| r.timestamp_ms = 0),
            "timestamp_ms is required",
        ),
        (claim("witness", fp, "zz", |_| {}), "signature is not hex"),
        (
            claim("witness", fp, &sig[..62], |_| {}),
            "signature is 62 hex characters",
        ),
        (
            claim("witness", fp, "", |_| {}),
            "signature must not be empty",
        ),
        (
            claim("witness", "B16BF9139C16", sig, |_| {}),
            "fingerprint must be 12 lowercase",
        ),
        (
            claim("witness", fp, sig, |r| r.key_version = Some(3)),
            "has no version 3",
        ),
    ] {
        let status = client
            .verify_fingerprint(request)
            .await
            .expect_err("refused");
        assert!(status.message().contains(field), "{field}: {status:?}");
    }
    // The batch answers each item as the unary call did.
    batch.insert(0, claim("witness", fp, sig, |_| {}));
    batch.push(claim("witness", fp, sig, |r| r.timestamp_ms = 0));
    let results = client
        .verify_fingerprint_batch(VerifyFingerprintBatchRequest { items: batch })
        .await
        .expect("VerifyFingerprintBatch")
        .into_inner()
        .results;
    let summary: Vec<_> = results
        .into_iter()
        .map(|r| match r.result.expect("a result") {
            verify_fingerprint_batch_result::Result::Verdict(v) => {
                Ok((v.valid, v.fingerprint_matches, v.signature_matches))
            }
            verify_fingerprint_batch_result::Result::Error(e) => Err(e.code),
        })
        .collect();
    assert_eq!(
        summary,
        [
            Ok((true, true, true)),
            Ok((false, false, true)),
            Ok((false, false, true)),
            Ok((false, true, false)),
            Ok((false, true, false)),
            Ok((false, true, false)),
            Ok((false, false, false)),
            Err(Code::InvalidArgument as i32),
        ]
    );
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");
}
