//! Key versions on a serving agent, for real: `signet keys rotate|set-primary|disable|destroy
//! --version` run as a second process on the same token while the agent serves, and the agent
//! follows (SIGHUP, the periodic re-scan, or a signature the token refuses) without a restart.
//! Every signature is verified independently (ed25519-dalek, p256) with the public key of the
//! version its response names. Strict Tier 4 (`backend.require_generated`) and verify-only key
//! objects too, and a re-scan that keeps the last good keys while the token is away.

mod common;

use std::future::Future;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::requests::{published_fingerprint_request, sign_request};
use common::{assert_success, Agent, Device, TestToken};
use p256::ecdsa::signature::Verifier as _;
use signet::grpc::proto::signer_client::SignerClient;
use signet::grpc::proto::{
    GetPublicKeyRequest, GetPublicKeyResponse, ListKeysRequest, VerifyRequest,
};
use tonic::transport::Channel;
use tonic::Code;

/// Runs each test against every backend, as `softhsm::NAME` and `yubihsm::NAME`; the test gets
/// a constructor that makes the device with extra `[backend]` configuration lines.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod softhsm {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::TestToken::with_config_extra).await
                }
            )*
        }
        #[cfg(feature = "yubihsm-mock")]
        mod yubihsm {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::common::yubihsm::TestYubiHsm::with_config_extra).await
                }
            )*
        }
    };
}

both_backends!(
    rotation_under_load_fails_no_call_and_each_signature_verifies_with_its_version,
    strict_mode_refuses_an_imported_key_by_name_and_serves_a_rotated_version,
);

/// Whether the device can change what a key object may do (PKCS#11 can; a YubiHSM's
/// capabilities are fixed, so a version is retired by destroying it there).
fn flags_change(device: &impl Device) -> bool {
    !device.backend().starts_with("yubihsm")
}

