//! Connections at the edge: a listener holds at most `limits.max_connections` (the one over it
//! is told so, cleanly, and a new one is served once another closes), and running out of file
//! descriptors makes the accept loop back off and say so once, not spin, and the agent signs
//! again once descriptors are free.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::ports::free_port;
use common::requests::sign_request;
use common::{signet_bin, Agent, TestToken, Verifier};
use signet::grpc::proto::signer_client::SignerClient;
use tonic::transport::Channel;

/// A Sign on `channel` for `ed`, verified; the error status if refused.
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

/// A new connection to the agent on which a Sign succeeds, trying again (on new connections)
/// while the agent is still closing earlier ones.
async fn served_connection(agent: &Agent, verifier: &Verifier) -> Channel {
    let mut last = None;
    for _ in 0..250 {
        let channel = agent.channel().await;
        match sign(channel.clone(), verifier, b"served").await {
            Ok(()) => return channel,
            Err(status) => last = Some(status),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no connection was served: {last:?}\n{}", agent.log_text());
}

/// `GET /metrics` on the metrics listener.
fn metrics(port: u16) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    response
}

/// The value of the counter `name` for the (one) unix listener, 0 when absent.
fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(&format!("{name}{{listener=\"unix:")))
        .find_map(|line| line.rsplit_once(' ')?.1.parse().ok())
        .unwrap_or(0.0)
}

/// The warning that starts an episode of failed accepts, and the line that ends it.
const FAILS: &str = "accepting connections fails";
const AGAIN: &str = "accepting connections again";

/// How often `needle` appears in the agent's log.
fn times_logged(agent: &Agent, needle: &str) -> usize {
    agent.log_text().matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connection_over_the_limit_is_told_so_and_a_freed_slot_serves_again() {
    let port = free_port();
    let token = TestToken::with_config_extra(&format!(
        "\n[limits]\nmax_connections = 2\n\n[metrics]\naddress = \"127.0.0.1:{port}\"\n"
    ))
    .with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;

    let first = served_connection(&agent, &verifier).await;
    let second = served_connection(&agent, &verifier).await;
    let status = sign(agent.channel().await, &verifier, b"one too many")
        .await
        .expect_err("a third connection is over the limit");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("this listener already has 2 connections (limits.max_connections)"),
        "{status:?}"
    );
    assert!(
        std::error::Error::source(&status).is_none(),
        "an answer from the agent, not a transport failure: {status:?}"
    );
    let text = metrics(port);
    assert_eq!(
        counter(&text, "signet_connections_refused_total"),
        1.0,
        "{text}"
    );
    // The served connections are untouched.
    sign(second.clone(), &verifier, b"still served")
        .await
        .expect("the second connection still serves");

    // One closes: a new connection is served in its place.
    drop(first);
    let third = served_connection(&agent, &verifier).await;
    sign(second, &verifier, b"both").await.expect("second");
    sign(third, &verifier, b"both").await.expect("third");
    assert_eq!(times_logged(&agent, "refusing new connections"), 1);
}

/// `prlimit`, or a panic that says how to install it.
fn prlimit() -> &'static str {
    let found = Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "prlimit is not installed, and this test lowers the agent's RLIMIT_NOFILE with it.\n\
         Install it with: sudo apt-get install -y util-linux"
    );
    "prlimit"
}

/// The process's CPU time (user + system) in clock ticks, from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let after = stat.rsplit_once(") ").expect("stat format").1;
    let fields: Vec<&str> = after.split(' ').collect();
    let field = |n: usize| -> u64 { fields[n - 3].parse().expect("a number") };
    field(14) + field(15)
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn ticks_per_second() -> u64 {
    let out = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK")
}

/// The file descriptors `pid` has open.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(Iterator::count)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_accept_loop_backs_off_and_recovers() {
    const NOFILE: usize = 64;
    let port = free_port();
    let token =
        TestToken::with_config_extra(&format!("\n[metrics]\naddress = \"127.0.0.1:{port}\"\n"))
            .with_verifiable_keys();
    let signet = token.command();
    let mut command = Command::new(prlimit());
    command
        .arg(format!("--nofile={NOFILE}:{NOFILE}"))
        .arg(signet_bin())
        .current_dir(token.dir.path());
    for (name, value) in signet.get_envs() {
        if let Some(value) = value {
            command.env(name, value);
        }
    }
    let agent = Agent::spawn(
        command,
        &token.config,
        token.socket.clone(),
        token.dir.path(),
    )
    .await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let pid = agent.pid();
    // Until the connections of the start-up probes and of the verifier are closed.
    let mut idle = open_fds(pid);
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = open_fds(pid);
        if now == idle {
            break;
        }
        idle = now;
    }
    assert!(
        idle + 8 < NOFILE,
        "the agent uses {idle} file descriptors idle; raise NOFILE in this test"
    );

    // More connections than the agent has descriptors left: it accepts until it has none.
    let mut held = Vec::new();
    for _ in 0..NOFILE {
        held.push(connect(&agent.socket).await);
    }
    for _ in 0..500 {
        if open_fds(pid) >= NOFILE - 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // (Counted from outside; a descriptor the test runner let the agent inherit may add one.)
    assert!(
        open_fds(pid) >= NOFILE - 1,
        "the agent should have run out of file descriptors ({} open):\n{}",
        open_fds(pid),
        agent.log_text()
    );

    // Held for a while: the agent keeps failing to accept the rest, without spinning.
    let window = Duration::from_secs(2);
    let before = cpu_ticks(pid);
    tokio::time::sleep(window).await;
    let used = cpu_ticks(pid) - before;
    let window_ticks = window.as_secs() * ticks_per_second();
    assert!(
        used * 10 < window_ticks,
        "the agent used {used} of {window_ticks} clock ticks while out of descriptors: a busy \
         accept loop\n{}",
        agent.log_text()
    );
    // Once per episode (an earlier connection closing late may end one and start another).
    let log = agent.log_text();
    assert!(
        log.matches(FAILS).count() >= 1
            && log.matches(FAILS).count() == log.matches(AGAIN).count() + 1,
        "a warning when an episode starts, a line when it ends:\n{log}"
    );

    // Closed: the agent accepts again, says so once, and its keys sign.
    drop(held);
    let channel = served_connection(&agent, &verifier).await;
    sign(channel, &verifier, b"after the episode")
        .await
        .expect("a Sign after the episode");
    let log = agent.log_text();
    assert_eq!(
        log.matches("accepting connections fails").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("accepting connections again").count(),
        1,
        "{log}"
    );
    let text = metrics(port);
    assert!(
        counter(&text, "signet_accept_errors_total") >= 1.0,
        "the failed accepts are counted:\n{text}"
    );
}

/// A raw connection to the agent's socket (no HTTP/2: it only holds a descriptor there).
async fn connect(socket: &Path) -> tokio::net::UnixStream {
    tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect (queued by the kernel even when the agent cannot accept)")
}
