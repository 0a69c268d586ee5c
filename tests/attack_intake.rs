//! Requests that are never finished: a client opens streams and sends most of a large message
//! on each, then stops. tonic buffers every partial message until it is complete, so before,
//! one local client could make the agent hold `max_connections` × 256 streams × the message
//! limit (measured: three connections took the agent from 26 MB to 820 MB), for as long as it
//! kept the streams open. Now the bodies being received on a listener share
//! `limits.max_queued_bytes`: a stream that would pass it gets `RESOURCE_EXHAUSTED`, and one
//! not received in full within `limits.request_timeout_ms` gets `DEADLINE_EXCEEDED`, which
//! frees its bytes; afterwards the agent signs as before.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::requests::sign_request;
use common::{TestToken, Verifier};
use signet::grpc::proto::signer_client::SignerClient;

/// The message length each stream announces, and how much of it is sent.
const ANNOUNCED: u32 = 1_000_000;
const SENT: usize = 900_000;

/// The grpc-status and grpc-message of a response (trailers-only, or in the trailers).
async fn status_of(response: h2::client::ResponseFuture) -> (String, String) {
    let (parts, mut body) = response.await.expect("a response").into_parts();
    let header = |map: &http::HeaderMap, name: &str| {
        map.get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if let Some(status) = header(&parts.headers, "grpc-status") {
        return (
            status,
            header(&parts.headers, "grpc-message").unwrap_or_default(),
        );
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.expect("trailers").expect("trailers");
    (
        header(&trailers, "grpc-status").expect("grpc-status"),
        header(&trailers, "grpc-message").unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_requests_hold_at_most_the_byte_budget_and_only_until_their_deadline() {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| {
        format!(
            "{text}\n[limits]\nmax_message_bytes = 1048576\nmax_queued_bytes = 2097152\n\
             request_timeout_ms = 1500\n"
        )
    });
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;

    let io = tokio::net::UnixStream::connect(&agent.socket)
        .await
        .expect("connect");
    let (send, connection) = h2::client::handshake(io).await.expect("handshake");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut streams = Vec::new();
    for _ in 0..5 {
        let request = http::Request::post("http://signet.invalid/signet.v1.Signer/Sign")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .expect("request");
        let mut ready = send.clone().ready().await.expect("ready");
        let (response, mut body) = ready.send_request(request, false).expect("send");
        let mut frame = vec![0];
        frame.extend_from_slice(&ANNOUNCED.to_be_bytes());
        frame.resize(5 + SENT, 0x42);
        body.reserve_capacity(frame.len());
        body.send_data(Bytes::from(frame), false).expect("data");
        // The body is never finished; `body` is kept so the stream stays open.
        streams.push((response, body));
    }
    let mut codes = Vec::new();
    for (response, body) in streams {
        // A guard against a hang (the agent before this fix never answered), not a timing.
        let (status, message) = tokio::time::timeout(Duration::from_secs(60), status_of(response))
            .await
            .expect("the agent answers every unfinished stream");
        drop(body);
        codes.push((status, message));
    }
    let exhausted = codes.iter().filter(|(s, _)| s == "8").count();
    let late = codes.iter().filter(|(s, _)| s == "4").count();
    assert_eq!(
        exhausted + late,
        codes.len(),
        "only RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED: {codes:?}"
    );
    // 2 MiB + 64 KiB hold two partial messages of 900 kB, not three.
    assert!(exhausted >= 3, "the budget refuses the rest: {codes:?}");
    assert!(
        late >= 1,
        "an unfinished body is ended at its deadline: {codes:?}"
    );
    for (status, message) in &codes {
        let expected = if status == "8" {
            "receiving%20too%20many%20request%20bytes"
        } else {
            "not%20received%20in%20full%20before%20its%20deadline"
        };
        assert!(message.contains(expected), "{status}: {message}");
    }

    // The bytes are free again: a Sign of almost the whole limit is served and verifies.
    let message = vec![7u8; 1_000_000];
    let signed = SignerClient::new(agent.channel().await)
        .max_encoding_message_size(2 << 20)
        .sign(sign_request("ed", &message))
        .await
        .expect("a Sign after the unfinished ones")
        .into_inner();
    assert!(verifier.verify("ed", &message, &signed.signature));
    let log = agent.log_text();
    assert!(!log.contains("panicked"), "{log}");
}
