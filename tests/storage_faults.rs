//! A short loss of the token's storage, for real, under load: SoftHSM2's token directory is
//! moved away and back, or made unreadable (`chmod 000`) and readable again, while clients sign
//! continuously with every key. Meanwhile calls answer only `UNAVAILABLE` (never `NOT_FOUND`,
//! never `INTERNAL`), health goes `NOT_SERVING`, and afterwards health is `SERVING` again and
//! every key (Ed25519, P-256, HMAC) signs again without a restart. Every signature is checked
//! with ed25519-dalek, p256 and hmac as it arrives.
//!
//! SoftHSM2 answers a lost token directory with `CKR_OBJECT_HANDLE_INVALID` for the keys it had,
//! an empty search, and `CKR_GENERAL_ERROR` from `C_GetTokenInfo`, until the module is
//! initialised again: the agent must not take that for destroyed keys.
//!
//! SoftHSM2 only: Kryoptic keeps its one sqlite store open from `C_Initialize`, so moving it
//! away or `chmod 000` never reaches the token (it keeps signing; see the README's "What a real
//! HSM may do differently"). A key destroyed behind the agent is tested on both tokens in
//! `tests/conformance.rs`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::health::wait_for_health;
use common::requests::sign_request;
use common::{sign_load, Agent, Outcome, TestToken, Verifier, VERIFIABLE_KEYS};

/// The unprivileged user the agent runs as when the test runs as root (root ignores `chmod`).
const NOBODY: &str = "65534";

/// The one token's own directory inside the test's SoftHSM2 token directory.
fn token_store(token: &TestToken) -> PathBuf {
    let tokens = token.dir.path().join("tokens");
    let mut stores: Vec<PathBuf> = std::fs::read_dir(&tokens)
        .expect("the token directory")
        .map(|e| e.expect("a directory entry").path())
        .collect();
    assert_eq!(stores.len(), 1, "one token in {}", tokens.display());
    stores.remove(0)
}

fn chmod(mode: &str, path: &Path) {
    let status = Command::new("chmod")
        .arg(mode)
        .arg(path)
        .status()
        .expect("chmod (coreutils)");
    assert!(status.success(), "chmod {mode} {}", path.display());
}

