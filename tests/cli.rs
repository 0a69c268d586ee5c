//! `signet sign | public-key | fingerprint | list` against a real agent on a SoftHSM2 token:
//! every signature they print is verified with ed25519-dalek, p256 or hmac, the fingerprint
//! is checked against the `swt3-ai` crate, and a refused call prints its gRPC code and fails.

mod common;

use std::process::Output;

use base64::Engine as _;
use common::{assert_success, path_str, TestToken, Verifier};

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone())
        .expect("UTF-8")
        .trim_end()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_print_verifiable_answers_and_fail_with_the_grpc_code() {
    let token = TestToken::new().with_verifiable_keys();
    let agent = token.start_agent().await;
    let verifier = Verifier::fetch(agent.channel().await).await;
    let socket = path_str(&agent.socket).to_owned();
    let at = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        all.extend(["--socket".to_owned(), socket.clone()]);
        all
    };
    let run = |args: &[&str]| {
        let args = at(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        token.signet(&args)
    };
    let run_stdin = |args: &[&str], input: &[u8]| {
        let args = at(args);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        token.signet_with_stdin(&args, input)
    };
    let message = "a message, ä, with a newline\n".as_bytes();
    let file = token.dir.path().join("message.bin");
    std::fs::write(&file, message).expect("message file");

    // Ed25519 from a file, base64 (the default).
    let out = run(&["sign", "--key", "ed", "--file", path_str(&file)]);
    assert_success(&out, "signet sign ed");
    let signature = base64::engine::general_purpose::STANDARD
        .decode(stdout(&out))
        .expect("base64");
    assert!(verifier.verify("ed", message, &signature));

    // P-256 from standard input, hex.
    let out = run_stdin(&["sign", "--key", "ec", "--output", "hex"], message);
    assert_success(&out, "signet sign ec --output hex");
    let signature = hex::decode(stdout(&out)).expect("hex");
    assert!(verifier.verify("ec", message, &signature));

    // P-256, DER, as JSON.
    let out = run_stdin(
        &["sign", "--key", "ec", "--der", "--output", "json"],
        message,
    );
    assert_success(&out, "signet sign ec --der --output json");
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(json["key_id"], "ec");
    assert_eq!(json["algorithm"], "ecdsa-p256-sha256");
    assert_eq!(json["signature_format"], "der");
    let der = base64::engine::general_purpose::STANDARD
        .decode(json["signature"].as_str().expect("signature"))
        .expect("base64");
    let raw = p256::ecdsa::Signature::from_der(&der).expect("DER signature");
    assert!(verifier.verify("ec", message, &raw.to_bytes()));

    // HMAC through Sign (the HMAC of the message).
    let out = run_stdin(&["sign", "--key", "hmac", "--output", "hex"], message);
    assert_success(&out, "signet sign hmac");
    assert!(verifier.verify("hmac", message, &hex::decode(stdout(&out)).expect("hex")));

    // Public keys: PEM parsed by p256, JWK parsed as Ed25519, and the raw key in hex.
    let out = run(&["public-key", "--key", "ec"]);
    assert_success(&out, "signet public-key ec");
    let pem = stdout(&out);
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    use p256::pkcs8::DecodePublicKey as _;
    let ec = p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).expect("PEM P-256 key");
    let out = run_stdin(&["sign", "--key", "ec", "--output", "hex"], b"pem");
    let sig =
        p256::ecdsa::Signature::from_slice(&hex::decode(stdout(&out)).expect("hex")).expect("r||s");
    use p256::ecdsa::signature::Verifier as _;
    ec.verify(b"pem", &sig)
        .expect("verifies with the printed PEM key");
    let out = run(&["public-key", "--key", "ed", "--output", "jwk"]);
    assert_success(&out, "signet public-key ed --output jwk");
    let ed = common::ed25519_from_jwk(&stdout(&out));
    let out = run(&["public-key", "--key", "ed", "--output", "hex"]);
    assert_eq!(stdout(&out), hex::encode(ed.as_bytes()));

    // Fingerprint: the swt3-ai crate's formula and signature.
    let out = run(&[
        "fingerprint",
        "--key",
        "hmac",
        "--tenant-id",
        "ACME",
        "--procedure-id",
        "AI-INF.1",
        "--factor-a",
        "3",
        "--factor-b",
        "-1.5",
        "--factor-c",
        "0",
        "--timestamp-ms",
        "1711234567890",
        "--agent-id",
        "agent-007",
    ]);
    assert_success(&out, "signet fingerprint");
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let expected = swt3_ai::mint_fingerprint("ACME", "AI-INF.1", 3.0, -1.5, 0.0, 1_711_234_567_890);
    assert_eq!(json["fingerprint"], expected.as_str());
    assert_eq!(json["timestamp_ms"], 1_711_234_567_890_i64);
    assert_eq!(
        json["signature"],
        swt3_ai::sign_payload(common::HMAC_SECRET, &expected, Some("agent-007")).as_str()
    );

    // List, as JSON and as a table.
    let out = run(&["list", "--output", "json"]);
    assert_success(&out, "signet list --output json");
    let keys: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let ids: Vec<&str> = keys
        .as_array()
        .expect("array")
        .iter()
        .map(|k| k["key_id"].as_str().expect("key_id"))
        .collect();
    assert_eq!(ids, ["ec", "ed", "hmac"]);
    let out = run(&["list"]);
    assert!(stdout(&out).contains("hmac-sha256"), "{}", stdout(&out));

    // Refusals: the gRPC code and message on stderr, a non-zero exit, nothing on stdout.
    for (args, code) in [
        (vec!["sign", "--key", "missing"], "NOT_FOUND"),
        (vec!["sign", "--key", "ed", "--der"], "INVALID_ARGUMENT"),
        (vec!["public-key", "--key", "hmac"], "FAILED_PRECONDITION"),
    ] {
        let out = run_stdin(&args, b"m");
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} must fail with exit status 1"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("signet: {code}: ")),
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
    }
    let missing = token.dir.path().join("no-agent.sock");
    let out = token.signet_with_stdin(
        &["sign", "--key", "ed", "--socket", path_str(&missing)],
        b"m",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot connect to the agent"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    agent.stop();
}
