//! The agent in front of a slow HSM (`crates/pkcs11-slow` in front of SoftHSM2): it signs and
//! verifies through the pass-through and every signature verifies independently; and with a
//! one-at-a-time 100 ms device and 64 clients, every call is answered by the agent itself (`OK`,
//! `RESOURCE_EXHAUSTED` or `DEADLINE_EXCEEDED`) before the client's own deadline fires, while
//! the agent's memory and its queue stay within their limits.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::ports::free_port;
use common::raw_h2;
use common::requests::sign_request;
use common::slow::{self, Device};
use common::{TestToken, Verifier, VERIFIABLE_KEYS};
use signet::grpc::proto::{SignResponse, VerifyRequest};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_signs_and_verifies_through_the_pass_through() {
    let extra = "sessions = 4";
    let token = TestToken::with_config_extra(extra).with_verifiable_keys();
    slow::route_through(&token, extra);
    let device = Device {
        latency: Duration::from_millis(2),
        parallel: 2,
    };
    let agent = slow::start_agent(&token, device).await;
    let verifier = Arc::new(Verifier::fetch(agent.channel().await).await);

    // 8 clients, 96 calls over the three keys; sign_load verifies every signature.
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let outcomes = common::sign_load(agent.socket.clone(), 8, Some(96), stop, verifier).await;
    assert_eq!(outcomes.len(), 96);
    for outcome in &outcomes {
        assert_eq!(outcome.code, Code::Ok, "{}", outcome.message);
    }

    // Verify goes to the device too (C_VerifyInit + C_Verify for HMAC).
    let mut client = agent.client().await;
    let signature = client
        .sign(sign_request("hmac", b"through"))
        .await
        .expect("sign")
        .into_inner()
        .signature;
    assert!(common::verify_hmac(b"through", &signature));
    for (message, valid) in [(&b"through"[..], true), (&b"tampered"[..], false)] {
        let answer = client
            .verify(VerifyRequest {
                key_id: "hmac".into(),
                message: message.to_vec(),
                signature: signature.clone(),
                ..Default::default()
            })
            .await
            .expect("verify")
            .into_inner();
        assert_eq!(answer.valid, valid);
    }
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}

/// The agent's resident memory in bytes, from /proc.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// `GET /metrics`, as text.
fn metrics(port: u16) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics");
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("response");
    text
}

