//! The `signet keys` commands on a real SoftHSM2 token: import (SWT3), list, public, and their
//! refusals, with PKCS#11 details checked by pkcs11-tool. Generate, destroy and the sqooler
//! migration run on every backend in the conformance suite (`tests/conformance.rs`). Signatures are checked with
//! ed25519-dalek and p256, and the sqooler migration with the sqooler package itself.

mod common;

use std::process::Output;

use base64::Engine as _;
use common::output::{list, listed_ids, stderr, stdout};
use common::requests::published_fingerprint_request;
use common::sqooler::sqooler_key;
use common::{p256_from_jwk, path_str, TestToken};

/// A 64-hex-character secret, the form SWT3 recommends.
const SWT3_SECRET: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// Asserts that the command failed and returns its standard error, which never holds the PIN.
fn failed(out: &Output, what: &str) -> String {
    let err = common::output::failed(out, what);
    assert!(!err.contains(common::TEST_PIN), "{err}");
    err
}

/// Runs OpenSC's pkcs11-tool, logged in, on the test token (an independent PKCS#11 client).
fn pkcs11_tool(token: &TestToken, args: &[&str]) -> Output {
    let out = token
        .pkcs11_tool()
        .args(args)
        .output()
        .expect("pkcs11-tool (install opensc)");
    common::assert_success(&out, &format!("pkcs11-tool {args:?}"));
    out
}

/// The "Access:" flags pkcs11-tool prints for the private or secret key labelled `label`.
fn access_of<'a>(objects: &'a str, label: &str) -> Vec<&'a str> {
    let blocks: Vec<&str> = objects
        .split("Object;")
        .filter(|b| b.contains(&format!("label:      {label}\n")))
        .filter(|b| !b.contains("Usage:      encrypt, decrypt")) // the AES key
        .filter(|b| b.contains("sensitive") || b.contains("extractable"))
        .collect();
    let [block] = blocks[..] else {
        panic!("one private or secret key labelled {label}: {objects}");
    };
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix("Access:"))
        .expect("Access line")
        .split(',')
        .map(str::trim)
        .collect()
}

