//! Deadlines are the agent's alone: whatever the client's `grpc-timeout`, however short, the
//! answer is `DEADLINE_EXCEEDED` (or, for a deadline that leaves time, a result), never the
//! `CANCELLED "Timeout expired"` of a transport timer racing the agent's own. Raw HTTP/2, so
//! the header goes out exactly as written.

mod common;

use std::time::Duration;

use common::raw_h2::{self, Answer};
use common::requests::{published_fingerprint_request, sign_request};
use common::{TestToken, Verifier};
use signet::grpc::proto::{
    fingerprint_batch_result, sign_batch_result, FingerprintBatchRequest, FingerprintBatchResponse,
    GetPublicKeyRequest, ListKeysRequest, SignBatchRequest, SignBatchResponse,
};

const OK: i32 = 0;
const CANCELLED: i32 = 1;
const DEADLINE_EXCEEDED: i32 = 4;

/// Deadlines that have passed before the request's body is read.
const TINY: [&str; 6] = ["0m", "0n", "1n", "1u", "0S", "0H"];

/// How long after its headers a request's body is sent.
const BODY_AFTER: Duration = Duration::from_millis(5);

/// Calls each of `TINY` `rounds` times, `PARALLEL` at a time, and returns every answer with the
/// timeout it was given.
async fn answers(
    socket: &std::path::Path,
    path: &'static str,
    message: impl prost::Message + Clone + 'static,
    rounds: usize,
) -> Vec<(&'static str, Answer)> {
    let send = raw_h2::connect(socket).await;
    let mut all = Vec::new();
    for timeout in TINY {
        let mut calls = tokio::task::JoinSet::new();
        for _ in 0..rounds {
            let (send, message) = (send.clone(), message.clone());
            calls.spawn(async move {
                // The body a little after the headers, as a slow client sends it: the
                // deadline passes while the agent waits for it.
                let answer = raw_h2::call(
                    &send,
                    path,
                    &[("grpc-timeout", timeout)],
                    &message,
                    BODY_AFTER,
                )
                .await;
                (timeout, answer)
            });
        }
        all.extend(calls.join_all().await);
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_deadlines_are_only_ever_deadline_exceeded() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let rounds = 40;

    let sign = answers(
        &agent.socket,
        "/signet.v1.Signer/Sign",
        sign_request("ed", b"too late"),
        rounds,
    )
    .await;
    let fingerprint = answers(
        &agent.socket,
        "/signet.v1.Signer/Fingerprint",
        published_fingerprint_request("hmac"),
        rounds,
    )
    .await;
    // Calls that touch no HSM too: a passed deadline is a passed deadline.
    let public_key = answers(
        &agent.socket,
        "/signet.v1.Signer/GetPublicKey",
        GetPublicKeyRequest {
            key_id: "ed".into(),
            ..Default::default()
        },
        10,
    )
    .await;
    let list = answers(
        &agent.socket,
        "/signet.v1.Signer/ListKeys",
        ListKeysRequest::default(),
        10,
    )
    .await;
    for (rpc, answers) in [("GetPublicKey", &public_key), ("ListKeys", &list)] {
        for (timeout, answer) in answers {
            assert_eq!(
                answer.status, DEADLINE_EXCEEDED,
                "{rpc} with grpc-timeout {timeout}: {answer:?}"
            );
        }
    }
    for (rpc, answers) in [("Sign", &sign), ("Fingerprint", &fingerprint)] {
        assert_eq!(answers.len(), TINY.len() * rounds);
        for (timeout, answer) in answers {
            assert_eq!(
                answer.status, DEADLINE_EXCEEDED,
                "{rpc} with grpc-timeout {timeout}: {answer:?}"
            );
        }
    }

    // A batch is answered as a whole, or item by item: every item past its deadline.
    let batch = SignBatchRequest {
        items: (0..20u8).map(|i| sign_request("ed", &[i; 16])).collect(),
    };
    let fingerprints = FingerprintBatchRequest {
        items: vec![published_fingerprint_request("hmac"); 20],
    };
    let batches = answers(&agent.socket, "/signet.v1.Signer/SignBatch", batch, 10).await;
    let fingerprint_batches = answers(
        &agent.socket,
        "/signet.v1.Signer/FingerprintBatch",
        fingerprints,
        10,
    )
    .await;
    let codes = |rpc: &str, timeout: &str, answer: &Answer| -> Vec<Option<i32>> {
        assert_ne!(
            answer.status, CANCELLED,
            "{rpc} grpc-timeout {timeout}: {answer:?}"
        );
        if answer.status != OK {
            assert_eq!(
                answer.status, DEADLINE_EXCEEDED,
                "{rpc} grpc-timeout {timeout}: {answer:?}"
            );
            return Vec::new();
        }
        // Per item: its error code, or None for a result.
        if rpc == "SignBatch" {
            let items = answer.decode::<SignBatchResponse>().results;
            items
                .into_iter()
                .map(|i| match i.result {
                    Some(sign_batch_result::Result::Error(e)) => Some(e.code),
                    _ => None,
                })
                .collect()
        } else {
            let items = answer.decode::<FingerprintBatchResponse>().results;
            items
                .into_iter()
                .map(|i| match i.result {
                    Some(fingerprint_batch_result::Result::Error(e)) => Some(e.code),
                    _ => None,
                })
                .collect()
        }
    };
    for (rpc, answers) in [
        ("SignBatch", &batches),
        ("FingerprintBatch", &fingerprint_batches),
    ] {
        for (timeout, answer) in answers {
            let codes = codes(rpc, timeout, answer);
            assert!(
                codes.is_empty() || codes.len() == 20,
                "{rpc}: one result per item"
            );
            for code in codes {
                assert_eq!(
                    code,
                    Some(DEADLINE_EXCEEDED),
                    "{rpc} grpc-timeout {timeout}: an item past its deadline"
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_over_its_deadline_answers_every_item() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let send = raw_h2::connect(&agent.socket).await;
    let messages: Vec<Vec<u8>> = (0..1000u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let batch = SignBatchRequest {
        items: messages.iter().map(|m| sign_request("ed", m)).collect(),
    };
    // Each item signed in time or answered DEADLINE_EXCEEDED; the last one's body arrives
    // after its deadline.
    for (timeout, body_after) in [("1m", 0), ("20m", 0), ("50m", 0), ("20m", 30)] {
        let answer = raw_h2::call(
            &send,
            "/signet.v1.Signer/SignBatch",
            &[("grpc-timeout", timeout)],
            &batch,
            Duration::from_millis(body_after),
        )
        .await;
        if answer.status == DEADLINE_EXCEEDED {
            continue;
        }
        assert_eq!(answer.status, OK, "grpc-timeout {timeout}: {answer:?}");
        let items = answer.decode::<SignBatchResponse>().results;
        assert_eq!(items.len(), messages.len(), "one result per item");
        for (message, item) in messages.iter().zip(items) {
            match item.result {
                Some(sign_batch_result::Result::Signature(s)) => assert!(
                    verifier.verify("ed", message, &s.signature),
                    "grpc-timeout {timeout}: a signed item verifies"
                ),
                Some(sign_batch_result::Result::Error(e)) => {
                    assert_eq!(e.code, DEADLINE_EXCEEDED, "grpc-timeout {timeout}: {e:?}")
                }
                None => panic!("grpc-timeout {timeout}: an empty item"),
            }
        }
    }
    // A short deadline on a single Sign: a verified signature or DEADLINE_EXCEEDED.
    for _ in 0..50 {
        let answer = raw_h2::call(
            &send,
            "/signet.v1.Signer/Sign",
            &[("grpc-timeout", "1m")],
            &sign_request("ed", b"just in time"),
            Duration::ZERO,
        )
        .await;
        match answer.status {
            OK => {
                let signed: signet::grpc::proto::SignResponse = answer.decode();
                assert!(verifier.verify("ed", b"just in time", &signed.signature));
            }
            status => assert_eq!(status, DEADLINE_EXCEEDED, "{answer:?}"),
        }
    }
}