fn keys_ok(device: &impl Device, command: &str, args: &[&str]) -> String {
    let out = device.keys(command, args);
    assert_success(
        &out,
        &format!("{}: signet keys {command} {args:?}", device.backend()),
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// Retires version `n` of `id`: disabled where flags change, destroyed on a YubiHSM.
fn retire(device: &impl Device, id: &str, n: &str) {
    if flags_change(device) {
        keys_ok(device, "disable", &[id, n]);
    } else {
        keys_ok(device, "destroy", &[id, "--version", n, "--yes"]);
    }
}

/// Sends SIGHUP to the agent: it re-reads the token's keys at once.
fn hangup(agent: &Agent) {
    let status = Command::new("kill")
        .args(["-HUP", &agent.pid().to_string()])
        .status()
        .expect("kill (procps)");
    assert!(status.success(), "kill -HUP");
}

/// Waits until `check` holds; fails naming `what` if it never does (a generous bound on
/// attempts, not a timing assertion).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    for _ in 0..600 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} never happened");
}

async fn public_key(
    client: &mut SignerClient<Channel>,
    key_id: &str,
    key_version: Option<u32>,
) -> Result<GetPublicKeyResponse, tonic::Status> {
    client
        .get_public_key(GetPublicKeyRequest {
            key_id: key_id.into(),
            key_version,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// The `kid`s of a GetPublicKey response's JWK Set.
fn kids(response: &GetPublicKeyResponse) -> Vec<String> {
    let jwks: serde_json::Value = serde_json::from_str(&response.jwks).expect("JWKS is JSON");
    jwks["keys"]
        .as_array()
        .expect("a key set")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

/// Verifies `signature` over `message` with the public key `response` describes.
fn verifies(response: &GetPublicKeyResponse, message: &[u8], signature: &[u8]) -> bool {
    match response.algorithm {
        1 => {
            let raw: [u8; 32] = response.raw.as_slice().try_into().expect("32-byte key");
            let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).expect("Ed25519 key");
            ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify_strict(message, &s).is_ok())
        }
        2 => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&response.raw).expect("P-256");
            p256::ecdsa::Signature::from_slice(signature)
                .is_ok_and(|s| key.verify(message, &s).is_ok())
        }
        other => panic!("not an asymmetric algorithm: {other}"),
    }
}

/// One signature the load made: key, version named in the response, message, signature.
type Made = (String, u32, Vec<u8>, Vec<u8>);

async fn rotation_under_load_fails_no_call_and_each_signature_verifies_with_its_version<D>(
    make: fn(&str) -> D,
) where
    D: Device,
{
    // No periodic re-scan: the agent follows by SIGHUP, or when the token refuses the old
    // version, never by waiting for a timer.
    let device = make("rescan_interval_ms = 0");
    device.generate_key("ed25519", "ed");
    device.generate_key("p256", "ec");
    let agent = device.start().await;
    let mut client = agent.client().await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for worker in 0..2 {
        let mut client = agent.client().await;
        let stop = Arc::clone(&stop);
        load.push(tokio::spawn(async move {
            let mut made: Vec<Made> = Vec::new();
            let mut failures = Vec::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) {
                for key in ["ed", "ec"] {
                    n += 1;
                    let message = format!("worker {worker} call {n}").into_bytes();
                    match client.sign(sign_request(key, &message)).await {
                        Ok(r) => {
                            let r = r.into_inner();
                            made.push((key.to_owned(), r.key_version, message, r.signature));
                        }
                        Err(status) => failures.push(status),
                    }
                }
            }
            (made, failures)
        }));
    }
    for key in ["ed", "ec"] {
        assert_eq!(
            public_key(&mut client, key, None)
                .await
                .expect(key)
                .key_version,
            1
        );
    }
    // The operator rotates on the same token, from another process, while the agent signs.
    let rotate = |id: &'static str| {
        let out = device.keys("rotate", &[id]);
        assert_success(&out, &format!("{}: keys rotate {id}", device.backend()));
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let ed_jwk = tokio::task::block_in_place(|| rotate("ed"));
    assert!(ed_jwk.contains("\"kid\":\"ed#2\""), "{ed_jwk}");
    tokio::task::block_in_place(|| rotate("ec"));
    hangup(&agent);
    for key in ["ed", "ec"] {
        until(&format!("{key} signing with version 2"), || {
            let mut client = client.clone();
            async move {
                let r = client
                    .sign(sign_request(key, b"probe"))
                    .await
                    .expect("sign");
                r.into_inner().key_version == 2
            }
        })
        .await;
    }
    // Some more load on the new version, then stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Release);
    let mut made = Vec::new();
    for worker in load {
        let (m, failures) = worker.await.expect("load task");
        assert!(
            failures.is_empty(),
            "calls failed during the rotation: {failures:?}"
        );
        made.extend(m);
    }
    // Every signature verifies with the public key of the version its response names; the
    // old version still answers GetPublicKey, and both are in the key set.
    let mut keys = std::collections::HashMap::new();
    for key in ["ed", "ec"] {
        for version in [1, 2] {
            let r = public_key(&mut client, key, Some(version))
                .await
                .expect("old and new");
            assert_eq!(r.key_version, version);
            assert_eq!(kids(&r), [key.to_owned(), format!("{key}#2")], "{}", r.jwks);
            keys.insert((key.to_owned(), version), r);
        }
        assert_eq!(
            public_key(&mut client, key, None)
                .await
                .expect(key)
                .key_version,
            2
        );
    }
    let mut versions_seen = std::collections::BTreeSet::new();
    for (key, version, message, signature) in &made {
        let public = keys
            .get(&(key.clone(), *version))
            .unwrap_or_else(|| panic!("{key}: a response named version {version}"));
        assert!(
            verifies(public, message, signature),
            "{key} version {version}: a signature does not verify"
        );
        versions_seen.insert(*version);
    }
    // The agent verifies them too, saying which version matched: old signatures still verify
    // while their version may verify.
    for (key, version, message, signature) in made.iter().take(40) {
        let verdict = client
            .verify(VerifyRequest {
                key_id: key.clone(),
                message: message.clone(),
                signature: signature.clone(),
                ..Default::default()
            })
            .await
            .expect("Verify")
            .into_inner();
        assert!(verdict.valid, "{key} version {version}");
        assert_eq!(
            verdict.key_version, *version,
            "{key}: the version that matched"
        );
    }
    assert!(made.len() > 4, "the load made {} signatures", made.len());
    assert!(
        versions_seen.contains(&2),
        "the load never reached version 2"
    );
    // Retiring version 1: GetPublicKey no longer answers for it, and the key set drops it.
    for key in ["ed", "ec"] {
        tokio::task::block_in_place(|| retire(&device, key, "1"));
    }
    hangup(&agent);
    for key in ["ed", "ec"] {
        until(&format!("{key} version 1 leaving"), || {
            let mut client = client.clone();
            async move {
                matches!(public_key(&mut client, key, Some(1)).await,
                         Err(s) if s.code() == Code::NotFound)
            }
        })
        .await;
        let r = public_key(&mut client, key, None).await.expect("version 2");
        assert_eq!(kids(&r), [format!("{key}#2")]);
    }
    // A signature of the retired version no longer verifies.
    if let Some((key, _, message, signature)) = made.iter().find(|(_, v, _, _)| *v == 1) {
        let verdict = client
            .verify(VerifyRequest {
                key_id: key.clone(),
                message: message.clone(),
                signature: signature.clone(),
                ..Default::default()
            })
            .await
            .expect("Verify")
            .into_inner();
        assert!(!verdict.valid, "{key}: version 1 was retired");
    }
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}