/// The value of the unlabelled gauge `name`.
fn gauge(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// The highest RSS and queue and busy gauges seen while sampling.
#[derive(Default, Debug)]
struct Peaks {
    rss: u64,
    queued: f64,
    busy: f64,
    samples: usize,
}

const SESSIONS: usize = 4;
const QUEUE_DEPTH: usize = 8;
const MESSAGE_BYTES: usize = 16 << 10;
const MAX_QUEUED_BYTES: usize = 128 << 10;
/// The deadline each call sends (grpc-timeout); the agent must answer within it.
const DEADLINE: Duration = Duration::from_millis(800);
/// How long past its deadline the client itself waits before giving up on the agent: a wide
/// margin for a noisy machine, so only an agent that ignores deadlines trips it.
const MARGIN: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_on_a_one_at_a_time_device_are_answered_within_their_deadlines() {
    let port = free_port();
    let extra = format!(
        "sessions = {SESSIONS}\n\n[limits]\nqueue_depth = {QUEUE_DEPTH}\n\
         max_message_bytes = {MESSAGE_BYTES}\nmax_queued_bytes = {MAX_QUEUED_BYTES}\n\n[metrics]\naddress = \"127.0.0.1:{port}\"\n"
    );
    let token = TestToken::with_config_extra(&extra).with_verifiable_keys();
    slow::route_through(&token, &extra);
    let device = Device {
        latency: Duration::from_millis(100),
        parallel: 1,
    };
    let agent = slow::start_agent(&token, device).await;
    let verifier = Arc::new(Verifier::fetch(agent.channel().await).await);
    let baseline = rss(agent.pid());

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pid) = (stop.clone(), agent.pid());
        std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            while !stop.load(Ordering::Relaxed) {
                let text = metrics(port);
                peaks.rss = peaks.rss.max(rss(pid));
                peaks.queued = peaks.queued.max(gauge(&text, "signet_queue_depth"));
                peaks.busy = peaks.busy.max(gauge(&text, "signet_sessions_busy"));
                peaks.samples += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            peaks
        })
    };

    // 64 clients, each on its own connection, each calling for 3 s; a refused call is retried
    // after a short pause, as a client with backoff would.
    let until = Instant::now() + Duration::from_secs(3);
    let mut tasks = tokio::task::JoinSet::new();
    for client_no in 0..64usize {
        let (socket, verifier) = (agent.socket.clone(), verifier.clone());
        tasks.spawn(async move {
            // Raw HTTP/2, so the deadline is only the agent's to keep: tonic's client would
            // also enforce the grpc-timeout it sends and race the agent's own answer.
            let connection = raw_h2::connect(&socket).await;
            let timeout = format!("{}m", DEADLINE.as_millis());
            let mut codes = Vec::new();
            for i in 0.. {
                if Instant::now() >= until {
                    break;
                }
                let key = VERIFIABLE_KEYS[(client_no + i) % 3];
                let mut message = vec![0u8; MESSAGE_BYTES];
                message[..8].copy_from_slice(&((client_no << 32) + i).to_be_bytes());
                let request = sign_request(key, &message);
                let headers = [("grpc-timeout", timeout.as_str())];
                let call = raw_h2::call(
                    &connection,
                    "/signet.v1.Signer/Sign",
                    &headers,
                    &request,
                    Duration::ZERO,
                );
                let answer = tokio::time::timeout(DEADLINE + MARGIN, call)
                    .await
                    .unwrap_or_else(|_| {
                        panic!("the agent had not answered {MARGIN:?} after the call's deadline")
                    });
                let code = Code::from_i32(answer.status);
                match code {
                    Code::Ok => {
                        let signature = answer.decode::<SignResponse>().signature;
                        assert!(
                            verifier.verify(key, &message, &signature),
                            "a signature from {key} does not verify"
                        );
                    }
                    Code::ResourceExhausted | Code::DeadlineExceeded => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    _ => panic!(
                        "only OK, RESOURCE_EXHAUSTED or DEADLINE_EXCEEDED: {code:?} {}",
                        answer.message
                    ),
                }
                codes.push(code);
            }
            codes
        });
    }
    let mut counts = BTreeMap::new();
    while let Some(codes) = tasks.join_next().await {
        for code in codes.expect("a client panicked") {
            *counts.entry(format!("{code:?}")).or_insert(0usize) += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let peaks = sampler.join().expect("sampler");
    eprintln!("answers: {counts:?}; baseline RSS {baseline} B; peaks: {peaks:?}");

    assert!(
        counts.get("Ok").copied().unwrap_or(0) > 0,
        "the device served some calls: {counts:?}"
    );
    assert!(
        counts.get("DeadlineExceeded").copied().unwrap_or(0) > 0,
        "64 clients on a 10-per-second device meet their deadlines: {counts:?}"
    );
    assert!(peaks.samples > 0);
    assert!(
        peaks.queued <= QUEUE_DEPTH as f64,
        "the queue stays within limits.queue_depth: {peaks:?}"
    );
    assert!(
        peaks.busy <= SESSIONS as f64,
        "no more calls in the HSM than sessions: {peaks:?}"
    );
    // The agent holds at most 128 KiB of queued messages (limits.max_queued_bytes), and 64
    // calls of 16 KiB in flight are 1 MiB; the bound leaves room for allocator noise and 64
    // connections' buffers.
    assert!(
        peaks.rss <= baseline + (64 << 20),
        "the agent's memory stays bounded: {} MiB over a baseline of {} MiB",
        (peaks.rss - baseline) >> 20,
        baseline >> 20
    );
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}
