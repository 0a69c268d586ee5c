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