async fn strict_mode_refuses_an_imported_key_by_name_and_serves_a_rotated_version<D>(
    make: fn(&str) -> D,
) where
    D: Device,
{
    let device = make("rescan_interval_ms = 0");
    device.import_hmac_key("witness", common::HMAC_SECRET);
    // Strict mode switched on ([backend] is the configuration's last table).
    let mut config = std::fs::read_to_string(device.config()).expect("config");
    config.push_str("require_generated = true\n");
    std::fs::write(device.config(), config).expect("config");
    let stderr = device.refused_start();
    assert!(
        stderr.contains("'witness'") && stderr.contains("require_generated"),
        "{}: {stderr}",
        device.backend()
    );
    // The migration: rotate to a version born in the HSM, retire the imported one.
    keys_ok(&device, "rotate", &["witness"]);
    retire(&device, "witness", "1");
    let versions = keys_ok(&device, "versions", &["witness", "--json"]);
    let versions: serde_json::Value = serde_json::from_str(&versions).expect("JSON");
    let primary: Vec<_> = versions
        .as_array()
        .expect("rows")
        .iter()
        .filter(|v| v["state"] == "primary")
        .collect();
    assert_eq!(primary.len(), 1, "{versions}");
    assert_eq!(primary[0]["version"], 2);
    assert_eq!(primary[0]["local"], true);
    let agent = device.start().await;
    let mut client = agent.client().await;
    let minted = client
        .fingerprint(published_fingerprint_request("witness"))
        .await
        .expect("fingerprint with the HSM-born version")
        .into_inner();
    assert_eq!(minted.key_version, 2);
    assert_eq!(minted.fingerprint, "f7f20b581cbf");
    // A key imported while the agent serves (by a key command that is not in strict mode:
    // in strict mode the import itself is refused) is refused by the re-scan too, by name.
    let strict = std::fs::read_to_string(device.config()).expect("config");
    std::fs::write(
        device.config(),
        strict.replace("require_generated = true\n", ""),
    )
    .expect("config");
    tokio::task::block_in_place(|| device.import_hmac_key("late", common::HMAC_SECRET));
    std::fs::write(device.config(), strict).expect("config");
    hangup(&agent);
    until("the late key refused", || {
        let log = agent.log_text();
        async move { log.contains("'late'") && log.contains("require_generated") }
    })
    .await;
    let keys = client
        .list_keys(ListKeysRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(!keys.keys.iter().any(|k| k.key_id == "late"), "{keys:?}");
    // Not the imported secret's tag: version 2 is a new key.
    let payload = format!("{}:agent-007", minted.fingerprint);
    assert!(!common::verify_hmac(
        payload.as_bytes(),
        &hex::decode(&minted.signature).expect("hex")
    ));
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_primary_disable_and_destroy_take_effect_on_sighup() {
    let token = TestToken::with_config_extra("rescan_interval_ms = 0");
    token.generate("ed25519", "ed");
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    // A staged version is served for verification, and does not sign.
    tokio::task::block_in_place(|| keys_ok(&token, "rotate", &["ed", "--stage"]));
    hangup(&agent);
    until("staged version 2 served", || {
        let mut client = client.clone();
        async move { public_key(&mut client, "ed", Some(2)).await.is_ok() }
    })
    .await;
    let signed = client
        .sign(sign_request("ed", b"m"))
        .await
        .expect("sign")
        .into_inner();
    assert_eq!(signed.key_version, 1);
    // set-primary: version 2 signs.
    tokio::task::block_in_place(|| keys_ok(&token, "set-primary", &["ed", "2"]));
    hangup(&agent);
    until("version 2 primary", || {
        let mut client = client.clone();
        async move {
            let r = client.sign(sign_request("ed", b"m")).await.expect("sign");
            r.into_inner().key_version == 2
        }
    })
    .await;
    let v2 = public_key(&mut client, "ed", Some(2)).await.expect("v2");
    let signed = client
        .sign(sign_request("ed", b"m2"))
        .await
        .expect("sign")
        .into_inner();
    assert!(verifies(&v2, b"m2", &signed.signature));
    // The primary cannot be disabled or destroyed while other versions exist.
    for args in [&["ed", "2"][..], &["ed", "--version", "2", "--yes"][..]] {
        let command = if args.len() == 2 {
            "disable"
        } else {
            "destroy"
        };
        let out = token.keys(command, args);
        assert!(
            !out.status.success(),
            "{command} of the primary must be refused"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("primary"));
    }
    // disable version 1: it leaves GetPublicKey and the key set, and stays on the token.
    tokio::task::block_in_place(|| keys_ok(&token, "disable", &["ed", "1"]));
    hangup(&agent);
    until("version 1 disabled", || {
        let mut client = client.clone();
        async move {
            matches!(public_key(&mut client, "ed", Some(1)).await,
                     Err(s) if s.code() == Code::NotFound)
        }
    })
    .await;
    let table = keys_ok(&token, "versions", &["ed"]);
    assert!(
        table.contains("disabled") && table.contains("primary"),
        "{table}"
    );
    // destroy --version 1: gone from the token.
    tokio::task::block_in_place(|| keys_ok(&token, "destroy", &["ed", "--version", "1", "--yes"]));
    let rows: serde_json::Value =
        serde_json::from_str(&keys_ok(&token, "versions", &["ed", "--json"])).expect("JSON");
    assert_eq!(rows.as_array().map(Vec::len), Some(1), "{rows}");
    // A new key appears on SIGHUP; a destroyed key disappears from ListKeys and GetPublicKey.
    tokio::task::block_in_place(|| token.generate("p256", "later"));
    hangup(&agent);
    let listed = |client: SignerClient<Channel>, id: &'static str| async move {
        let mut client = client;
        let keys = client
            .list_keys(ListKeysRequest {})
            .await
            .expect("list")
            .into_inner();
        keys.keys.iter().any(|k| k.key_id == id)
    };
    until("the new key listed", || listed(client.clone(), "later")).await;
    tokio::task::block_in_place(|| keys_ok(&token, "destroy", &["later", "--yes"]));
    hangup(&agent);
    until("the destroyed key unlisted", || {
        let client = client.clone();
        async move { !listed(client, "later").await }
    })
    .await;
    let status = public_key(&mut client, "later", None)
        .await
        .expect_err("destroyed");
    assert_eq!(status.code(), Code::NotFound);
    // An extractable key that appears is refused and logged by the re-scan, never served.
    tokio::task::block_in_place(|| token.generate_extractable_p256("leaky"));
    hangup(&agent);
    until("the extractable key refused", || {
        let log = agent.log_text();
        async move { log.contains("'leaky'") && log.contains("CKA_EXTRACTABLE is true") }
    })
    .await;
    assert!(!listed(client.clone(), "leaky").await);
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_only_key_objects_refuse_signing_with_failed_precondition() {
    let token = TestToken::with_config_extra("rescan_interval_ms = 0");
    token.generate("hmac-sha256", "vo");
    keys_ok(&token, "rotate", &["vo", "--stage"]);
    // Version 1 goes; version 2 is an HMAC key object with CKA_SIGN false, CKA_VERIFY true.
    keys_ok(&token, "destroy", &["vo", "--yes"]);
    let listed: serde_json::Value =
        serde_json::from_str(&keys_ok(&token, "list", &["--json"])).expect("JSON");
    let row = &listed.as_array().expect("rows")[0];
    assert_eq!(row["id"], "vo#2", "{listed}");
    assert_eq!(
        (&row["may_sign"], &row["may_verify"]),
        (&false.into(), &true.into())
    );
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let keys = client
        .list_keys(ListKeysRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(
        keys.keys
            .iter()
            .any(|k| k.key_id == "vo" && k.key_version == 2 && !k.can_sign),
        "served for verification: {keys:?}"
    );
    let status = client
        .sign(sign_request("vo", b"m"))
        .await
        .expect_err("verify-only");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("verif"), "{status:?}");
    let status = client
        .fingerprint(published_fingerprint_request("vo"))
        .await
        .expect_err("verify-only");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rescan_keeps_the_last_good_keys_while_the_token_is_away() {
    let token = TestToken::with_config_extra("rescan_interval_ms = 100");
    token.generate("ed25519", "ed");
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let tokens = token.dir.path().join("tokens");
    let away = token.dir.path().join("tokens-away");
    std::fs::rename(&tokens, &away).expect("move the token directory away");
    hangup(&agent);
    until("a failed re-scan logged", || {
        let log = agent.log_text();
        async move { log.contains("re-reading the token's keys failed") }
    })
    .await;
    // The keys served stay: ListKeys answers from the last good registry.
    let keys = client
        .list_keys(ListKeysRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(keys.keys.iter().any(|k| k.key_id == "ed"), "{keys:?}");
    std::fs::rename(&away, &tokens).expect("move the token directory back");
    until("signing again", || {
        let mut client = client.clone();
        async move { client.sign(sign_request("ed", b"back")).await.is_ok() }
    })
    .await;
    hangup(&agent);
    let keys = client
        .list_keys(ListKeysRequest {})
        .await
        .expect("list")
        .into_inner();
    assert!(keys.keys.iter().any(|k| k.key_id == "ed"), "{keys:?}");
    let r = public_key(&mut client, "ed", None).await.expect("ed");
    let signed = client
        .sign(sign_request("ed", b"after"))
        .await
        .expect("sign")
        .into_inner();
    assert!(verifies(&r, b"after", &signed.signature));
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}
