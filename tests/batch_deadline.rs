//! A batch against a deadline it cannot meet, on a real SoftHSM2 token with the audit log on:
//! the call answers (never `CANCELLED`), with what it finished and `DEADLINE_EXCEEDED` for the
//! rest, and the audit log matches the items answered one for one: no record says OK for an
//! item the caller did not get. The deadline travels as a raw `grpc-timeout` header, so no
//! client timer races the agent's answer.

mod common;

use std::collections::HashMap;

use std::time::Duration;

use common::raw_h2;
use common::requests::sign_request;
use common::{TestToken, Verifier};
use sha2::{Digest, Sha256};
use signet::grpc::proto::{sign_batch_result, SignBatchRequest, SignBatchResponse};

const ITEMS: usize = 1000;

/// The items of one batch: distinct 64-byte messages over the three keys.
fn items(round: u8) -> Vec<(String, Vec<u8>)> {
    (0..ITEMS)
        .map(|i| {
            let key = ["ed", "ec", "hmac"][i % 3].to_owned();
            let mut message = format!("round {round} item {i} ").into_bytes();
            message.resize(64, b'.');
            (key, message)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_past_its_deadline_answers_what_it_finished_and_the_log_matches() {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| {
        format!("{text}\n[audit]\npath = \"audit.jsonl\"\nfsync = \"always\"\n")
    });
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let send = raw_h2::connect(&token.socket).await;

    // Per message hash: the code the caller was answered (0 OK, 4 DEADLINE_EXCEEDED).
    let mut answered: HashMap<String, i32> = HashMap::new();
    for (round, timeout) in [(0u8, "5m"), (1, "30m"), (2, "150m")] {
        let items = items(round);
        let request = SignBatchRequest {
            items: items.iter().map(|(k, m)| sign_request(k, m)).collect(),
        };
        let answer = raw_h2::call(
            &send,
            "/signet.v1.Signer/SignBatch",
            &[("grpc-timeout", timeout)],
            &request,
            Duration::ZERO,
        )
        .await;
        if answer.status == 4 {
            // The deadline passed before the batch could start (its body alone takes time to
            // arrive): refused whole, nothing signed, nothing recorded.
            assert!(answer.body.is_empty(), "{answer:?}");
            eprintln!("grpc-timeout {timeout}: refused whole");
            continue;
        }
        assert_eq!(answer.status, 0, "answered, never cancelled: {answer:?}");
        let results = answer.decode::<SignBatchResponse>().results;
        assert_eq!(results.len(), ITEMS, "one result per item");
        let mut finished = 0;
        for ((key, message), result) in items.iter().zip(results) {
            let code: i32 = match result.result.expect("a result") {
                sign_batch_result::Result::Signature(signed) => {
                    assert!(
                        verifier.verify(key, message, &signed.signature),
                        "every signature answered verifies independently"
                    );
                    finished += 1;
                    0
                }
                sign_batch_result::Result::Error(e) => {
                    assert_eq!(e.code, 4, "only DEADLINE_EXCEEDED: {e:?}");
                    4
                }
            };
            answered.insert(hex::encode(Sha256::digest(message)), code);
        }
        eprintln!("grpc-timeout {timeout}: {finished} of {ITEMS} items signed");
    }

    // A deadline already passed: refused whole, before the policy, with no record.
    let request = SignBatchRequest {
        items: vec![sign_request("ed", b"late")],
    };
    let answer = raw_h2::call(
        &send,
        "/signet.v1.Signer/SignBatch",
        &[("grpc-timeout", "0n")],
        &request,
        Duration::ZERO,
    )
    .await;
    assert_eq!(answer.status, 4, "DEADLINE_EXCEEDED: {answer:?}");

    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
    let text = std::fs::read_to_string(token.dir.path().join("audit.jsonl")).expect("audit log");
    let mut recorded: HashMap<String, i32> = HashMap::new();
    for line in text.lines() {
        let record: serde_json::Value = serde_json::from_str(line).expect("JSON");
        if record["rpc"] != "SignBatch" {
            continue;
        }
        let hash = record["message_sha256"].as_str().expect("hash").to_owned();
        let code = match (record["outcome"].as_str(), record["code"].as_str()) {
            (Some("allowed"), Some("OK")) => 0,
            (Some("failed"), Some("DEADLINE_EXCEEDED")) => 4,
            other => panic!("an unexpected record {other:?}: {line}"),
        };
        assert!(
            recorded.insert(hash, code).is_none(),
            "one record per item: {line}"
        );
    }
    assert_eq!(
        recorded, answered,
        "the audit log records exactly what each caller was answered"
    );
}
