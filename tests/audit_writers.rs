//! One writer per audit log, through the real binary on a real SoftHSM2 token: a second agent
//! configured with the same log refuses to start (naming the log and the first agent's pid)
//! while the first keeps serving; a SIGKILLed agent's lock is no obstacle to the next; and
//! `signet audit verify` on a log being written under load says it is live instead of
//! raising a false alarm.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::requests::sign_request;
use common::{path_str, Agent, TestToken};

/// A token with the verifiable keys and an audit log (`audit` appended to its table).
fn token_with_audit(audit: &str) -> TestToken {
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| format!("{text}\n[audit]\npath = \"audit.jsonl\"\n{audit}\n"));
    token
}

fn audit_path(token: &TestToken) -> PathBuf {
    token.dir.path().join("audit.jsonl")
}

/// A second configuration next to the token's: the same audit log, another socket.
fn second_config(token: &TestToken) -> (PathBuf, PathBuf) {
    let text = std::fs::read_to_string(&token.config).expect("config");
    assert!(text.contains("path = \"signet.sock\""), "{text}");
    let config = token.dir.path().join("second.toml");
    std::fs::write(
        &config,
        text.replace("path = \"signet.sock\"", "path = \"second.sock\""),
    )
    .expect("second config");
    (config, token.dir.path().join("second.sock"))
}

/// `signet audit verify FILES…`: (success, stdout + stderr).
fn verify(token: &TestToken, files: &[&Path]) -> (bool, String) {
    let mut args = vec!["audit", "verify"];
    args.extend(files.iter().map(|f| path_str(f)));
    let out = token.signet(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs `signet serve` with `config` until it exits (`true`) or serves on `socket` (`false`, and
/// it is stopped); returns that and its standard error.
fn refused_or_serving(token: &TestToken, config: &Path, socket: &Path) -> (bool, String) {
    let stderr_path = token.dir.path().join("refused.log");
    let mut child = token
        .command()
        .args(["serve", "--config", path_str(config)])
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file"))
        .spawn()
        .expect("spawn signet serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break !status.success();
        }
        if socket.exists() || Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        refused,
        std::fs::read_to_string(&stderr_path).expect("stderr"),
    )
}

/// Signs with `ed` through `agent` and checks the signature with ed25519-dalek.
async fn signs(agent: &Agent, message: &[u8]) {
    let verifier = common::Verifier::fetch(agent.channel().await).await;
    let signed = agent
        .client()
        .await
        .sign(sign_request("ed", message))
        .await
        .expect("sign");
    assert!(verifier.verify("ed", message, &signed.into_inner().signature));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_on_the_same_log_is_refused_and_a_killed_ones_lock_is_not_an_obstacle() {
    let token = token_with_audit("");
    let first = token.start_agent().await;
    signs(&first, b"before").await;

    // The second agent: same log, its own socket.
    let (second, second_socket) = second_config(&token);
    let (refused, stderr) = refused_or_serving(&token, &second, &second_socket);
    assert!(refused, "the second agent started:\n{stderr}");
    let log = audit_path(&token);
    assert!(
        stderr.contains(&log.display().to_string())
            && stderr.contains(&format!("pid {}", first.pid())),
        "the refusal names the log and the first agent's pid {}:\n{stderr}",
        first.pid()
    );
    assert!(!second_socket.exists(), "no socket is left behind");

    // The first agent was not disturbed.
    signs(&first, b"after the refusal").await;

    // SIGKILL: no chance to clean up; the kernel drops its lock.
    let status = Command::new("kill")
        .args(["-KILL", &first.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    drop(first); // reaps it
    let next = Agent::spawn(
        token.command(),
        &second,
        second_socket.clone(),
        token.dir.path(),
    )
    .await;
    signs(&next, b"after the kill").await;
    let (status, text) = tokio::task::spawn_blocking(move || next.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{text}");

    let (ok, text) = verify(&token, &[&log]);
    assert!(ok, "{text}");
    // A genesis and three signatures; the second agent wrote nothing.
    assert!(text.contains("4 records, chain intact"), "{text}");
    assert!(!text.contains("live"), "no one writes the log now: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_on_a_log_written_under_load_says_it_is_live_and_passes() {
    // Small files, so that the log also rotates while it is read.
    let token = token_with_audit("max_bytes = 6000\n");
    let agent = token.start_agent().await;
    let verifier = Arc::new(common::Verifier::fetch(agent.channel().await).await);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(common::sign_load(
        agent.socket.clone(),
        4,
        None,
        stopped,
        verifier,
    ));
    let log = audit_path(&token);
    let live = format!("the log is live (written by pid {})", agent.pid());
    let written_before = records_in(&log);
    for _ in 0..6 {
        let (ok, text) = verify(&token, &[&log]);
        assert!(ok, "a false alarm on a live log: {text}");
        assert!(text.contains(&live), "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        records_in(&log) > written_before,
        "records were written while the log was verified"
    );
    stop.send(true).expect("stop the load");
    let outcomes = load.await.expect("load");
    let signed = outcomes
        .iter()
        .filter(|o| o.code == tonic::Code::Ok)
        .count();
    assert!(signed > 0, "the load signed: {outcomes:?}");
    let (status, text) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{text}");
    let rotated = PathBuf::from(format!("{}.1", log.display()));
    assert!(rotated.exists(), "the log rotated under load");
    let (ok, text) = verify(&token, &[&log]);
    assert!(ok && !text.contains("live"), "at rest: {text}");
}

/// How many records the log and its rotated files hold now.
fn records_in(log: &Path) -> usize {
    let mut files = vec![log.to_owned()];
    files.extend(
        (1..)
            .map(|n| PathBuf::from(format!("{}.{n}", log.display())))
            .take_while(|p| p.exists()),
    );
    files
        .iter()
        .map(|f| std::fs::read(f).map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count()))
        .sum()
}

/// The record numbers the log's last line and its head file name.
fn last_and_head(token: &TestToken) -> (u64, Option<u64>) {
    let log = std::fs::read_to_string(audit_path(token)).expect("log");
    let last: serde_json::Value =
        serde_json::from_str(log.lines().last().expect("a record")).expect("JSON");
    let head = std::fs::read_to_string(token.dir.path().join("audit.jsonl.head")).expect("head");
    let head: Option<serde_json::Value> = serde_json::from_str(head.trim_end()).ok();
    (
        last["seq"].as_u64().expect("seq"),
        head.and_then(|h| h["seq"].as_u64()),
    )
}

#[tokio::test]
async fn with_fsync_interval_an_idle_agents_last_records_are_synced_by_its_timer() {
    // A record's own write syncs only when a sync is due; the records written within the
    // interval of the last sync, followed by silence, must still reach the disk within about
    // one interval. The head file names the last record synced, so it shows when they have.
    let token = token_with_audit("fsync = \"interval\"\nfsync_interval_ms = 1500");
    let agent = token.start_agent().await;
    for i in 0..3 {
        signs(&agent, format!("idle {i}").as_bytes()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (last, head) = loop {
        let (last, head) = last_and_head(&token);
        if head == Some(last) || Instant::now() > deadline {
            break (last, head);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        head,
        Some(last),
        "the idle agent's last record was never synced (the head file names the last synced \
         record)"
    );
}
