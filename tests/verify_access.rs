//! Who may verify, and the record of it, through the real binary on a real SoftHSM2 token: a
//! client granted only `verify` checks signatures and anchors but is refused `Sign` and
//! `Fingerprint`; a client granted only `sign` is refused `Verify`; every check is audited with
//! its verdict (the message hashed, never stored) and `signet audit verify` passes; the
//! `signet verify` commands exit 0 (valid), 3 (not valid) or 1 (no answer).

mod common;

use std::path::Path;

use common::requests::sign_request;
use common::{path_str, TestToken, HMAC_SECRET};
use hmac::Mac;
use sha2::Digest;
use signet::grpc::proto::{
    FingerprintRequest, SignBatchRequest, VerifyBatchRequest, VerifyFingerprintRequest,
    VerifyRequest,
};
use tonic::Code;

/// A token with the verifiable keys and only `client` (the fixture's client is replaced).
fn token_with(client: &str) -> TestToken {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| {
        let start = text.find("[[clients]]").expect("clients");
        let end = text.find("[backend]").expect("backend");
        format!("{}{}\n{client}\n", &text[..start], &text[end..])
    });
    token
}

fn client(name: &str, operations: &str) -> String {
    format!(
        "[[clients]]\nname = \"{name}\"\nuid = {}\nkeys = [\"*\"]\noperations = [{operations}]\n\n\
         [audit]\npath = \"audit.jsonl\"\n",
        common::own_uid()
    )
}

