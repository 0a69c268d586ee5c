//! The audit log never claims a delivery that did not happen, tried with a client that cannot
//! have received its answer: its HTTP/2 stream window is 0, so the agent can send the answer's
//! headers but not one byte of the signature, and the client then resets the stream
//! (`RST_STREAM`) or closes its connection. The agent has already written the `allowed` record
//! (records are written before the answer leaves); it must follow it with an `undelivered`
//! record naming it (for a `SignBatch`, one per item), keep a chain that `audit verify`
//! accepts, and keep serving.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use common::requests::sign_request;
use common::{path_str, Agent, TestToken, Verifier};
use prost::Message;
use sha2::Digest;
use signet::grpc::proto::signer_client::SignerClient;
use signet::grpc::proto::SignBatchRequest;

fn audit_path(token: &TestToken) -> PathBuf {
    token.dir.path().join("audit.jsonl")
}

fn records(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// Waits (bounded by a number of tries, not a time) for a record that `matches`.
async fn wait_for_record(
    agent: &Agent,
    log: &Path,
    what: &str,
    matches: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    for _ in 0..1500 {
        if let Some(found) = records(log).into_iter().find(&matches) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "no {what} record in the audit log:\n{}\nagent log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default(),
        agent.log_text()
    );
}

/// How the client lets go of the call whose answer it could not take.
#[derive(Debug, Clone, Copy)]
enum LetGo {
    ResetStream,
    CloseConnection,
}

/// Signs `message` with `ed` on a connection whose stream window is 0, waits until the audit
/// log records the call as allowed, checks that no byte of the answer arrived, then lets go.
/// Returns the `allowed` record.
async fn sign_and_let_go(
    agent: &Agent,
    log: &Path,
    message: &[u8],
    let_go: LetGo,
) -> serde_json::Value {
    let encoded = sign_request("ed", message).encode_to_vec();
    let mut allowed = call_and_let_go(agent, log, "Sign", encoded, &[message], let_go).await;
    allowed.remove(0)
}

/// Calls `rpc` with `encoded` on a connection whose stream window is 0, waits until the audit
/// log records each of `messages` as allowed, checks that no byte of the answer arrived, then
/// lets go. Returns the `allowed` records, in the order of `messages`.
async fn call_and_let_go(
    agent: &Agent,
    log: &Path,
    rpc: &str,
    encoded: Vec<u8>,
    messages: &[&[u8]],
    let_go: LetGo,
) -> Vec<serde_json::Value> {
    let io = tokio::net::UnixStream::connect(&agent.socket)
        .await
        .expect("connect");
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(io)
        .await
        .expect("HTTP/2 handshake");
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = http::Request::post(format!("http://signet.invalid/signet.v1.Signer/{rpc}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let mut send = send.ready().await.expect("ready");
    let (response, mut body) = send.send_request(request, false).expect("send");
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(encoded.len()).expect("len").to_be_bytes());
    frame.extend_from_slice(&encoded);
    body.send_data(Bytes::from(frame), true).expect("body");

    let mut allowed = Vec::new();
    for message in messages {
        let sha = hex::encode(sha2::Sha256::digest(message));
        allowed.push(
            wait_for_record(agent, log, "allowed", |r| {
                r["message_sha256"] == sha.as_str() && r["outcome"] == "allowed"
            })
            .await,
        );
    }
    let response = response.await.expect("the answer's headers");
    let mut recv = response.into_body();
    assert!(
        !recv.is_end_stream(),
        "the answer has a signature still to come"
    );
    assert_eq!(
        recv.flow_control().available_capacity(),
        0,
        "nothing of the signature can have arrived"
    );
    match let_go {
        LetGo::ResetStream => {
            body.send_reset(h2::Reason::CANCEL);
            drop(recv);
            drop(body);
        }
        LetGo::CloseConnection => {
            drop(recv);
            drop(body);
            drop(send);
            driver.abort();
        }
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_client_never_took_is_recorded_undelivered_item_by_item() {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| format!("{text}\n[audit]\npath = \"audit.jsonl\"\n"));
    let agent = token.start_agent().await;
    let log = audit_path(&token);
    let messages: Vec<Vec<u8>> = (0..50)
        .map(|i| format!("batch item {i}").into_bytes())
        .collect();
    let batch = SignBatchRequest {
        items: messages.iter().map(|m| sign_request("ed", m)).collect(),
    };
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let allowed = call_and_let_go(
        &agent,
        &log,
        "SignBatch",
        batch.encode_to_vec(),
        &refs,
        LetGo::ResetStream,
    )
    .await;
    for record in &allowed {
        let seq = record["seq"].clone();
        let undelivered = wait_for_record(&agent, &log, "undelivered", |r| {
            r["outcome"] == "undelivered" && r["undelivered_seq"] == seq
        })
        .await;
        assert_eq!(undelivered["message_sha256"], record["message_sha256"]);
        assert_eq!(undelivered["rpc"], record["rpc"]);
    }
    let (_, agent_log) = agent.stop();
    let out = token.signet(&["audit", "verify", path_str(&log)]);
    assert!(
        out.status.success(),
        "the chain holds:\n{}{}\n{agent_log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_the_client_never_took_is_recorded_undelivered() {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| format!("{text}\n[audit]\npath = \"audit.jsonl\"\n"));
    let agent = token.start_agent().await;
    let log = audit_path(&token);
    let verifier = Verifier::fetch(agent.channel().await).await;

    for (i, let_go) in [LetGo::ResetStream, LetGo::CloseConnection]
        .into_iter()
        .enumerate()
    {
        let message = format!("never taken {i}").into_bytes();
        let allowed = sign_and_let_go(&agent, &log, &message, let_go).await;
        let seq = allowed["seq"].clone();
        let undelivered = wait_for_record(&agent, &log, "undelivered", |r| {
            r["outcome"] == "undelivered" && r["undelivered_seq"] == seq
        })
        .await;
        assert_eq!(undelivered["rpc"], "Sign", "{let_go:?}: {undelivered}");
        assert_eq!(undelivered["key_id"], "ed", "{let_go:?}: {undelivered}");
        assert_eq!(
            undelivered["message_sha256"], allowed["message_sha256"],
            "{let_go:?}: {undelivered}"
        );
        assert_eq!(
            undelivered["code"], "CANCELLED",
            "{let_go:?}: {undelivered}"
        );
    }

    // A delivered answer leaves exactly one record, and no undelivered one.
    let mut client = SignerClient::new(agent.channel().await);
    let signed = client
        .sign(sign_request("ed", b"taken"))
        .await
        .expect("sign")
        .into_inner();
    assert!(verifier.verify("ed", b"taken", &signed.signature));
    let sha = hex::encode(sha2::Sha256::digest(b"taken"));
    let allowed = wait_for_record(&agent, &log, "allowed", |r| {
        r["message_sha256"] == sha.as_str() && r["outcome"] == "allowed"
    })
    .await;
    let (_, agent_log) = agent.stop();
    let all = records(&log);
    assert!(
        !all.iter().any(|r| r["undelivered_seq"] == allowed["seq"]),
        "a delivered answer is not recorded undelivered:\n{agent_log}"
    );
    assert_eq!(
        all.iter().filter(|r| r["outcome"] == "undelivered").count(),
        2,
        "one undelivered record per answer not taken"
    );
    let out = token.signet(&["audit", "verify", path_str(&log)]);
    assert!(
        out.status.success(),
        "the chain holds:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
