//! The agent's life on a real SoftHSM2 token: health and reflection, keys that persist across
//! restarts, a clean SIGTERM. Every RPC for every key type, on every backend, is in the
//! conformance suite (`tests/conformance.rs`).

mod common;

use common::requests::{public_key, sign_request};
use common::TestToken;
use p256::ecdsa::signature::Verifier as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};
    use tonic_reflection::pb::v1::{
        server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;

    let health = HealthClient::new(agent.channel().await)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("health check")
        .into_inner();
    assert_eq!(health.status, 1, "SERVING");

    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = ServerReflectionClient::new(agent.channel().await)
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let response = stream
        .message()
        .await
        .expect("stream")
        .expect("one response");
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer: {response:?}");
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    for wanted in [
        "signet.v1.Signer",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == wanted),
            "{wanted} missing from {names:?}"
        );
    }

    // The v1alpha protocol too, which older tools (grpcurl before v1 support) ask for.
    use tonic_reflection::pb::v1alpha as alpha;
    let request = alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let response =
        alpha::server_reflection_client::ServerReflectionClient::new(agent.channel().await)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .expect("v1alpha reflection")
            .into_inner()
            .message()
            .await
            .expect("stream")
            .expect("one response");
    let Some(alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        response.message_response
    else {
        panic!("unexpected v1alpha reflection answer: {response:?}");
    };
    assert!(
        list.service.iter().any(|s| s.name == "signet.v1.Signer"),
        "{list:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_agent_cannot_dump_core() {
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.pid())).expect("limits");
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("a core limit");
    assert_eq!(
        core.split_whitespace().skip(4).take(2).collect::<Vec<_>>(),
        ["0", "0"],
        "soft and hard RLIMIT_CORE: {core}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_persist_across_restarts() {
    let token = TestToken::new().with_demo_keys();
    let mut before = Vec::new();
    {
        let agent = token.start_agent().await;
        let mut client = agent.client().await;
        for key in ["ed", "ec"] {
            let public = public_key(&mut client, key).await;
            before.push(public.raw);
        }
        let (status, log) = agent.stop();
        assert!(status.success(), "clean exit on SIGTERM: {status}\n{log}");
    }
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let message = b"signed after a restart";
    let ed = public_key(&mut client, "ed").await;
    assert_eq!(ed.raw, before[0], "same Ed25519 public key after restart");
    let ed_key =
        ed25519_dalek::VerifyingKey::from_bytes(&ed.raw.try_into().expect("32")).expect("key");
    let sig = client
        .sign(sign_request("ed", message))
        .await
        .expect("Sign")
        .into_inner();
    ed_key
        .verify_strict(
            message,
            &ed25519_dalek::Signature::from_slice(&sig.signature).expect("sig"),
        )
        .expect("verifies after restart");

    let ec = public_key(&mut client, "ec").await;
    assert_eq!(ec.raw, before[1], "same P-256 public key after restart");
    let ec_key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&ec.raw).expect("key");
    let sig = client
        .sign(sign_request("ec", message))
        .await
        .expect("Sign")
        .into_inner();
    ec_key
        .verify(
            message,
            &p256::ecdsa::Signature::from_slice(&sig.signature).expect("sig"),
        )
        .expect("verifies after restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_removes_the_socket_and_exits_zero() {
    let token = TestToken::new().with_demo_keys();
    let agent = token.start_agent().await;
    let socket = agent.socket.clone();
    assert!(socket.exists());
    let (status, log) = agent.stop();
    assert!(status.success(), "exit status {status}\n{log}");
    assert!(!socket.exists(), "the socket file is removed at shutdown");
    assert!(log.contains("stopped"), "{log}");
    assert!(
        !log.contains(common::TEST_PIN),
        "the PIN never appears in the log"
    );
}