/// The HMAC-SHA256 of `message` with the imported secret, by the `hmac` crate.
fn tag(message: &[u8]) -> Vec<u8> {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).expect("key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

fn verify_request(message: &[u8], signature: Vec<u8>) -> VerifyRequest {
    VerifyRequest {
        key_id: "hmac".into(),
        message: message.to_vec(),
        signature,
        ..Default::default()
    }
}

/// `signet verify --key hmac` over `file` with a hex signature: (exit code, stdout + stderr).
fn cli_verify(token: &TestToken, file: &Path, signature_hex: &str) -> (Option<i32>, String) {
    let out = token.signet(&[
        "verify",
        "--socket",
        path_str(&token.socket),
        "--key",
        "hmac",
        "--file",
        path_str(file),
        "--signature-hex",
        "--signature",
        signature_hex,
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verify_only_client_checks_but_never_signs_and_every_check_is_audited() {
    let token = token_with(&client("ingest", "\"verify\""));
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let message = b"payload the ingest server received";

    // Refused every signing operation.
    let sign = client.sign(sign_request("hmac", message)).await;
    assert_eq!(
        sign.expect_err("no sign grant").code(),
        Code::PermissionDenied
    );
    let fingerprint = client
        .fingerprint(FingerprintRequest {
            key_id: "hmac".into(),
            tenant_id: "T".into(),
            procedure_id: "P".into(),
            timestamp_ms: 1,
            ..Default::default()
        })
        .await;
    assert_eq!(
        fingerprint.expect_err("no fingerprint grant").code(),
        Code::PermissionDenied
    );
    let batch = client
        .sign_batch(SignBatchRequest {
            items: vec![sign_request("hmac", message)],
        })
        .await
        .expect("SignBatch answers per item")
        .into_inner();
    assert!(
        matches!(&batch.results[0].result, Some(signet::grpc::proto::sign_batch_result::Result::Error(e)) if e.code == Code::PermissionDenied as i32),
        "{batch:?}"
    );

    // Checks: valid, not valid, a batch of both, an SWT3 anchor minted by the swt3-ai crate.
    let good = tag(message);
    let mut bad = good.clone();
    bad[0] ^= 0x80;
    for (signature, valid) in [(good.clone(), true), (bad.clone(), false)] {
        let r = client
            .verify(verify_request(message, signature))
            .await
            .expect("Verify")
            .into_inner();
        assert_eq!(r.valid, valid);
    }
    let items = vec![
        verify_request(message, good.clone()),
        verify_request(message, bad),
    ];
    let results = client
        .verify_batch(VerifyBatchRequest { items })
        .await
        .expect("VerifyBatch")
        .into_inner()
        .results;
    assert_eq!(results.len(), 2);
    let ts = 1_774_800_000_321;
    let fp = swt3_ai::mint_fingerprint("T", "AI-INF.1", 1.0, 2.0, 3.0, ts);
    let r = client
        .verify_fingerprint(VerifyFingerprintRequest {
            key_id: "hmac".into(),
            tenant_id: "T".into(),
            procedure_id: "AI-INF.1".into(),
            factor_a: 1.0,
            factor_b: 2.0,
            factor_c: 3.0,
            timestamp_ms: ts,
            agent_id: Some("a-1".into()),
            signature: swt3_ai::sign_payload(HMAC_SECRET, &fp, Some("a-1")),
            fingerprint: fp.clone(),
            key_version: None,
        })
        .await
        .expect("VerifyFingerprint")
        .into_inner();
    assert!(r.valid, "{r:?}");

    // The command line: 0 valid, 3 not valid.
    let file = token.dir.path().join("message");
    std::fs::write(&file, message).expect("message file");
    let (code, text) = cli_verify(&token, &file, &hex::encode(&good));
    assert_eq!(code, Some(0), "{text}");
    assert!(text.starts_with("valid (key version 1)"), "{text}");
    let (code, text) = cli_verify(&token, &file, &hex::encode(tag(b"other")));
    assert_eq!(code, Some(3), "{text}");
    assert!(text.starts_with("invalid"), "{text}");

    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{log}");

    let path = token.dir.path().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).expect("audit log");
    assert!(
        !text.contains("payload the ingest server received"),
        "the message is never stored"
    );
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    let denied: Vec<_> = records
        .iter()
        .filter(|r| r["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 3, "Sign, Fingerprint, the SignBatch item");
    let checks: Vec<_> = records
        .iter()
        .filter(|r| {
            r["rpc"]
                .as_str()
                .is_some_and(|rpc| rpc.starts_with("Verify"))
        })
        .map(|r| {
            assert_eq!(
                (&r["outcome"], &r["client"]),
                (&"allowed".into(), &"ingest".into())
            );
            (
                r["rpc"].as_str().expect("rpc"),
                r["verdict"].as_str().expect("verdict"),
            )
        })
        .collect();
    assert_eq!(
        checks,
        [
            ("Verify", "valid"),
            ("Verify", "invalid"),
            ("VerifyBatch", "valid"),
            ("VerifyBatch", "invalid"),
            ("VerifyFingerprint", "valid"),
            ("Verify", "valid"),
            ("Verify", "invalid"),
        ]
    );
    let sha = hex::encode(sha2::Sha256::digest(message));
    assert!(records
        .iter()
        .filter(|r| r["rpc"] == "Verify")
        .all(|r| r["message_sha256"] == sha.as_str()));
    let payload_sha = hex::encode(sha2::Sha256::digest(format!("{fp}:a-1")));
    assert!(records
        .iter()
        .any(|r| r["rpc"] == "VerifyFingerprint" && r["message_sha256"] == payload_sha.as_str()));
    let out = token.signet(&["audit", "verify", path_str(&path)]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.contains("chain intact"),
        "{said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_only_client_may_not_verify() {
    let token = token_with(&client("witness", "\"sign\", \"fingerprint\""));
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let message = b"m";
    let status = client
        .verify(verify_request(message, tag(message)))
        .await
        .expect_err("no verify grant");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("may not verify"), "{status:?}");
    let status = client
        .verify_fingerprint(VerifyFingerprintRequest {
            key_id: "hmac".into(),
            ..Default::default()
        })
        .await
        .expect_err("no verify grant");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    // The command line: no answer is exit code 1, with the agent's code and message.
    let file = token.dir.path().join("message");
    std::fs::write(&file, message).expect("message file");
    let (code, text) = cli_verify(&token, &file, &hex::encode(tag(message)));
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("PERMISSION_DENIED"), "{text}");
    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{log}");
}