#[test]
fn list_reports_flags_origin_and_whether_the_agent_serves_each_key() {
    let token = TestToken::new();
    token.generate("ed25519", "gen");
    token.import_hmac("imp", SWT3_SECRET);
    token.generate_extractable_p256("leaky");
    // A decrypt-only AES key that shares a label with a signing key does not make it ambiguous.
    pkcs11_tool(
        &token,
        &["--keygen", "--key-type", "AES:16", "--label", "gen"],
    );

    let keys = list(&token);
    let by_id = |id: &str| {
        keys.iter()
            .find(|k| k["id"] == id && k["type"] != serde_json::Value::Null)
            .unwrap_or_else(|| panic!("{id} is listed: {keys:?}"))
            .clone()
    };
    let gen = by_id("gen");
    assert_eq!(gen["type"], "ed25519");
    assert_eq!(gen["size"], "Ed25519");
    for flag in [
        "sensitive",
        "always_sensitive",
        "never_extractable",
        "local",
        "served",
    ] {
        assert_eq!(gen[flag], true, "gen.{flag}: {gen}");
    }
    assert_eq!(gen["extractable"], false);
    assert_eq!(gen["not_served_reason"], serde_json::Value::Null);

    let imp = by_id("imp");
    assert_eq!(imp["type"], "hmac-sha256");
    assert_eq!(
        imp["size"], "512 bits",
        "the 64 UTF-8 bytes of the hex secret"
    );
    assert_eq!(
        (&imp["sensitive"], &imp["extractable"]),
        (&true.into(), &false.into())
    );
    assert_eq!(
        (&imp["local"], &imp["served"]),
        (&false.into(), &true.into())
    );

    let leaky = by_id("leaky");
    assert_eq!(leaky["type"], "p256");
    assert_eq!(
        (&leaky["extractable"], &leaky["served"]),
        (&true.into(), &false.into())
    );
    let reason = leaky["not_served_reason"].as_str().expect("a reason");
    assert!(reason.contains("CKA_EXTRACTABLE is true"), "{reason}");
    assert_eq!(
        leaky["blocks_agent_start"], true,
        "as signet serve would refuse"
    );
    assert_eq!(gen["blocks_agent_start"], false);
    let aes = keys
        .iter()
        .find(|k| k["type"].is_null())
        .expect("the AES key is listed");
    assert_eq!((&aes["id"], &aes["served"]), (&"gen".into(), &false.into()));
    assert!(aes["not_served_reason"]
        .as_str()
        .expect("reason")
        .contains("CKK_AES"));
    assert_eq!(aes["blocks_agent_start"], false);
    let out = token.keys("public", &["gen"]);
    common::assert_success(&out, "public of a label an AES key shares");

    // The flags as the token itself reports them, read with another tool.
    let objects = stdout(&pkcs11_tool(&token, &["--list-objects"]));
    for label in ["gen", "imp"] {
        let access = access_of(&objects, label);
        assert!(access.contains(&"sensitive"), "{label}: {access:?}");
        assert!(!access.contains(&"extractable"), "{label}: {access:?}");
    }
    assert!(access_of(&objects, "leaky").contains(&"extractable"));

    let out = token.keys("list", &[]);
    common::assert_success(&out, "list");
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID")
            && lines[0].contains("EXTRACTABLE")
            && lines[0].ends_with("SERVED"),
        "{table}"
    );
    let leaky_row = lines.iter().find(|l| l.starts_with("leaky")).expect("row");
    assert!(leaky_row.ends_with("no"), "{table}");
    assert!(leaky_row.contains("generated"), "{table}");
    let imp_row = lines.iter().find(|l| l.starts_with("imp")).expect("row");
    assert!(
        imp_row.contains("imported") && imp_row.ends_with("yes"),
        "{table}"
    );
    assert!(
        table.contains("leaky: not served: CKA_EXTRACTABLE is true"),
        "{table}"
    );
    assert!(
        table.contains(
            "`signet serve` refuses to start with this token and configuration because of: leaky."
        ),
        "{table}"
    );
    // The agent agrees.
    let out = token.signet(&["serve", "--config", path_str(&token.config)]);
    let err = failed(&out, "serve with an extractable key on the token");
    assert!(err.contains("key 'leaky' is refused"), "{err}");
    assert!(!err.contains("'gen'"), "{err}");

    // Serving only the good keys: leaky is then just not served, and nothing blocks.
    token.edit_config(|text| text.replace("[backend]\n", "[backend]\nkeys = [\"gen\", \"imp\"]\n"));
    let keys = list(&token);
    let leaky = keys.iter().find(|k| k["id"] == "leaky").expect("leaky");
    assert_eq!(leaky["blocks_agent_start"], false, "{leaky}");
    assert!(!stdout(&token.keys("list", &[])).contains("refuses to start"));

    // A key listed in backend.keys but not on the token stops the agent; list says so too.
    token.edit_config(|text| text.replace("\"imp\"]", "\"imp\", \"gone\"]"));
    let keys = list(&token);
    let gone = keys.iter().find(|k| k["id"] == "gone").expect("gone");
    assert_eq!(
        (
            &gone["present"],
            &gone["served"],
            &gone["blocks_agent_start"]
        ),
        (&false.into(), &false.into(), &true.into()),
        "{gone}"
    );
    assert!(keys
        .iter()
        .filter(|k| k["id"] != "gone")
        .all(|k| k["present"] == true));
    let table = stdout(&token.keys("list", &[]));
    assert!(
        table.contains("gone: listed in backend.keys, but not on the token"),
        "{table}"
    );
    assert!(table.contains("because of: gone."), "{table}");
    let out = token.signet(&["serve", "--config", path_str(&token.config)]);
    let err = failed(&out, "serve with a listed key missing");
    assert!(err.contains("'gone'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_hmac_keeps_swt3_signatures_and_the_secret_inside() {
    let token = TestToken::new();

    // The SWT3 SDK's published test key is 16 bytes; SoftHSM2 stores such a key but will not
    // sign with it. The import says so, suggests the fix, and leaves nothing behind.
    let out = token.keys_with_stdin("import-hmac", &["--id", "short"], b"test-signing-key\n");
    let err = failed(&out, "a 16-byte secret");
    for expected in [
        "16-byte",
        "CKR_KEY_SIZE_RANGE",
        "64-hex-character",
        "Nothing was imported",
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(
        !err.contains("test-signing-key"),
        "the secret is not echoed: {err}"
    );
    assert!(
        listed_ids(&token).is_empty(),
        "no half-imported key is left"
    );

    let out = token.keys_with_stdin("import-hmac", &["--id", "empty"], b"\n");
    assert!(failed(&out, "an empty secret").contains("is empty"));

    // `echo "$SECRET" | signet keys import-hmac`: the trailing newline is not part of the key.
    let out = token.keys_with_stdin(
        "import-hmac",
        &["--id", "witness"],
        format!("{SWT3_SECRET}\n").as_bytes(),
    );
    common::assert_success(&out, "import-hmac");
    assert!(!stderr(&out).contains(SWT3_SECRET) && !stdout(&out).contains(SWT3_SECRET));
    let out = token.keys_with_stdin("import-hmac", &["--id", "witness"], SWT3_SECRET.as_bytes());
    assert!(failed(&out, "import over an existing id").contains("already exists"));

    // The token will not hand the secret back.
    let read = token
        .pkcs11_tool()
        .args(["--read-object", "--type", "secrkey", "--label", "witness"])
        .output()
        .expect("pkcs11-tool (install opensc)");
    assert!(
        !read.status.success() && stderr(&read).contains("CKR_ATTRIBUTE_SENSITIVE"),
        "reading CKA_VALUE must fail because it is sensitive: {}{}",
        stdout(&read),
        stderr(&read)
    );
    assert!(!stdout(&read).contains("9f86d0"), "{}", stdout(&read));
    assert!(!String::from_utf8_lossy(&read.stdout)
        .as_bytes()
        .windows(8)
        .any(|w| w == b"9f86d081"));

    // The agent's Fingerprint is what the SWT3 SDK computes with the secret.
    let agent = token.start_agent().await;
    let response = agent
        .client()
        .await
        .fingerprint(published_fingerprint_request("witness"))
        .await
        .expect("Fingerprint")
        .into_inner();
    assert_eq!(
        response.fingerprint, "f7f20b581cbf",
        "the SDK's published vector"
    );
    assert_eq!(
        response.signature,
        swt3_ai::sign_payload(SWT3_SECRET, "f7f20b581cbf", Some("agent-007"))
    );
    let (exit, log) = agent.stop();
    assert!(exit.success(), "{log}");
}

#[test]
fn sqooler_import_refuses_strings_it_cannot_trust() {
    let token = TestToken::new();
    let (config, public) = sqooler_key("k1");
    let (_, other_public) = sqooler_key("k2");
    let b64 = &base64::engine::general_purpose::URL_SAFE;
    let mut jwk: serde_json::Value =
        serde_json::from_slice(&b64.decode(&config).expect("b64")).expect("json");
    let d = jwk["d"].as_str().expect("d").to_owned();

    // d does not derive x.
    let other: serde_json::Value = serde_json::from_str(&other_public).expect("json");
    jwk["x"] = other["x"].clone();
    let tampered = b64.encode(jwk.to_string());
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "mismatched d and x",
            tampered.into_bytes(),
            "does not derive",
        ),
        (
            "a public key",
            b64.encode(&public).into_bytes(),
            "looks like a public key",
        ),
        (
            "not base64",
            b"this is not a key!".to_vec(),
            "not base64url",
        ),
        ("empty", b"\n".to_vec(), "is empty"),
        (
            "base64 of non-JSON",
            b64.encode(&d).into_bytes(),
            "not the JWK JSON",
        ),
    ];
    for (what, input, expected) in cases {
        let out = token.keys_with_stdin("import-sqooler", &[], &input);
        let err = failed(&out, what);
        assert!(err.contains(expected), "{what}: {err}");
        assert!(
            !err.contains(&d),
            "{what}: the private key is never echoed: {err}"
        );
    }
    let out = token.keys_with_stdin("import-sqooler", &["--id", "renamed"], config.as_bytes());
    assert!(failed(&out, "another id").contains("differs from the key's sqooler kid 'k1'"));
    assert!(listed_ids(&token).is_empty(), "nothing was imported");
}