/// Starts the agent; as an unprivileged user (with `setpriv`, owning the test's directory)
/// when the test runs as root, so that a `chmod 000` really denies it the token's storage.
async fn start_agent(token: &TestToken, unprivileged: bool) -> Agent {
    if !unprivileged || common::own_uid() != 0 {
        return token.start_agent().await;
    }
    let status = Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(token.dir.path())
        .status()
        .expect("chown (coreutils)");
    assert!(status.success(), "chown the test directory");
    let inner = token.command();
    let mut command = Command::new("setpriv");
    command
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(common::signet_bin())
        .envs(inner.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .current_dir(token.dir.path());
    assert!(
        Command::new("setpriv")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "setpriv is needed to run the agent as an unprivileged user (the test runs as root, \
         which chmod does not stop); install it with: sudo apt-get install -y util-linux"
    );
    Agent::spawn(
        command,
        &token.config,
        token.socket.clone(),
        token.dir.path(),
    )
    .await
}

/// Signs with `key` until it works (the agent may still be finishing its reconnection),
/// accepting only `UNAVAILABLE` meanwhile; returns after the first verified signature.
async fn signs_again(agent: &Agent, verifier: &Verifier, key: &str) {
    let mut client = agent.client().await;
    let message = format!("after the outage, {key}").into_bytes();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.sign(sign_request(key, &message)).await {
            Ok(reply) => {
                let signature = reply.into_inner().signature;
                assert!(
                    verifier.verify(key, &message, &signature),
                    "{key}: the signature after the outage does not verify"
                );
                return;
            }
            Err(status) => {
                assert_eq!(
                    status.code(),
                    tonic::Code::Unavailable,
                    "{key} after the outage: {status:?}\n{}",
                    agent.log_text()
                );
                assert!(
                    Instant::now() < deadline,
                    "{key} does not sign again: {status:?}\n{}",
                    agent.log_text()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Takes the token's storage away under load with `break_storage`, gives it back with
/// `restore`, and checks what clients and health saw.
async fn rides_out(
    name: &str,
    token: &TestToken,
    agent: &Agent,
    break_storage: impl FnOnce(),
    restore: impl FnOnce(),
) {
    let verifier = Arc::new(Verifier::fetch(agent.channel().await).await);
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(sign_load(
        token.socket.clone(),
        6,
        None,
        stop_rx,
        verifier.clone(),
    ));
    // Some signatures before the fault (not asserted: the load is checked as a whole).
    tokio::time::sleep(Duration::from_millis(200)).await;

    break_storage();
    wait_for_health(&token.socket, false, Duration::from_secs(20)).await;
    // The outage lasts a while under load: calls keep arriving while the storage is gone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    restore();
    wait_for_health(&token.socket, true, Duration::from_secs(30)).await;

    for key in VERIFIABLE_KEYS {
        signs_again(agent, &verifier, key).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).expect("stop the load");
    let outcomes: Vec<Outcome> = load.await.expect("the load task");
    let log = agent.log_text();
    for outcome in outcomes.iter().filter(|o| o.code != tonic::Code::Ok) {
        assert_eq!(
            outcome.code,
            tonic::Code::Unavailable,
            "{name}: only UNAVAILABLE while the storage is gone, got {:?}: {}\n{log}",
            outcome.code,
            outcome.message
        );
    }
    let signed = outcomes
        .iter()
        .filter(|o| o.code == tonic::Code::Ok)
        .count();
    let unavailable = outcomes.len() - signed;
    println!(
        "{name}: {} calls, {signed} verified signatures, {unavailable} UNAVAILABLE",
        outcomes.len()
    );
    assert!(unavailable > 0, "{name}: the load saw the outage\n{log}");
    assert!(
        !log.contains("no longer on the token"),
        "{name}: no key was declared gone\n{log}"
    );
    assert!(log.contains("re-established"), "{name}: recovered\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_sign_again_after_the_token_directory_is_moved_away_and_back() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = start_agent(&token, false).await;
    let store = token_store(&token);
    let away = token.dir.path().join("moved-away");
    rides_out(
        "moved away",
        &token,
        &agent,
        || std::fs::rename(&store, &away).expect("move the token directory away"),
        || std::fs::rename(&away, &store).expect("move the token directory back"),
    )
    .await;
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_sign_again_after_the_token_directory_is_unreadable_for_a_while() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = start_agent(&token, true).await;
    let store = token_store(&token);
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&store)
            .expect("metadata")
            .permissions()
            .mode();
        format!("{:o}", mode & 0o7777)
    };
    rides_out(
        "chmod 000",
        &token,
        &agent,
        || chmod("000", &store),
        || chmod(&mode, &store),
    )
    .await;
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}

/// The SoftHSM2 object files in `store`.
fn object_files(store: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(store)
        .expect("the token's directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "object"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_missing_for_a_while_is_found_again_without_a_restart() {
    // The `hmac` key's object file is the one its import adds (attributes of private objects
    // are encrypted, so the file cannot be told by its label).
    let token = TestToken::new();
    token.generate("ed25519", "ed");
    token.generate("p256", "ec");
    let before = object_files(&token_store(&token));
    token.import_hmac("hmac", common::HMAC_SECRET);
    let added: Vec<PathBuf> = object_files(&token_store(&token))
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    let [file] = &added[..] else {
        panic!("importing the HMAC key added one object file: {added:?}")
    };
    let agent = start_agent(&token, false).await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    signs_again(&agent, &verifier, "hmac").await;

    // Only the HMAC key's object leaves the token (the token itself still answers): a working
    // session confirms it is gone, so NOT_FOUND, while the other keys sign on.
    let away = token.dir.path().join("hmac.object");
    std::fs::rename(file, &away).expect("move the key's object away");
    // SoftHSM2 reads its token directory again only after a write to the token (it keeps a
    // generation counter): another key is made with the key commands each time.
    token.generate("ed25519", "unrelated-1");
    let mut client = agent.client().await;
    for _ in 0..3 {
        let status = client
            .sign(sign_request("hmac", b"while it is away"))
            .await
            .expect_err("the key is not on the token");
        assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
        assert!(
            status.message().contains("no longer on the token")
                && !status.message().contains("restart"),
            "{status:?}"
        );
    }
    for key in ["ed", "ec"] {
        signs_again(&agent, &verifier, key).await;
    }

    // Back on the token: the next call finds the key again, under a new handle (absence is
    // not remembered).
    std::fs::rename(&away, file).expect("move the key's object back");
    token.generate("ed25519", "unrelated-2");
    signs_again(&agent, &verifier, "hmac").await;
    assert!(
        agent.log_text().contains("found the key again"),
        "{}",
        agent.log_text()
    );
    let (status, log) = agent.stop();
    assert!(status.success(), "{log}");
}
