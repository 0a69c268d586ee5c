//! Real faults on a real token: the agent runs in this test's process on a PKCS#11 token and
//! serves a steady load while the test, through its own handle on the same module, closes every
//! session of the application (`C_CloseAllSessions`) and later finalises the module
//! (`C_Finalize`). The agent must answer only `UNAVAILABLE` during each outage, report
//! `NOT_SERVING`, recover by itself, and every signature it returns must verify.
//!
//! The scenario shared by `tests/hsm_faults.rs` (SoftHSM2) and `tests/hsm_faults_kryoptic.rs`
//! (Kryoptic): one test per binary, because the module's state is process-wide.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::health::wait_for_health;
use crate::common::in_process::InProcessAgent;
use crate::common::{sign_load, Outcome, TestToken, Verifier};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

/// The agent's log lines, captured in memory (the agent runs in this process).
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// The token's slot, found by label through the test's own handle on the module.
fn slot_of(pkcs11: &Pkcs11, label: &str) -> cryptoki::slot::Slot {
    pkcs11
        .get_slots_with_initialized_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            pkcs11
                .get_token_info(*s)
                .expect("token info")
                .label()
                .trim()
                == label
        })
        .expect("the test token")
}

/// What a fault did to the load: errors by code, and the outage as clients saw it (from the
/// fault to the first success after the last error).
fn summarize(name: &str, outcomes: &[Outcome], fault_at: Instant) -> (usize, Duration) {
    let errors: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.code != tonic::Code::Ok)
        .collect();
    for e in &errors {
        assert_eq!(
            e.code,
            tonic::Code::Unavailable,
            "{name}: only UNAVAILABLE during an outage, got {:?}: {}",
            e.code,
            e.message
        );
    }
    let last_error = errors.iter().map(|e| e.at).max().unwrap_or(fault_at);
    let recovered = outcomes
        .iter()
        .filter(|o| o.code == tonic::Code::Ok && o.at > last_error)
        .map(|o| o.at)
        .min()
        .expect("signatures after the outage");
    let outage = recovered.saturating_duration_since(fault_at);
    let ok = outcomes
        .iter()
        .filter(|o| o.code == tonic::Code::Ok)
        .count();
    println!(
        "{name}: {} calls, {ok} verified signatures, {} UNAVAILABLE, clients saw the outage for \
         {outage:?}",
        outcomes.len(),
        errors.len()
    );
    (errors.len(), outage)
}

