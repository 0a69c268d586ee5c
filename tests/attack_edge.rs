//! Attacks on the agent's edge, as an operator's bad day or a hostile local user would make
//! them, against the real binary on a real SoftHSM2 token:
//! - `SIGHUP` (an operator expecting a reload, or a closed terminal) does not kill the agent;
//! - sockets that connect and never start HTTP/2 do not hold `limits.max_connections` slots
//!   for ever (before, two silent sockets locked every other client out of a listener);
//! - requests whose gRPC framing is broken (cut short, no message, a compression flag without
//!   an encoding or of an unknown value) get `INVALID_ARGUMENT` and one log line, not
//!   `INTERNAL` with tonic's text;
//! - a listener at `limits.max_connections` still answers health checks;
//! - SIGTERM does not wait for connections that never started HTTP/2;
//! - a second agent on a live agent's socket is refused before it creates its audit log.
//!
//! After each, the agent still signs, and every signature is verified independently.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::requests::sign_request;
use common::{Agent, TestToken, Verifier};
use signet::grpc::proto::signer_client::SignerClient;
use tonic::transport::Channel;

/// A Sign with `ed` on `channel`, verified; the status if refused.
async fn sign(channel: Channel, verifier: &Verifier, message: &[u8]) -> Result<(), tonic::Status> {
    let signed = SignerClient::new(channel)
        .sign(sign_request("ed", message))
        .await?
        .into_inner();
    assert!(
        verifier.verify("ed", message, &signed.signature),
        "the signature verifies"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_is_logged_and_the_agent_keeps_serving() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let status = Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    // The warning is written once the signal is handled; until then, keep signing: a SIGHUP
    // that killed the agent fails these calls.
    for i in 0..500 {
        sign(
            agent.channel().await,
            &verifier,
            format!("after HUP {i}").as_bytes(),
        )
        .await
        .unwrap_or_else(|e| panic!("the agent serves after SIGHUP: {e:?}\n{}", agent.log_text()));
        if agent.log_text().contains("SIGHUP received") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        agent
            .log_text()
            .contains("the configuration is not reloaded"),
        "{}",
        agent.log_text()
    );
    sign(agent.channel().await, &verifier, b"still")
        .await
        .expect("still serving");
    let socket = agent.socket.clone();
    let (exit, log) = agent.stop();
    assert!(
        exit.success(),
        "SIGTERM still stops it cleanly: {exit}\n{log}"
    );
    assert!(!socket.exists(), "the socket file is removed");
}

/// Opens a unix connection that sends nothing at all.
fn silent(agent: &Agent) -> UnixStream {
    UnixStream::connect(&agent.socket).expect("connect")
}

/// Whether the agent closed `stream` (end of file or a reset) within a generous bound; the
/// bound only keeps a broken agent from hanging the test.
fn closed_by_agent(mut stream: UnixStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            // The agent's HTTP/2 SETTINGS frame, sent at once; keep reading.
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_do_not_hold_the_connection_slots() {
    let token =
        TestToken::with_config_extra("\n[limits]\nmax_connections = 2\n").with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let probe_done = agent.log_text().len();
    // The start-up probe's connection may still be closing; wait until a call is served.
    let mut served = false;
    for _ in 0..250 {
        if sign(agent.channel().await, &verifier, b"before")
            .await
            .is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(served, "{}", &agent.log_text()[probe_done..]);

    let first = silent(&agent);
    let second = silent(&agent);
    // Both slots are taken by sockets that never say a word: the agent must let them go.
    let closers = std::thread::spawn(move || (closed_by_agent(first), closed_by_agent(second)));
    let (first_closed, second_closed) = tokio::task::spawn_blocking(move || closers.join())
        .await
        .expect("join")
        .expect("reader threads");
    assert!(
        first_closed && second_closed,
        "the agent closes connections that never send the HTTP/2 preface"
    );
    let mut last = None;
    for _ in 0..250 {
        match sign(agent.channel().await, &verifier, b"after the silent ones").await {
            Ok(()) => {
                last = None;
                break;
            }
            Err(status) => last = Some(status),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        last.is_none(),
        "served again: {last:?}\n{}",
        agent.log_text()
    );
}

/// Sends `body` as the whole request body of `/signet.v1.Signer/Sign` over raw HTTP/2, with
/// the extra `headers`; returns the grpc-status and the (percent-encoded) grpc-message.
async fn raw_sign(agent: &Agent, headers: &[(&str, &str)], body: &[u8]) -> (String, String) {
    let send = common::raw_h2::connect(&agent.socket).await;
    let mut request = http::Request::post("http://signet.invalid/signet.v1.Signer/Sign")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut send = send.ready().await.expect("ready");
    let (response, mut stream) = send
        .send_request(request.body(()).expect("request"), false)
        .expect("send");
    stream
        .send_data(Bytes::copy_from_slice(body), true)
        .expect("body");
    let (parts, mut recv) = response.await.expect("a response").into_parts();
    let header = |map: &http::HeaderMap, name: &str| {
        map.get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    if let Some(status) = header(&parts.headers, "grpc-status") {
        let message = header(&parts.headers, "grpc-message").unwrap_or_default();
        return (status, message);
    }
    while let Some(chunk) = recv.data().await {
        let chunk = chunk.expect("data");
        let _ = recv.flow_control().release_capacity(chunk.len());
    }
    let trailers = recv.trailers().await.expect("trailers").expect("trailers");
    (
        header(&trailers, "grpc-status").expect("grpc-status"),
        header(&trailers, "grpc-message").unwrap_or_default(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_grpc_framing_is_an_invalid_argument() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    // SignRequest { key_id: "ed", message: "m" }.
    let message = [0x0a, 2, b'e', b'd', 0x12, 1, b'm'];
    let framed = |flag: u8, len: u32| {
        let mut body = vec![flag];
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(&message);
        body
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "a length past the end",
            framed(0, 256),
            "ends%20inside%20a%20message",
        ),
        (
            "a partial second frame",
            {
                let mut body = framed(0, 7);
                body.extend_from_slice(&[0, 0]);
                body
            },
            "ends%20inside%20a%20message",
        ),
        ("no message at all", Vec::new(), "carries%20no%20message"),
        (
            "the compressed flag without an encoding",
            framed(1, 7),
            "flagged%20compressed",
        ),
        ("compression flag 2", framed(2, 7), "neither%200%20nor%201"),
    ];
    for (what, body, says) in &cases {
        let (status, text) = raw_sign(&agent, &[], body).await;
        assert_eq!(status, "3", "{what}: INVALID_ARGUMENT, got {status} {text}");
        assert!(
            text.starts_with("the%20request%20is%20not%20a%20valid%20gRPC%20call")
                && text.contains(says),
            "{what}: {text}"
        );
    }
    let log = agent.log_text();
    assert_eq!(
        log.matches("refused a request that is not a valid gRPC message")
            .count(),
        cases.len(),
        "one warn line each:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    // The well-framed request still signs.
    let (status, text) = raw_sign(&agent, &[], &framed(0, 7)).await;
    assert_eq!(status, "0", "{text}");
    sign(agent.channel().await, &verifier, b"after the broken ones")
        .await
        .expect("still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_still_answers_health_checks() {
    let token =
        TestToken::with_config_extra("\n[limits]\nmax_connections = 1\n").with_verifiable_keys();
    let agent = token.start_agent().await;
    // Take the one slot (the start-up probe's connection may still be closing).
    let mut held = None;
    for _ in 0..250 {
        let channel = agent.channel().await;
        let listed = SignerClient::new(channel.clone())
            .list_keys(signet::grpc::proto::ListKeysRequest {})
            .await;
        if listed.is_ok() {
            held = Some(channel);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = held.expect("a served connection");
    let verifier = Verifier::fetch(held.clone()).await;

    let refused = sign(agent.channel().await, &verifier, b"one too many")
        .await
        .expect_err("the listener is full");
    assert_eq!(
        refused.code(),
        tonic::Code::ResourceExhausted,
        "{refused:?}"
    );
    // A probe on a new connection is answered, not refused: the agent is healthy.
    let health = common::health::status(agent.channel().await).await;
    assert_eq!(
        health.as_ref().ok(),
        Some(&common::health::SERVING),
        "{health:?}\n{}",
        agent.log_text()
    );
    // The held connection is untouched.
    sign(held, &verifier, b"still served")
        .await
        .expect("the held connection serves");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_does_not_wait_for_connections_that_never_started_http2() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let silent_ones = [silent(&agent), silent(&agent)];
    // A served connection with a call just made, to drain as usual.
    sign(agent.channel().await, &verifier, b"served")
        .await
        .expect("sign");
    let (exit, log) = agent.stop();
    drop(silent_ones);
    assert!(exit.success(), "{exit}\n{log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains("drain time over"),
        "silent connections are dropped at shutdown, not drained for the whole drain time:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_socket_is_refused_and_leaves_no_audit_log() {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| format!("{text}\n[audit]\npath = \"audit.jsonl\"\n"));
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let text = std::fs::read_to_string(&token.config).expect("config");
    let second = token.dir.path().join("second.toml");
    std::fs::write(
        &second,
        text.replace("path = \"audit.jsonl\"", "path = \"second-audit.jsonl\""),
    )
    .expect("second config");
    let out = token
        .command()
        .args(["serve", "--config", common::path_str(&second)])
        .output()
        .expect("run the second agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused: {stderr}");
    assert!(stderr.contains("another process is serving on"), "{stderr}");
    for name in [
        "second-audit.jsonl",
        "second-audit.jsonl.head",
        "second-audit.jsonl.lock",
    ] {
        assert!(
            !token.dir.path().join(name).exists(),
            "the refused agent created {name}"
        );
    }
    sign(agent.channel().await, &verifier, b"the first still serves")
        .await
        .expect("sign");
}
