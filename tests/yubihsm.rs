//! What only the YubiHSM backend has to get right, on `yubihsm`'s MockHsm served over HTTP like
//! `yubihsm-connector`: a refused password (one attempt, a clear error), session expiry and
//! transparent reopen, keep-alive, and connector loss and recovery (the connector restarts; the
//! device is replaced). Every signature the tests receive is verified independently.
//!
//! MockHsm never expires a session by itself, so expiry is exercised through the backend's own
//! idle limit, shortened here; the device's 30-second timer needs a real YubiHSM2.
#![cfg(feature = "yubihsm-mock")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::health::wait_for_health;
use common::in_process::InProcessAgent;
use common::requests::sign_request;
use common::yubihsm::{put_auth_key, FakeConnector, TestYubiHsm, AUTH_KEY, TEST_PASSWORD};
use common::{sign_load, Device, Verifier, HMAC_SECRET};
use signet::backend::yubihsm::admin::YubiHsmAdmin;
use signet::backend::yubihsm::{Device as YubiDevice, Timing, YubiHsmBackend};
use signet::backend::{Backend, HsmState};
use signet::Algorithm;
use signet::Secret;
use tokio::sync::watch;

/// The backend's view of the fake connector, with `password`.
fn device(connector: &FakeConnector, password: &str) -> YubiDevice {
    device_as(connector, AUTH_KEY, password)
}

/// The backend's view of the fake connector, opening sessions with `auth_key` and `password`.
fn device_as(connector: &FakeConnector, auth_key: u16, password: &str) -> YubiDevice {
    let http = yubihsm::Connector::http(&yubihsm::connector::HttpConfig {
        addr: "127.0.0.1".into(),
        port: connector.port,
        timeout_ms: 5_000,
    });
    YubiDevice::with_connector(http, auth_key, &Secret::new(password.into()))
}

/// `ed`, `ec` and `hmac` (from [`HMAC_SECRET`]) made through the key commands' library.
fn add_verifiable_keys(connector: &FakeConnector) {
    let admin = YubiHsmAdmin::open_with(&device(connector, TEST_PASSWORD), 1, None)
        .expect("an admin session");
    signet::keys::generate(&admin, Algorithm::Ed25519, "ed", false).expect("ed");
    signet::keys::generate(&admin, Algorithm::EcdsaP256Sha256, "ec", false).expect("ec");
    signet::keys::import_hmac(&admin, "hmac", &Secret::new(HMAC_SECRET.into())).expect("hmac");
}

/// The backend on the fake connector with the test password and `timing`.
fn open(connector: &FakeConnector, timing: Timing) -> Arc<YubiHsmBackend> {
    Arc::new(
        YubiHsmBackend::open_with(device(connector, TEST_PASSWORD), None, timing).expect("open"),
    )
}

/// The agent in this process on `connector`, whose backend keeps its session alive every
/// 100 ms (so it notices a lost connector quickly); with the backend and its state.
async fn serve_with_keepalive(
    connector: &FakeConnector,
) -> (
    Arc<YubiHsmBackend>,
    watch::Receiver<HsmState>,
    InProcessAgent,
) {
    let backend = open(
        connector,
        Timing {
            keepalive: Duration::from_millis(100),
            ..Timing::default()
        },
    );
    let state = backend.state();
    let agent = InProcessAgent::start(backend.clone(), 2, "").await;
    (backend, state, agent)
}

/// The connector goes away; returns once the backend has noticed.
async fn lose(connector: &FakeConnector, state: &mut watch::Receiver<HsmState>) {
    connector.down();
    state
        .wait_for(|s| *s == HsmState::Recovering)
        .await
        .expect("the backend notices the loss");
}

