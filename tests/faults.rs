//! Faults a real token cannot produce, injected at the backend seam: a device that returns a
//! corrupted signature, a call that hangs, a device that flaps, a full queue. The real agent
//! (`serve_until`, gRPC over a unix socket) runs in this process over a fault-injecting backend
//! that signs with a software Ed25519 key, so every signature it returns can be verified.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::in_process::InProcessAgent;
use common::requests::sign_request;
use ed25519_dalek::Signer as _;
use signet::backend::{Backend, HsmState, Registry};
use signet::grpc::proto::SignRequest;
use signet::Error;
use signet::PublicKey;
use signet::{Algorithm, KeyDescriptor};
use tokio::sync::watch;

/// What the fake device does with the next calls.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Healthy,
    /// Flips a bit of every signature.
    Corrupt,
    /// Calls whose message starts with "hang" block until the mode changes.
    Hang,
    /// Every call fails as a lost device does.
    Gone,
}

struct FaultyDevice {
    key: ed25519_dalek::SigningKey,
    mode: Mutex<Mode>,
    changed: std::sync::Condvar,
    calls: AtomicUsize,
    state: watch::Sender<HsmState>,
    registry: Arc<Registry>,
}

impl FaultyDevice {
    fn new() -> Arc<Self> {
        let key = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
        let registry = Arc::new(Registry::new([KeyDescriptor::new(
            "ed",
            Algorithm::Ed25519,
            Some(PublicKey::Ed25519(key.verifying_key())),
        )]));
        Arc::new(FaultyDevice {
            registry,
            key,
            mode: Mutex::new(Mode::Healthy),
            changed: std::sync::Condvar::new(),
            calls: AtomicUsize::new(0),
            state: watch::channel(HsmState::Serving).0,
        })
    }

    /// Verifies a signature the agent returned, with ed25519-dalek and the device's key.
    fn check(&self, message: &[u8], signature: &[u8]) {
        let signature = ed25519_dalek::Signature::from_slice(signature).expect("64 bytes");
        self.key
            .verifying_key()
            .verify_strict(message, &signature)
            .expect("the signature verifies");
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().expect("mode") = mode;
        self.changed.notify_all();
    }
}

impl Backend for FaultyDevice {
    fn registry(&self) -> Arc<Registry> {
        Arc::clone(&self.registry)
    }

    fn rescan(&self) -> Result<(), Error> {
        Ok(())
    }

    fn sign(&self, _key_id: &str, _version: u32, input: &[u8]) -> Result<Vec<u8>, Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut mode = self.mode.lock().expect("mode");
        while *mode == Mode::Hang && input.starts_with(b"hang") {
            mode = self.changed.wait(mode).expect("mode");
        }
        match *mode {
            Mode::Gone => Err(signet::HsmError::new(
                signet::HsmFault::Lost,
                "C_Sign",
                "C_Sign returned CKR_DEVICE_REMOVED",
            )
            .into()),
            Mode::Corrupt => {
                let mut signature = self.key.sign(input).to_bytes().to_vec();
                signature[7] ^= 0x10;
                Ok(signature)
            }
            _ => Ok(self.key.sign(input).to_bytes().to_vec()),
        }
    }

    fn verify(
        &self,
        _key_id: &str,
        _version: u32,
        _input: &[u8],
        _signature: &[u8],
    ) -> Result<bool, Error> {
        Err(Error::Internal("this fake device holds no HMAC key".into()))
    }

    fn state(&self) -> watch::Receiver<HsmState> {
        self.state.subscribe()
    }

    fn shutdown(&self) {
        self.set(Mode::Healthy);
    }
}

/// A Sign request for the device's one key, `ed`.
fn sign(message: &[u8]) -> SignRequest {
    sign_request("ed", message)
}