#[test]
fn bad_command_lines_get_clear_errors() {
    let token = TestToken::new();
    token.generate("p256", "ec");
    token.import_hmac("mac", SWT3_SECRET);

    let cases: [(&str, &[&str], &str); 9] = [
        (
            "generate",
            &["--type", "rsa", "--id", "x"],
            "unknown key type 'rsa'",
        ),
        ("generate", &["--type", "ed25519"], "--id"),
        ("public", &[], "<ID>"),
        ("public", &["ec", "--format", "xml"], "unknown format 'xml'"),
        ("public", &["mac"], "is an HMAC key; it has no public key"),
        (
            "public",
            &["ec", "--format", "sqooler"],
            "sqooler keys are Ed25519",
        ),
        ("public", &["nope"], "no key with id 'nope' is on the token"),
        (
            "destroy",
            &["nope", "--yes"],
            "no key with id 'nope' is on the token",
        ),
        ("destroy", &["ec"], "without confirmation"),
    ];
    for (command, args, expected) in cases {
        let out = token.keys_with_stdin(command, args, b"");
        let err = failed(&out, &format!("{command} {args:?}"));
        assert!(err.contains(expected), "{command} {args:?}: {err}");
    }
    assert_eq!(listed_ids(&token), ["ec", "mac"], "nothing was destroyed");

    // Every format of a public key, each checked independently.
    let jwk = stdout(&token.keys("public", &["ec"]));
    let key = p256_from_jwk(&jwk);
    let pem = stdout(&token.keys("public", &["ec", "--format", "pem"]));
    use p256::pkcs8::DecodePublicKey as _;
    assert_eq!(
        p256::ecdsa::VerifyingKey::from_public_key_pem(&pem).expect("pem"),
        key
    );
    let der = token.keys("public", &["ec", "--format", "der"]).stdout;
    assert_eq!(
        p256::ecdsa::VerifyingKey::from_public_key_der(&der).expect("der"),
        key
    );
    let raw = token.keys("public", &["ec", "--format", "raw"]).stdout;
    assert_eq!(
        p256::ecdsa::VerifyingKey::from_sec1_bytes(&raw).expect("raw"),
        key
    );

    // A wrong PIN: one attempt, a message that says so, and the PIN is not echoed.
    std::fs::write(token.dir.path().join("pin"), "wrong-pin-000").expect("pin");
    for (command, args) in [
        ("list", &[][..]),
        ("generate", &["--type", "p256", "--id", "y"][..]),
    ] {
        let out = token.keys(command, args);
        let err = failed(&out, "a wrong PIN");
        assert!(err.contains("CKR_PIN_INCORRECT"), "{err}");
        assert!(err.contains("exactly one login attempt"), "{err}");
        assert!(!err.contains("wrong-pin-000"), "{err}");
    }
    let out = token.keys_with_stdin("import-hmac", &["--id", "z"], SWT3_SECRET.as_bytes());
    assert!(failed(&out, "import with a wrong PIN").contains("CKR_PIN_INCORRECT"));
}

