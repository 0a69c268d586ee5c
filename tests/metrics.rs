//! The Prometheus endpoint and the per-request log line, scraped and read while a real agent
//! on a SoftHSM2 token serves: the counters move with each call, a key id the agent does not
//! serve does not become a label, and neither metrics nor logs carry message contents.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use common::ports::free_port;
use common::{TestToken, Verifier};
use signet::grpc::proto::{FingerprintRequest, SignBatchRequest, SignRequest};

/// `GET path` over HTTP/1.1; the status line and the body.
fn get(port: u16, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample `name` (with its labels) in an exposition, 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_counters_move_with_each_call_and_carry_no_message_or_unknown_key() {
    let port = free_port();
    let token =
        TestToken::with_config_extra(&format!("\n[metrics]\naddress = \"127.0.0.1:{port}\"\n"))
            .with_verifiable_keys();
    let agent = token
        .start_agent_with_env(&[("SIGNET_LOG_FORMAT", "json")])
        .await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let mut client = agent.client().await;

    let (status, before) = get(port, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert_eq!(
        sample(&before, r#"signet_hsm_state{state="serving"}"#),
        1.0,
        "{before}"
    );
    assert_eq!(sample(&before, "signet_sessions"), 2.0, "{before}");

    let secret_message = b"TOP-SECRET-MESSAGE-CONTENTS".to_vec();
    for _ in 0..3 {
        let reply = client
            .sign(SignRequest {
                key_id: "ed".into(),
                message: secret_message.clone(),
                ..Default::default()
            })
            .await
            .expect("Sign")
            .into_inner();
        assert!(verifier.verify("ed", &secret_message, &reply.signature));
    }
    let unknown = "no-such-key-7c1e";
    let refused = client
        .sign(SignRequest {
            key_id: unknown.into(),
            message: secret_message.clone(),
            ..Default::default()
        })
        .await
        .expect_err("unknown key");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    let witness = client
        .fingerprint(FingerprintRequest {
            key_id: "hmac".into(),
            tenant_id: "T".into(),
            procedure_id: "AI-INF.1".into(),
            factor_a: 1.0,
            factor_b: 2.0,
            factor_c: 3.0,
            timestamp_ms: 1_700_000_000_000,
            agent_id: None,
        })
        .await
        .expect("Fingerprint")
        .into_inner();
    let expected = swt3_ai::mint_fingerprint("T", "AI-INF.1", 1.0, 2.0, 3.0, 1_700_000_000_000);
    assert_eq!(witness.fingerprint, expected);
    assert_eq!(
        witness.signature,
        swt3_ai::sign_payload(common::HMAC_SECRET, &expected, None)
    );
    let batch = client
        .sign_batch(SignBatchRequest {
            items: vec![
                SignRequest {
                    key_id: "ec".into(),
                    message: b"one".to_vec(),
                    ..Default::default()
                },
                SignRequest {
                    key_id: unknown.into(),
                    message: b"two".to_vec(),
                    ..Default::default()
                },
            ],
        })
        .await
        .expect("SignBatch")
        .into_inner();
    match &batch.results[0].result {
        Some(signet::grpc::proto::sign_batch_result::Result::Signature(s)) => {
            assert!(verifier.verify("ec", b"one", &s.signature));
        }
        other => panic!("the first item must be signed: {other:?}"),
    }

    client
        .list_keys(signet::grpc::proto::ListKeysRequest {})
        .await
        .expect("ListKeys");

    let (_, after) = get(port, "/metrics");
    let moved = |name: &str| sample(&after, name) - sample(&before, name);
    assert_eq!(
        moved(r#"signet_requests_total{rpc="Sign",key="ed",code="OK"}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        moved(r#"signet_requests_total{rpc="Sign",key="(other)",code="NOT_FOUND"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"signet_requests_total{rpc="Fingerprint",key="hmac",code="OK"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"signet_requests_total{rpc="SignBatch",key="ec",code="OK"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"signet_requests_total{rpc="SignBatch",key="(other)",code="NOT_FOUND"}"#),
        1.0
    );
    assert_eq!(
        moved(r#"signet_requests_total{rpc="ListKeys",key="-",code="OK"}"#),
        1.0
    );
    // A batch answered as a whole is counted by its items only.
    assert!(
        !after.contains(r#"rpc="SignBatch",key="-""#),
        "the batch call itself was counted: {after}"
    );
    assert_eq!(
        moved(r#"signet_request_duration_seconds_count{rpc="SignBatch"}"#),
        1.0
    );
    assert!(moved(r#"signet_request_duration_seconds_count{rpc="Sign"}"#) >= 4.0);
    assert_eq!(sample(&after, "signet_audit_write_failures_total"), 0.0);
    assert!(!after.contains(unknown), "an unknown key id became a label");
    assert!(
        !after.contains("TOP-SECRET"),
        "message contents in the metrics"
    );

    let (status, _) = get(port, "/other");
    assert!(status.contains("404"), "{status}");

    // One JSON log line per request, with who, which key, the code and the latency.
    let (_, log) = agent.stop();
    let requests: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "request")
        .collect();
    let signs: Vec<_> = requests
        .iter()
        .filter(|v| v["fields"]["rpc"] == "Sign" && v["fields"]["code"] == "OK")
        .collect();
    assert_eq!(signs.len(), 3, "{log}");
    let line = &signs[0]["fields"];
    assert_eq!(line["key"], "ed");
    assert_eq!(line["client"], "tests");
    assert!(line["caller"]
        .as_str()
        .is_some_and(|c| c.starts_with("uid=")));
    assert!(line["latency_us"].as_u64().is_some());
    assert!(!log.contains("TOP-SECRET"), "message contents in the log");
}