#[test]
fn a_wrong_password_is_tried_once_and_explained() {
    let hsm = TestYubiHsm::new();
    hsm.generate_key("ed25519", "ed");
    std::fs::write(hsm.dir.path().join("password"), "not-the-password").expect("password");

    let before = hsm.connector.commands();
    let stderr = hsm.refused_start();
    assert!(
        stderr.contains("refused the password of authentication key 2"),
        "{stderr}"
    );
    assert!(
        stderr.contains("exactly one authentication attempt"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    // One attempt: the session is created once; the client sees the device's cryptogram does
    // not match the password and sends nothing more.
    assert_eq!(hsm.connector.commands() - before, 1, "{stderr}");

    let before = hsm.connector.commands();
    let out = hsm.keys("list", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("refused the password"), "{stderr}");
    assert_eq!(hsm.connector.commands() - before, 1, "{stderr}");

    // In-process, the error is LoginRefused, never retried.
    let e = YubiHsmBackend::open_with(
        device(&hsm.connector, "not-the-password"),
        None,
        Timing::default(),
    )
    .err()
    .expect("refused");
    assert!(e.is_login_refused(), "{e:?}");
}

#[test]
fn an_unreachable_connector_is_named_at_start() {
    let hsm = TestYubiHsm::new();
    hsm.connector.down();
    let stderr = hsm.refused_start();
    assert!(stderr.contains("cannot reach the YubiHSM"), "{stderr}");
    assert!(stderr.contains("yubihsm-connector"), "{stderr}");
    assert!(
        stderr.contains("Connection refused"),
        "the operating system's reason: {stderr}"
    );
    assert!(
        !stderr.contains("protocol error: protocol error"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_session_is_reopened_transparently_and_keepalive_prevents_it() {
    let connector = FakeConnector::start();
    add_verifiable_keys(&connector);

    // No keep-alive, and a session idle for 300 ms is not trusted: the next command opens a
    // new session first, and the caller sees only its signature.
    let backend = open(
        &connector,
        Timing {
            keepalive: Duration::from_secs(3600),
            session_reuse: Duration::from_millis(300),
        },
    );
    let agent = InProcessAgent::start(backend.clone(), 2, "").await;
    let verifier = Verifier::fetch(common::connect(&agent.socket()).await.expect("connect")).await;
    let mut client = agent.client().await;
    let opened = backend.sessions_opened();
    for (round, key) in ["ed", "ec", "hmac"].into_iter().enumerate() {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let message = format!("after an idle pause {round}").into_bytes();
        let signature = client
            .sign(sign_request(key, &message))
            .await
            .expect("signs after the session expired")
            .into_inner()
            .signature;
        assert!(verifier.verify(key, &message, &signature), "{key}");
        assert_eq!(backend.sessions_opened(), opened + round as u64 + 1);
    }
    assert_eq!(*backend.state().borrow(), HsmState::Serving);
    agent.stop().await;

    // With a keep-alive well inside the idle limit, the session stays the same however long
    // the agent is idle.
    let backend = open(
        &connector,
        Timing {
            keepalive: Duration::from_millis(50),
            session_reuse: Duration::from_millis(1500),
        },
    );
    let agent = InProcessAgent::start(backend.clone(), 2, "").await;
    let mut client = agent.client().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    let signature = client
        .sign(sign_request("ed", b"kept alive"))
        .await
        .expect("sign")
        .into_inner()
        .signature;
    assert!(verifier.verify("ed", b"kept alive", &signature));
    assert_eq!(
        backend.sessions_opened(),
        1,
        "the keep-alive kept the session"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_rides_out_a_connector_restart() {
    let connector = Arc::new(FakeConnector::start());
    add_verifiable_keys(&connector);
    let (backend, mut state, agent) = serve_with_keepalive(&connector).await;
    let verifier =
        Arc::new(Verifier::fetch(common::connect(&agent.socket()).await.expect("c")).await);

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(sign_load(
        agent.socket(),
        2,
        None,
        stopped,
        verifier.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;

    lose(&connector, &mut state).await;
    wait_for_health(&agent.socket(), false, Duration::from_secs(30)).await;
    let status = agent
        .client()
        .await
        .sign(sign_request("ed", b"during the outage"))
        .await
        .expect_err("no HSM");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");

    connector.up();
    state
        .wait_for(|s| *s == HsmState::Serving)
        .await
        .expect("the backend recovers");
    wait_for_health(&agent.socket(), true, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).expect("stop the load");
    let outcomes = load.await.expect("load");

    // Every answer was a verified signature (sign_load checks each) or UNAVAILABLE.
    let unexpected: Vec<_> = outcomes
        .iter()
        .filter(|o| !matches!(o.code, tonic::Code::Ok | tonic::Code::Unavailable))
        .collect();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert!(
        outcomes.last().is_some_and(|o| o.code == tonic::Code::Ok),
        "the load ends with signatures again"
    );
    for key in ["ed", "ec", "hmac"] {
        let message = format!("after the restart, {key}").into_bytes();
        let signature = agent
            .client()
            .await
            .sign(sign_request(key, &message))
            .await
            .expect("signs after recovery")
            .into_inner()
            .signature;
        assert!(verifier.verify(key, &message, &signature), "{key}");
    }
    assert!(backend.sessions_opened() >= 2);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_device_serves_again_but_not_the_lost_keys() {
    let connector = FakeConnector::start();
    add_verifiable_keys(&connector);
    let (_backend, mut state, agent) = serve_with_keepalive(&connector).await;

    // A new MockHsm: its factory authentication key 1 only, so the test key must be put again.
    lose(&connector, &mut state).await;
    connector.replace_device();
    put_auth_key(
        &connector.client_with_default_key(),
        TEST_PASSWORD.as_bytes(),
    )
    .expect("put the test authentication key on the new device");
    connector.up();
    state
        .wait_for(|s| *s == HsmState::Serving)
        .await
        .expect("serves again");
    let status = agent
        .client()
        .await
        .sign(sign_request("ed", b"the key was on the old device"))
        .await
        .expect_err("gone");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    assert!(
        status.message().contains("no longer on the token"),
        "{status:?}"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_after_an_outage_fails_once_and_stays_failed() {
    let connector = FakeConnector::start();
    add_verifiable_keys(&connector);
    let (backend, mut state, agent) = serve_with_keepalive(&connector).await;

    // The authentication key's password changes on the device while the connector is away.
    lose(&connector, &mut state).await;
    let admin = connector.client_with_default_key();
    admin
        .delete_object(AUTH_KEY, yubihsm::object::Type::AuthenticationKey)
        .expect("delete the test authentication key");
    put_auth_key(&admin, b"a new password").expect("put it back with another password");
    let before = connector.commands();
    connector.up();
    state
        .wait_for(|s| matches!(s, HsmState::Failed(_)))
        .await
        .expect("the backend gives up");
    let HsmState::Failed(why) = backend.state().borrow().clone() else {
        unreachable!()
    };
    assert!(why.contains("will not try again"), "{why}");
    wait_for_health(&agent.socket(), false, Duration::from_secs(30)).await;
    let status = agent
        .client()
        .await
        .sign(sign_request("ed", b"after the refusal"))
        .await
        .expect_err("failed");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    // One attempt: one session creation, and nothing more however long the agent waits.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(connector.commands() - before, 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_answer_to_their_object_id_too() {
    let hsm = TestYubiHsm::new();
    let jwk = hsm.generate_key("ed25519", "ed");
    hsm.generate_key("p256", "ec");
    let listed = common::output::list(&hsm);
    let object_id = |id: &str| {
        listed
            .iter()
            .find(|k| k["id"] == id)
            .and_then(|k| k["object_id"].as_str())
            .expect("an object id")
            .to_owned()
    };
    let (ed, ec) = (object_id("ed"), object_id("ec"));
    assert!(ed.starts_with("0x") && ed.len() == 6, "{ed}");
    assert_ne!(ed, ec);

    // `keys public` by object id prints the same key as by label.
    let out = hsm.keys("public", &[&ed, "--format", "jwk"]);
    common::assert_success(&out, "keys public by object id");
    let by_id = common::ed25519_from_jwk(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(by_id, common::ed25519_from_jwk(&jwk));

    // backend.keys may select by object id; the key is served under its label.
    hsm.write_config(&format!("keys = [\"{ed}\"]"));
    let agent = hsm.start().await;
    let mut client = agent.client().await;
    let keys = client
        .list_keys(signet::grpc::proto::ListKeysRequest {})
        .await
        .expect("ListKeys")
        .into_inner()
        .keys;
    let ids: Vec<_> = keys.iter().map(|k| k.key_id.as_str()).collect();
    assert_eq!(ids, ["ed"]);
    let signature = client
        .sign(sign_request("ed", b"selected by object id"))
        .await
        .expect("Sign")
        .into_inner()
        .signature;
    by_id
        .verify_strict(
            b"selected by object id",
            &ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes"),
        )
        .expect("verifies with ed25519-dalek");
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");
    assert!(!log.contains(TEST_PASSWORD), "{log}");

    // `keys destroy` by object id.
    let out = hsm.keys("destroy", &[&ec, "--yes"]);
    common::assert_success(&out, "keys destroy by object id");
    let out = hsm.keys("public", &["ec"]);
    assert!(!out.status.success(), "the key is gone");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no key with id 'ec'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_hmac_secret_longer_than_the_device_takes_gives_the_same_tags() {
    use hmac::Mac;
    use signet::backend::admin::KeyAdmin;
    let connector = FakeConnector::start();
    let admin = YubiHsmAdmin::open_with(&device(&connector, TEST_PASSWORD), 1, None)
        .expect("an admin session");
    // 100 bytes: over the device's 64-byte limit, so its SHA-256 is stored (RFC 2104 hashes a
    // key longer than the block first). The import's self-test already compares with a software
    // HMAC of the original secret; check a tag here too.
    let secret = "k".repeat(100);
    signet::keys::import_hmac(&admin, "long", &Secret::new(secret.clone())).expect("imported");
    let tag = admin.sign("long", b"a message").expect("HMAC");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(b"a message");
    mac.verify_slice(&tag)
        .expect("the tag of the original 100-byte secret");
}

#[test]
fn keys_the_authentication_key_cannot_sign_with_are_not_served() {
    let connector = FakeConnector::start();
    add_verifiable_keys(&connector);
    // A least-privilege authentication key: Ed25519 signing only.
    const EDDSA_ONLY: u16 = 3;
    connector
        .client_with_default_key()
        .put_authentication_key(
            EDDSA_ONLY,
            "eddsa-only".into(),
            yubihsm::Domain::all(),
            yubihsm::Capability::SIGN_EDDSA,
            yubihsm::Capability::empty(),
            yubihsm::authentication::Algorithm::YubicoAes,
            yubihsm::authentication::Key::derive_from_password(TEST_PASSWORD.as_bytes()),
        )
        .expect("put the EdDSA-only authentication key");
    let device = || device_as(&connector, EDDSA_ONLY, TEST_PASSWORD);

    // Serving every key: only the one it can sign with is served; the others are skipped.
    let backend =
        YubiHsmBackend::open_with(device(), None, Timing::default()).expect("serves the rest");
    let ids: Vec<String> = backend.registry().iter().map(|k| k.id.clone()).collect();
    assert_eq!(ids, ["ed"]);
    let signature = backend.sign("ed", 1, b"least privilege").expect("signs");
    let public = backend.registry().to_vec()[0]
        .public_key
        .clone()
        .expect("a public key");
    let signet::PublicKey::Ed25519(public) = public else {
        panic!("an Ed25519 key: {public:?}");
    };
    public
        .verify_strict(
            b"least privilege",
            &ed25519_dalek::Signature::from_slice(&signature).expect("64 bytes"),
        )
        .expect("verifies with ed25519-dalek");
    backend.shutdown();

    // Naming a key it cannot sign with refuses to start, and says which capability is missing.
    let refused = YubiHsmBackend::open_with(device(), Some(&["hmac".into()]), Timing::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        refused.contains("key 'hmac'")
            && refused.contains("the authentication key 0x0003 lacks SIGN_HMAC"),
        "{refused}"
    );

    // `keys list` gives the same reason.
    let admin = YubiHsmAdmin::open_with(&device(), 1, None).expect("an admin session");
    let listed = signet::backend::admin::KeyAdmin::list(&admin).expect("list");
    let reason = |id: &str| {
        listed
            .iter()
            .find(|k| k.id.as_deref() == Some(id))
            .and_then(|k| k.not_served.clone())
    };
    assert_eq!(reason("ed"), None);
    assert!(
        reason("ec").is_some_and(|why| why.contains("lacks SIGN_ECDSA")),
        "{listed:?}"
    );
}
