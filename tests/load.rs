//! The real agent binary under load on a real SoftHSM2 token: many concurrent clients and mixed
//! key types with every signature verified independently, and SIGTERM in the middle of it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{sign_load, TestToken, Verifier};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_and_twenty_thousand_signatures_all_verify() {
    const CALLS: usize = 20_000;
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Arc::new(Verifier::fetch(agent.channel().await).await);
    let (_never, running) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let outcomes = sign_load(agent.socket.clone(), 64, Some(CALLS), running, verifier).await;
    let took = started.elapsed();
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.code != tonic::Code::Ok)
        .take(5)
        .collect();
    assert!(failed.is_empty(), "no errors under load: {failed:?}");
    assert_eq!(outcomes.len(), CALLS, "every call answered");
    println!(
        "{CALLS} signatures (Ed25519, P-256, HMAC in turn) from 64 clients in {took:?}, every \
         one verified with ed25519-dalek, p256 or hmac"
    );
    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_call_and_exits_cleanly() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let socket = agent.socket.clone();
    let verifier = Arc::new(Verifier::fetch(agent.channel().await).await);
    let (stop_load, running) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(sign_load(socket.clone(), 32, None, running, verifier));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let terminated = Instant::now();
    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    let exited_after = terminated.elapsed();
    tokio::time::sleep(Duration::from_millis(100)).await;
    stop_load.send(true).expect("stop load");
    let outcomes = load.await.expect("load");

    assert!(status.success(), "exit 0: {status}\n{log}");
    assert!(
        exited_after < Duration::from_secs(12),
        "within the drain time: {exited_after:?}"
    );
    assert!(!socket.exists(), "the socket file is gone");
    let signed = outcomes
        .iter()
        .filter(|o| o.code == tonic::Code::Ok)
        .count();
    assert!(signed > 0, "the load ran before the signal");
    // Every call the agent accepted got an answer: a verified signature, or UNAVAILABLE (the
    // agent is shutting down). Calls it never accepted (a connection refused, a stream refused
    // by the graceful GOAWAY) fail on the client side; nothing else is allowed.
    for outcome in &outcomes {
        assert!(
            matches!(outcome.code, tonic::Code::Ok | tonic::Code::Unavailable)
                || outcome.never_processed,
            "{:?}: {}",
            outcome.code,
            outcome.message
        );
    }
    let refused = outcomes.len() - signed;
    println!(
        "SIGTERM under load: {signed} verified signatures, {refused} UNAVAILABLE, exit 0 after \
         {exited_after:?}"
    );
}
