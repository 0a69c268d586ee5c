//! The message-size limit against the real agent. The table of bad requests, each with its gRPC
//! code and message, is in the conformance suite (`tests/conformance.rs`), for every backend.

mod common;

use common::requests::sign_with_format;
use common::TestToken;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_limit_is_one_mebibyte() {
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    client
        .sign(sign_with_format("ed", vec![1; 1 << 20], None))
        .await
        .expect("exactly 1 MiB is signed");
    let status = client
        .sign(sign_with_format("ed", vec![1; (1 << 20) + 1], None))
        .await
        .expect_err("over 1 MiB");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status
            .message()
            .contains("over this agent's limit of 1048576 bytes"),
        "{}",
        status.message()
    );
    // Far beyond the limit, the transport refuses before the message is held in full.
    let status = client
        .sign(sign_with_format("ed", vec![1; 8 << 20], None))
        .await
        .expect_err("8 MiB");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

/// A SignBatch's messages count together against `limits.max_message_bytes`, as one Sign's
/// message does: exactly the limit in all is signed, one byte more refuses the whole batch.
/// (Needs `signet::grpc::limits::check_batch_bytes` called by the service's SignBatch.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_carries_at_most_the_message_limit_in_all() {
    use common::requests::sign_request;
    use common::Verifier;
    use signet::grpc::proto::{sign_batch_result, SignBatchRequest};

    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| format!("{text}\n[limits]\nmax_message_bytes = 4096\n"));
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let mut client = agent.client().await;

    // 4 × 1024 bytes: exactly the limit.
    let items: Vec<_> = ["ed", "ec", "hmac", "ed"]
        .iter()
        .zip(0u8..)
        .map(|(key, i)| sign_request(key, &[i; 1024]))
        .collect();
    let results = client
        .sign_batch(SignBatchRequest {
            items: items.clone(),
        })
        .await
        .expect("a batch of exactly the limit")
        .into_inner()
        .results;
    assert_eq!(results.len(), items.len());
    for (item, result) in items.iter().zip(&results) {
        match &result.result {
            Some(sign_batch_result::Result::Signature(signed)) => assert!(
                verifier.verify(&item.key_id, &item.message, &signed.signature),
                "{} verifies",
                item.key_id
            ),
            other => panic!("item {} was not signed: {other:?}", item.key_id),
        }
    }

    // One byte more, spread over the items (none is over the limit alone): refused whole.
    let mut over = items;
    over.push(sign_request("ed", b"!"));
    let status = client
        .sign_batch(SignBatchRequest { items: over })
        .await
        .expect_err("4097 bytes in all must be refused (is check_batch_bytes called?)");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.message(),
        "the batch's messages total 4097 bytes, over this agent's limit of 4096 bytes for one \
         request; nothing was signed"
    );
    // One item over the limit alone is over it in all.
    let status = client
        .sign_batch(SignBatchRequest {
            items: vec![sign_request("ed", &[1; 4097])],
        })
        .await
        .expect_err("an item over the limit");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}