/// A request whose `grpc-timeout` header carries the deadline, without the client enforcing it
/// itself (tonic's `set_timeout` would end the call on the client side first): what the agent
/// answers at the deadline is what is tested.
fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value = format!("{}m", timeout.as_millis());
    request
        .metadata_mut()
        .insert("grpc-timeout", value.parse().expect("header value"));
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_signature_is_never_returned() {
    let device = FaultyDevice::new();
    let agent = InProcessAgent::start(device.clone(), 2, "").await;
    let mut client = agent.client().await;
    device.set(Mode::Corrupt);
    for i in 0..20u8 {
        let status = client.sign(sign(&[i])).await.expect_err("withheld");
        assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");
        assert!(status.message().contains("does not verify"), "{status:?}");
    }
    device.set(Mode::Healthy);
    let signature = client
        .sign(sign(b"ok"))
        .await
        .expect("sign")
        .into_inner()
        .signature;
    let signature = ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes");
    device
        .key
        .verifying_key()
        .verify_strict(b"ok", &signature)
        .expect("verifies");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_call_ends_at_the_deadline_and_does_not_wedge_the_pool() {
    let device = FaultyDevice::new();
    let agent = InProcessAgent::start(device.clone(), 2, "").await;
    let mut client = agent.client().await;
    device.set(Mode::Hang);
    let started = Instant::now();
    let status = client
        .sign(with_timeout(sign(b"hang 1"), Duration::from_millis(200)))
        .await
        .expect_err("deadline");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("deadline"), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered at the deadline"
    );

    // One worker is stuck in the hung call; the other keeps serving.
    for i in 0..10u8 {
        let signed = client
            .sign(sign(&[i]))
            .await
            .expect("the other worker serves");
        device.check(&[i], &signed.into_inner().signature);
    }

    // With both workers stuck, a call waits in the queue; once its deadline has passed it is
    // answered, and it is not started when a worker frees up.
    let status = client
        .sign(with_timeout(sign(b"hang 2"), Duration::from_millis(200)))
        .await
        .expect_err("deadline");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    let calls = device.calls.load(Ordering::SeqCst);
    let status = client
        .sign(with_timeout(sign(b"queued"), Duration::from_millis(100)))
        .await
        .expect_err("deadline");
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    device.set(Mode::Healthy);
    for i in 0..10u8 {
        let signed = client
            .sign(sign(&[i]))
            .await
            .expect("the pool serves again");
        device.check(&[i], &signed.into_inner().signature);
    }
    assert_eq!(
        device.calls.load(Ordering::SeqCst),
        calls + 10,
        "the queued call whose deadline passed was never started"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_device_gives_only_unavailable_and_health_follows_it() {
    let device = FaultyDevice::new();
    let agent = InProcessAgent::start(device.clone(), 2, "").await;
    let mut client = agent.client().await;
    assert_eq!(agent.health().await, 1, "SERVING");
    for round in 0..5 {
        device.set(Mode::Gone);
        device.state.send_replace(HsmState::Recovering);
        let status = client.sign(sign(b"x")).await.expect_err("device gone");
        assert_eq!(
            status.code(),
            tonic::Code::Unavailable,
            "round {round}: {status:?}"
        );
        assert!(!status.message().contains("CKR_"), "{status:?}");
        wait_for(|| async { agent.health().await == 2 }).await;
        device.set(Mode::Healthy);
        device.state.send_replace(HsmState::Serving);
        wait_for(|| async { agent.health().await == 1 }).await;
        let signed = client.sign(sign(b"back")).await.expect("serving again");
        device.check(b"back", &signed.into_inner().signature);
    }
    device
        .state
        .send_replace(HsmState::Failed("the PIN was refused at re-login".into()));
    wait_for(|| async { agent.health().await == 2 }).await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_at_once_and_memory_stays_bounded() {
    let device = FaultyDevice::new();
    // One worker and a deep queue: what refuses calls here is the byte budget, 3 messages of
    // 64 KiB (the running call's bytes count until it finishes).
    let agent = InProcessAgent::start(
        device.clone(),
        1,
        "queue_depth = 100\nmax_message_bytes = 65536\nmax_queued_bytes = 196608",
    )
    .await;
    device.set(Mode::Hang);
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..12u8 {
        let mut client = agent.client().await;
        let device = Arc::clone(&device);
        calls.spawn(async move {
            let started = Instant::now();
            let reply = client
                .sign(with_timeout(
                    sign(&hanging_message(i)),
                    Duration::from_secs(3),
                ))
                .await;
            let reply = reply.map(|r| device.check(&hanging_message(i), &r.into_inner().signature));
            (reply.map_err(|s| s.code()), started.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    device.set(Mode::Healthy);
    let mut refused = 0;
    while let Some(done) = calls.join_next().await {
        match done.expect("task") {
            (Ok(()), _) => {}
            (Err(tonic::Code::ResourceExhausted), took) => {
                refused += 1;
                assert!(
                    took < Duration::from_secs(1),
                    "refused at once, took {took:?}"
                );
            }
            (Err(code), _) => panic!("unexpected {code:?}"),
        }
    }
    assert_eq!(
        refused, 9,
        "3 of 12 fit the byte budget (1 running, 2 queued)"
    );
    // The budget was given back: three more fit again.
    let mut client = agent.client().await;
    for i in 0..3u8 {
        let signed = client
            .sign(sign(&hanging_message(i)))
            .await
            .expect("room again");
        device.check(&hanging_message(i), &signed.into_inner().signature);
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crc32c_guards_the_message_and_the_signature() {
    let device = FaultyDevice::new();
    let agent = InProcessAgent::start(device.clone(), 2, "").await;
    let mut client = agent.client().await;
    let message = b"integrity on the wire".to_vec();
    let reply = client
        .sign(SignRequest {
            message_crc32c: Some(crc32c::crc32c(&message)),
            ..sign(&message)
        })
        .await
        .expect("matching checksum")
        .into_inner();
    assert!(reply.verified_message_crc32c);
    assert_eq!(reply.signature_crc32c, crc32c::crc32c(&reply.signature));
    let reply = client
        .sign(sign(&message))
        .await
        .expect("no checksum")
        .into_inner();
    assert!(!reply.verified_message_crc32c);
    assert_eq!(reply.signature_crc32c, crc32c::crc32c(&reply.signature));

    let calls = device.calls.load(Ordering::SeqCst);
    let status = client
        .sign(SignRequest {
            message_crc32c: Some(crc32c::crc32c(&message) ^ 1),
            ..sign(&message)
        })
        .await
        .expect_err("mismatch");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("message_crc32c does not match"),
        "{status:?}"
    );
    assert_eq!(
        device.calls.load(Ordering::SeqCst),
        calls,
        "nothing was signed"
    );
    agent.stop().await;
}

/// A 60,000-byte message the device hangs on (in `Mode::Hang`).
fn hanging_message(i: u8) -> Vec<u8> {
    let mut message = b"hang".to_vec();
    message.resize(60_000, i);
    message
}

async fn wait_for<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !condition().await {
        assert!(
            Instant::now() < deadline,
            "condition not reached within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