/// The scenario on `token` (SoftHSM2 or Kryoptic): closed sessions, a finalised module, and a
/// PIN changed behind the agent's back.
pub fn run(token: TestToken) {
    let token = token.with_verifiable_keys();
    let logs = LogBuffer::default();
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .init();
    let mut recoveries = 0;
    // This process talks to the token directly from here on (the agent and the fault injector).
    let (var, conf) = token.conf_env();
    std::env::set_var(var, conf);
    let config = signet::config::Config::load(&token.config).expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (backend, workers) = signet::server::open_backend(&config).expect("backend");
        let agent = InProcessAgent::serve(config, backend, workers).await;
        wait_for_health(&token.socket, true, Duration::from_secs(10)).await;
        let verifier = Arc::new(
            Verifier::fetch(
                crate::common::connect(&token.socket)
                    .await
                    .expect("connect"),
            )
            .await,
        );

        let injector = Pkcs11::new(&token.module).expect("module");
        match injector.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(())
            | Err(cryptoki::error::Error::Pkcs11(
                cryptoki::error::RvError::CryptokiAlreadyInitialized,
                _,
            )) => {}
            Err(e) => panic!("initialising the module for the injector: {e}"),
        }

        for fault in ["C_CloseAllSessions", "C_Finalize"] {
            let (mut load_stop, load_stop_rx) = tokio::sync::watch::channel(false);
            let mut load = tokio::spawn(sign_load(
                token.socket.clone(),
                8,
                None,
                load_stop_rx,
                verifier.clone(),
            ));
            tokio::time::sleep(Duration::from_millis(300)).await;
            // PKCS#11 leaves closing a session or finalising the module undefined while other
            // threads are inside calls on it, and SoftHSM2 then crashes (a device that goes away
            // fails the calls instead). So the load pauses around the fault and resumes at
            // once, before the agent can have noticed anything: it finds out from its next calls.
            load_stop.send(true).expect("pause load");
            let before = load.await.expect("load task");
            assert!(
                before.iter().all(|o| o.code == tonic::Code::Ok),
                "{fault}: before"
            );
            match fault {
                "C_CloseAllSessions" => pkcs11_faults::close_all_sessions(
                    &token.module,
                    slot_of(&injector, &token.label).id(),
                )
                .expect("C_CloseAllSessions"),
                _ => injector.clone().finalize().expect("C_Finalize"),
            }
            let fault_at = Instant::now();
            let (stop, rx) = tokio::sync::watch::channel(false);
            load_stop = stop;
            load = tokio::spawn(sign_load(
                token.socket.clone(),
                8,
                None,
                rx,
                verifier.clone(),
            ));
            // The outage can be shorter than any poll, so the agent's own account is read from
            // its log; that health follows the HSM state is tested with a controlled backend
            // in tests/faults.rs.
            let up = loop {
                let log = logs.text();
                if log.matches("re-established").count() > recoveries {
                    recoveries += 1;
                    break Instant::now();
                }
                assert!(
                    fault_at.elapsed() < Duration::from_secs(20),
                    "{fault}: no recovery:\n{log}"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            };
            wait_for_health(&token.socket, true, Duration::from_secs(5)).await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            load_stop.send(true).expect("stop load");
            let outcomes = load.await.expect("load task");
            let (_, outage) = summarize(fault, &outcomes, fault_at);
            let log = logs.text();
            let line = log
                .lines()
                .rfind(|l| l.contains("re-established"))
                .unwrap_or_default();
            println!("{fault}: the agent logged: {line}");
            // Every recovery follows a detected loss. (Once, in a full parallel test run, one
            // more loss than recoveries was counted here; not explained yet, see the issue 5
            // note. That the agent serves again afterwards is asserted below.)
            assert!(
                log.matches("lost the HSM connection").count() >= recoveries,
                "{log}"
            );
            // No count of "health NOT_SERVING" lines: health follows the latest state, so an
            // outage of a few milliseconds may pass between two looks and never show there.
            assert!(
                outcomes
                    .iter()
                    .filter(|o| o.at > up && o.code == tonic::Code::Ok)
                    .count()
                    > 0,
                "{fault}: signatures after recovery"
            );
            assert!(
                outage < Duration::from_secs(20),
                "{fault}: recovered by itself"
            );
        }

        // The PIN changes behind the agent's back, then the connection is lost: the re-login
        // is refused and never retried; the agent reports a failed state and stays there.
        let slot = slot_of(&injector, &token.label);
        let session = injector
            .open_rw_session(slot)
            .expect("session (logged in by the agent)");
        session
            .set_pin(
                &cryptoki::types::AuthPin::from(crate::common::TEST_PIN.to_owned()),
                &cryptoki::types::AuthPin::from("a-new-pin-8c1d".to_owned()),
            )
            .expect("C_SetPIN");
        std::mem::forget(session); // closed by C_CloseAllSessions below
        pkcs11_faults::close_all_sessions(&token.module, slot.id()).expect("C_CloseAllSessions");
        let mut client = signet::grpc::proto::signer_client::SignerClient::new(
            crate::common::connect(&token.socket)
                .await
                .expect("connect"),
        );
        let request = || signet::grpc::proto::SignRequest {
            key_id: "ed".into(),
            message: b"after the PIN changed".to_vec(),
            ..Default::default()
        };
        let status = client
            .sign(request())
            .await
            .expect_err("the session is gone");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !logs.text().contains("will not try again") {
            assert!(
                Instant::now() < deadline,
                "no failed state:\n{}",
                logs.text()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Longer than a probe interval and many backoff steps: still exactly one refusal.
        tokio::time::sleep(signet::backend::pkcs11::PROBE_INTERVAL + Duration::from_millis(500))
            .await;
        let log = logs.text();
        // The supervisor's own line, once per login attempt that the token refused.
        let refusals = log.matches("serving: logging in again after an HSM outage failed");
        assert_eq!(
            refusals.count(),
            1,
            "one refused C_Login, never retried:\n{log}"
        );
        assert!(log.contains("CKR_PIN_INCORRECT"), "{log}");
        assert!(
            !log.contains("a-new-pin-8c1d") && !log.contains(crate::common::TEST_PIN),
            "{log}"
        );
        wait_for_health(&token.socket, false, Duration::from_secs(1)).await;
        let status = client.sign(request()).await.expect_err("failed state");
        assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
        assert!(status.message().contains("operator"), "{status:?}");
        println!(
            "PIN changed behind the agent: one refused re-login, failed state, health NOT_SERVING"
        );

        agent.stop().await;
    });
}