/// Runs `signet keys COMMAND --config CONFIG ARGS` on a pseudo-terminal and types `answer`
/// after `prompt`; returns what the terminal showed and whether the command succeeded.
fn at_terminal(
    token: &TestToken,
    prompt: &str,
    answer: &str,
    command: &str,
    args: &[&str],
) -> (String, bool) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/pty_run.py");
    let out = std::process::Command::new(common::callers_python())
        .arg(&script)
        .arg(prompt)
        .arg(common::signet_bin())
        .args(["keys", command, "--config", path_str(&token.config)])
        .args(args)
        .env("PTY_ANSWER", answer)
        .env(
            "PTY_SECRET",
            u8::from(prompt.contains("not echoed")).to_string(),
        )
        .env("SOFTHSM2_CONF", &token.softhsm_conf)
        .output()
        .expect("python pty_run.py");
    (stdout(&out) + &stderr(&out), out.status.success())
}

#[test]
fn at_a_terminal_secrets_are_not_echoed_and_destroy_asks_first() {
    let token = TestToken::new();
    let (shown, ok) = at_terminal(
        &token,
        "(not echoed): ",
        SWT3_SECRET,
        "import-hmac",
        &["--id", "typed"],
    );
    assert!(ok, "{shown}");
    assert!(
        shown.contains("SWT3 signing secret (not echoed): "),
        "{shown}"
    );
    assert!(
        !shown.contains(SWT3_SECRET),
        "the typed secret is not echoed: {shown}"
    );
    assert!(
        shown.contains("imported hmac-sha256 key 'typed'"),
        "{shown}"
    );

    let (shown, ok) = at_terminal(&token, "to confirm: ", "not-the-id", "destroy", &["typed"]);
    assert!(
        !ok && shown.contains("not confirmed; nothing was destroyed"),
        "{shown}"
    );
    assert_eq!(listed_ids(&token), ["typed"]);
    let (shown, ok) = at_terminal(&token, "to confirm: ", "typed", "destroy", &["typed"]);
    assert!(ok && shown.contains("destroyed key 'typed'"), "{shown}");
    assert!(listed_ids(&token).is_empty());
}
