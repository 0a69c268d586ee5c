//! Who may sign, and the record of it, through the real binary on a real SoftHSM2 token: unix
//! peer credentials against the configured clients, rate limits, and the hash-chained audit log
//! checked with `signet audit verify` after every kind of tampering.

mod common;

use std::path::{Path, PathBuf};

use common::requests::sign_request;
use common::{path_str, TestToken};
use signet::grpc::proto::FingerprintRequest;

/// A token with the verifiable keys and this config appended (clients are replaced).
fn token_with(extra: &str) -> TestToken {
    let token = TestToken::new().with_verifiable_keys();
    // Drop the default "tests" client the fixture writes; each test states its own clients.
    token.edit_config(|text| {
        let start = text.find("[[clients]]").expect("clients");
        let end = text.find("[backend]").expect("backend");
        format!("{}{}\n{extra}\n", &text[..start], &text[end..])
    });
    token
}

fn audit_path(token: &TestToken) -> PathBuf {
    token.dir.path().join("audit.jsonl")
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

fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_callers_are_matched_by_uid_and_every_decision_is_audited() {
    let uid = common::own_uid();
    let token = token_with(&format!(
        "[[clients]]\nname = \"spooler\"\nuid = {uid}\nkeys = [\"ed\"]\noperations = [\"sign\"]\n\n\
         [audit]\npath = \"audit.jsonl\"\n"
    ));
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let verifier = common::Verifier::fetch(agent.channel().await).await;
    for i in 0..3u8 {
        let signature = client
            .sign(sign_request("ed", &[i]))
            .await
            .expect("granted");
        assert!(verifier.verify("ed", &[i], &signature.into_inner().signature));
    }
    // Not granted: another key, another operation. The message is the same whether or not
    // the key exists.
    let denied = client
        .sign(sign_request("ec", b"x"))
        .await
        .expect_err("key not granted");
    assert_eq!(denied.code(), tonic::Code::PermissionDenied, "{denied:?}");
    let missing = client
        .sign(sign_request("no-such-key", b"x"))
        .await
        .expect_err("denied");
    assert_eq!(missing.code(), tonic::Code::PermissionDenied, "{missing:?}");
    assert!(!missing.message().contains("not served"), "{missing:?}");
    let fingerprint = client
        .fingerprint(FingerprintRequest {
            key_id: "hmac".into(),
            tenant_id: "T".into(),
            procedure_id: "P".into(),
            timestamp_ms: 1,
            ..Default::default()
        })
        .await
        .expect_err("fingerprint not granted");
    assert_eq!(fingerprint.code(), tonic::Code::PermissionDenied);
    // Reading public keys needs no grant.
    client
        .get_public_key(signet::grpc::proto::GetPublicKeyRequest {
            key_id: "ec".into(),
            key_version: None,
        })
        .await
        .expect("public keys are open");
    let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(status.success(), "{log}");
    assert!(!log.contains(common::TEST_PIN), "the PIN is never logged");

    let lines = records(&audit_path(&token));
    assert_eq!(
        lines.len(),
        1 + 6,
        "a genesis record and one per signing call: {lines:?}"
    );
    assert_eq!(lines[0]["genesis"], "new");
    let allowed: Vec<_> = lines.iter().filter(|r| r["outcome"] == "allowed").collect();
    assert_eq!(allowed.len(), 3);
    for r in &allowed {
        assert_eq!(
            (&r["client"], &r["rpc"], &r["code"]),
            (&"spooler".into(), &"Sign".into(), &"OK".into())
        );
        assert_eq!(r["algorithm"], "ed25519");
        assert_eq!(r["key_version"], 1, "the version that signed");
        assert!(r["identity"]
            .as_str()
            .expect("identity")
            .starts_with(&format!("uid={uid} ")));
        assert!(r["listener"]
            .as_str()
            .expect("listener")
            .starts_with("unix:"));
        assert_eq!(r["message_sha256"].as_str().expect("sha").len(), 64);
    }
    let denied: Vec<_> = lines.iter().filter(|r| r["outcome"] == "denied").collect();
    assert_eq!(denied.len(), 3);
    assert!(denied.iter().all(|r| r["code"] == "PERMISSION_DENIED"));
    assert!(denied.iter().all(|r| r["message_sha256"].is_null()));
    assert!(denied.iter().all(|r| r["key_version"].is_null()));
    let (ok, text) = verify(&token, &[&audit_path(&token)]);
    assert!(ok && text.contains("7 records, chain intact"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_naming_another_uid_denies_and_records_it() {
    let other = common::own_uid() + 1;
    let token = token_with(&format!(
        "[[clients]]\nname = \"someone-else\"\nuid = {other}\nkeys = [\"*\"]\n\
         operations = [\"sign\", \"fingerprint\"]\n\n[audit]\npath = \"audit.jsonl\"\n"
    ));
    let agent = token.start_agent().await;
    let status = agent
        .client()
        .await
        .sign(sign_request("ed", b"x"))
        .await
        .expect_err("not a configured client");
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("is not a configured client"),
        "{status:?}"
    );
    let (_, log) = tokio::task::spawn_blocking(move || agent.stop())
        .await
        .expect("stop");
    assert!(log.contains("denied"), "{log}");
    let lines = records(&audit_path(&token));
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (&lines[1]["outcome"], &lines[1]["client"]),
        (&"denied".into(), &serde_json::Value::Null)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_refuses_a_burst_and_recovers() {
    let uid = common::own_uid();
    let token = token_with(&format!(
        "[[clients]]\nname = \"busy\"\nuid = {uid}\nkeys = [\"*\"]\noperations = [\"sign\"]\n\
         rate_per_second = 2\nburst = 5\n"
    ));
    let agent = token.start_agent().await;
    let mut client = agent.client().await;
    let mut codes = Vec::new();
    for i in 0..15u8 {
        codes.push(
            client
                .sign(sign_request("hmac", &[i]))
                .await
                .map(|r| assert!(common::verify_hmac(&[i], &r.into_inner().signature)))
                .map_err(|s| s.code()),
        );
    }
    assert!(
        codes[..5].iter().all(Result::is_ok),
        "the burst is served: {codes:?}"
    );
    let refused = codes
        .iter()
        .filter(|c| **c == Err(tonic::Code::ResourceExhausted))
        .count();
    assert!(refused >= 8, "beyond the burst: {codes:?}");
    // Two tokens a second: one is back within 600 ms.
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let later = client
        .sign(sign_request("hmac", b"later"))
        .await
        .expect("the bucket refilled");
    assert!(common::verify_hmac(b"later", &later.into_inner().signature));
    let _ = tokio::task::spawn_blocking(move || agent.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_survives_restarts_and_rotation_and_every_tampering_is_found() {
    let uid = common::own_uid();
    // Small files, so that the records below rotate several times.
    let token = token_with(&format!(
        "[[clients]]\nname = \"spooler\"\nuid = {uid}\nkeys = [\"*\"]\noperations = [\"sign\"]\n\n\
         [audit]\npath = \"audit.jsonl\"\nmax_bytes = 2000\n"
    ));
    for round in 0..2u8 {
        let agent = token.start_agent().await;
        let mut client = agent.client().await;
        let verifier = common::Verifier::fetch(agent.channel().await).await;
        for i in 0..12u8 {
            let signed = client
                .sign(sign_request("ed", &[round, i]))
                .await
                .expect("sign");
            assert!(verifier.verify("ed", &[round, i], &signed.into_inner().signature));
        }
        let (status, log) = tokio::task::spawn_blocking(move || agent.stop())
            .await
            .expect("stop");
        assert!(status.success(), "{log}");
    }
    let path = audit_path(&token);
    let mut files: Vec<PathBuf> = (1..)
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .take_while(|p| p.exists())
        .collect();
    assert!(files.len() >= 2, "rotated at least twice: {files:?}");
    files.push(path.clone());
    let all: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (ok, text) = verify(&token, &all);
    assert!(ok, "the chain holds across restarts and rotations: {text}");
    let total: usize = files.iter().map(|f| records(f).len()).sum();
    assert_eq!(
        total,
        24 + files.len(),
        "24 records and one genesis per file"
    );
    // Leaving a rotated file out breaks the link.
    let (ok, text) = verify(&token, &[all[0], all[2]]);
    assert!(
        !ok && text.contains("does not continue the file before it"),
        "{text}"
    );

    // Tampering with the current file, on a copy each time (the head file stays next to it).
    let original = std::fs::read_to_string(&path).expect("log");
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 4, "{original}");
    let rewrite = |new: String| std::fs::write(&path, new).expect("write");
    let joined = |lines: &[&str]| lines.iter().map(|l| format!("{l}\n")).collect::<String>();

    // One byte changed in line 2 (a digit of its latency).
    let edited = lines[1].replacen("\"latency_us\":", "\"latency_us\":9", 1);
    let mut changed = lines.clone();
    changed[1] = &edited;
    rewrite(joined(&changed));
    let (ok, text) = verify(&token, &[&path]);
    assert!(
        !ok && text.contains("line 2:") && text.contains("was edited"),
        "{text}"
    );

    // Line 3 deleted.
    let mut deleted = lines.clone();
    deleted.remove(2);
    rewrite(joined(&deleted));
    let (ok, text) = verify(&token, &[&path]);
    assert!(
        !ok && text.contains("line 3:") && text.contains("removed, inserted or reordered"),
        "{text}"
    );

    // Lines 2 and 3 swapped.
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    rewrite(joined(&swapped));
    let (ok, text) = verify(&token, &[&path]);
    assert!(!ok && text.contains("line 2:"), "{text}");

    // Truncated in the middle of the last record.
    let cut = &original[..original.len() - 10];
    rewrite(cut.to_owned());
    let (ok, text) = verify(&token, &[&path]);
    assert!(
        !ok && text.contains(&format!("line {}:", lines.len())) && text.contains("incomplete"),
        "{text}"
    );

    // Truncated at a line boundary: the head file knows more was written.
    rewrite(joined(&lines[..lines.len() - 1]));
    let (ok, text) = verify(&token, &[&path]);
    assert!(
        !ok && text.contains(&format!("line {}:", lines.len() - 1)) && text.contains("cut off"),
        "{text}"
    );

    // An agent refuses to continue a log that was cut.
    let out = token.signet(&["serve", "--config", path_str(&token.config)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("does not end where the agent left it"),
        "{err}"
    );
    rewrite(original);
    let (ok, text) = verify(&token, &[&path]);
    assert!(ok, "{text}");
}

#[test]
fn an_unwritable_audit_log_keeps_the_agent_from_signing() {
    let uid = common::own_uid();
    let token = token_with(&format!(
        "[[clients]]\nname = \"spooler\"\nuid = {uid}\nkeys = [\"*\"]\noperations = [\"sign\"]\n\n\
         [audit]\npath = \"no-such-dir/audit.jsonl\"\n"
    ));
    let out = token.signet(&["serve", "--config", path_str(&token.config)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "fails closed: {err}");
    assert!(
        err.contains("audit log") && err.contains("no-such-dir"),
        "{err}"
    );
    assert!(!token.socket.exists(), "nothing listens");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_gets_its_configured_mode() {
    use std::os::unix::fs::PermissionsExt;
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| {
        text.replace(
            "path = \"signet.sock\"",
            "path = \"signet.sock\"\nmode = \"0600\"",
        )
    });
    let agent = token.start_agent().await;
    let mode = std::fs::metadata(&token.socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let _ = tokio::task::spawn_blocking(move || agent.stop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_tcp_callers_may_read_but_not_sign() {
    let port = common::ports::free_port();
    let token = TestToken::new().with_verifiable_keys();
    token.edit_config(|text| {
        text.replace(
            "[backend]",
            &format!(
                "[[listen]]\ntype = \"tcp\"\naddress = \"127.0.0.1:{port}\"\nplaintext = true\n\n\
                 [backend]"
            ),
        )
    });
    let agent = token.start_agent().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut client = signet::grpc::proto::signer_client::SignerClient::new(channel);
    let status = client
        .sign(sign_request("ed", b"x"))
        .await
        .expect_err("anonymous");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    client
        .get_public_key(signet::grpc::proto::GetPublicKeyRequest {
            key_id: "ed".into(),
            key_version: None,
        })
        .await
        .expect("public keys are open");
    let _ = tokio::task::spawn_blocking(move || agent.stop()).await;
}
