//! SignBatch and FingerprintBatch through the real binary on a real SoftHSM2 token: one result
//! per item, in order, each exactly what the unary call would answer; bad items fail alone;
//! every signature verifies independently; every item is audited.

mod common;

use common::requests::{published_fingerprint_request, sign_request as item};
use common::{TestToken, Verifier};
use signet::grpc::proto::{
    fingerprint_batch_result, sign_batch_result, FingerprintBatchRequest, FingerprintRequest,
    SignBatchRequest, SignRequest,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_answers_each_item_on_its_own() {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| {
        format!("{text}\n[limits]\nmax_batch_items = 20\nmax_message_bytes = 4096\n\n[audit]\npath = \"audit.jsonl\"\n")
    });
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let mut client = agent.client().await;

    let mut items = vec![
        item("ed", b"one"),
        item("ec", b"two"),
        item("hmac", b"three"),
        item("no-such-key", b"four"),
        SignRequest {
            signature_format: Some(2),
            ..item("ed", b"DER for Ed25519")
        },
        SignRequest {
            message_crc32c: Some(1),
            ..item("ec", b"corrupted")
        },
    ];
    for i in 0..8u8 {
        items.push(item(["ed", "ec", "hmac"][usize::from(i) % 3], &[i; 64]));
    }
    items.push(SignRequest {
        message_crc32c: Some(crc32c::crc32c(b"checked")),
        ..item("hmac", b"checked")
    });
    let results = client
        .sign_batch(SignBatchRequest {
            items: items.clone(),
        })
        .await
        .expect("batch")
        .into_inner()
        .results;
    assert_eq!(results.len(), items.len(), "one result per item");
    let expected_errors = [
        (3, tonic::Code::NotFound),
        (4, tonic::Code::InvalidArgument),
        (5, tonic::Code::InvalidArgument),
    ];
    for (index, (request, result)) in items.iter().zip(&results).enumerate() {
        match &result.result {
            Some(sign_batch_result::Result::Signature(signed)) => {
                assert!(
                    !expected_errors.iter().any(|(i, _)| *i == index),
                    "item {index} should have failed"
                );
                assert_eq!(signed.key_id, request.key_id);
                assert_eq!(signed.signature_crc32c, crc32c::crc32c(&signed.signature));
                assert_eq!(
                    signed.verified_message_crc32c,
                    request.message_crc32c.is_some()
                );
                assert!(
                    verifier.verify(&request.key_id, &request.message, &signed.signature),
                    "item {index} verifies"
                );
            }
            Some(sign_batch_result::Result::Error(error)) => {
                let (_, code) = expected_errors
                    .iter()
                    .find(|(i, _)| *i == index)
                    .unwrap_or_else(|| panic!("item {index} failed: {error:?}"));
                assert_eq!(error.code, *code as i32, "item {index}: {error:?}");
                assert!(!error.message.is_empty());
            }
            None => panic!("item {index} has no result"),
        }
    }

    // Fingerprints: each like the unary call, compared with the SWT3 SDK.
    let anchors = vec![
        published_fingerprint_request("hmac"),
        FingerprintRequest {
            key_id: "hmac".into(),
            tenant_id: "bad:tenant".into(),
            procedure_id: "P".into(),
            timestamp_ms: 1,
            ..Default::default()
        },
        FingerprintRequest {
            key_id: "ed".into(),
            tenant_id: "T".into(),
            procedure_id: "P".into(),
            timestamp_ms: 1,
            ..Default::default()
        },
    ];
    let results = client
        .fingerprint_batch(FingerprintBatchRequest { items: anchors })
        .await
        .expect("batch")
        .into_inner()
        .results;
    match &results[0].result {
        Some(fingerprint_batch_result::Result::Fingerprint(f)) => {
            assert_eq!(f.fingerprint, "f7f20b581cbf");
            assert_eq!(
                f.signature,
                swt3_ai::sign_payload(common::HMAC_SECRET, "f7f20b581cbf", Some("agent-007"))
            );
        }
        other => panic!("{other:?}"),
    }
    let codes: Vec<i32> = results[1..]
        .iter()
        .map(|r| match &r.result {
            Some(fingerprint_batch_result::Result::Error(e)) => e.code,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        codes,
        [
            tonic::Code::InvalidArgument as i32,
            tonic::Code::FailedPrecondition as i32
        ]
    );

    // Too many items: the whole batch is refused (so is one whose messages total more than
    // max_message_bytes: tests/bad_input.rs).
    let status = client
        .sign_batch(SignBatchRequest {
            items: vec![item("ed", b"x"); 21],
        })
        .await
        .expect_err("over the item limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");

    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{log}");
    let records: Vec<serde_json::Value> =
        std::fs::read_to_string(token.dir.path().join("audit.jsonl"))
            .expect("audit log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
    let batch: Vec<_> = records.iter().filter(|r| r["rpc"] == "SignBatch").collect();
    assert_eq!(batch.len(), 15, "one record per item");
    assert_eq!(
        batch.iter().filter(|r| r["outcome"] == "allowed").count(),
        12
    );
    assert_eq!(
        records
            .iter()
            .filter(|r| r["rpc"] == "FingerprintBatch")
            .count(),
        3
    );
    let out = token.signet(&[
        "audit",
        "verify",
        common::path_str(&token.dir.path().join("audit.jsonl")),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
