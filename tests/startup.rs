//! Start-up refusals of the real binary: each exits non-zero with a message that says what is
//! wrong and what to do, and never prints the PIN.

mod common;

use common::{path_str, softhsm_module, Device, TestToken, TEST_PIN};

/// Runs `signet serve` expecting it to refuse to start; returns its stderr, which never holds
/// the PIN.
fn refused(token: &TestToken) -> String {
    let stderr = token.refused_start();
    assert!(
        !stderr.contains(TEST_PIN),
        "the PIN must not appear: {stderr}"
    );
    stderr
}

#[test]
fn wrong_pin_is_tried_once_and_explained() {
    let token = TestToken::new().with_demo_keys();
    std::fs::write(token.dir.path().join("pin"), "wrong-pin-000").expect("pin");
    let stderr = refused(&token);
    assert!(stderr.contains("CKR_PIN_INCORRECT"), "{stderr}");
    assert!(stderr.contains("exactly one login attempt"), "{stderr}");
    assert!(
        !stderr.contains("wrong-pin-000"),
        "the wrong PIN is not echoed either: {stderr}"
    );
    // The right PIN still works: no lockout was caused by retries.
    std::fs::write(token.dir.path().join("pin"), TEST_PIN).expect("pin");
    token.generate("ed25519", "after");
}

#[test]
fn unknown_token_label_lists_the_tokens_present() {
    let token = TestToken::new().with_demo_keys();
    token.edit_config(|text| text.replace(&token.label, "no-such-token"));
    let stderr = refused(&token);
    assert!(
        stderr.contains("no initialised token with label 'no-such-token'"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&token.label),
        "names the tokens present: {stderr}"
    );
    assert!(
        stderr.contains("SoftHSM2 reads its tokens from the directories.tokendir of SOFTHSM2_CONF"),
        "says where SoftHSM2 looked: {stderr}"
    );
}

#[test]
fn missing_module_says_how_to_install() {
    let token = TestToken::new();
    let missing = token.dir.path().join("no-such-module.so");
    token.write_config(&missing, "");
    let stderr = refused(&token);
    assert!(
        stderr.contains("cannot load the PKCS#11 module"),
        "{stderr}"
    );
    assert!(stderr.contains("no-such-module.so"), "{stderr}");
    assert!(stderr.contains("apt-get install softhsm2"), "{stderr}");
}

#[test]
fn an_extractable_key_outside_the_served_set_does_not_block() {
    let token = TestToken::new().with_demo_keys();
    token.generate_extractable_p256("leaky");
    token.write_config(&softhsm_module(), "keys = [\"ed\", \"hmac\"]");
    let mut child = token
        .command()
        .args(["serve", "--config", path_str(&token.config)])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !token.socket.exists() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "the agent exited"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_listed_key_that_is_missing_is_named() {
    let token = TestToken::new().with_demo_keys();
    token.write_config(&softhsm_module(), "keys = [\"ed\", \"ghost\"]");
    let stderr = refused(&token);
    assert!(
        stderr.contains("key 'ghost' (listed in backend.keys) is not on the token"),
        "{stderr}"
    );
}

#[test]
fn config_errors_name_the_key_without_echoing_values() {
    let token = TestToken::new();
    token.edit_config(|text| {
        text.replace(
            "pin = { file = \"pin\" }",
            "pin = \"s3cr3t-inline\"\nslot = 3",
        )
    });
    let stderr = refused(&token);
    assert!(stderr.contains("line"), "{stderr}");
    assert!(
        !stderr.contains("s3cr3t-inline"),
        "an inline secret is not echoed: {stderr}"
    );
}

#[test]
fn plain_tcp_on_a_public_address_is_refused() {
    let token = TestToken::new().with_demo_keys();
    token.edit_config(|text| {
        format!("[[listen]]\ntype = \"tcp\"\naddress = \"0.0.0.0:50999\"\n\n{text}")
    });
    let stderr = refused(&token);
    assert!(
        stderr.contains("plain TCP on 0.0.0.0:50999 is refused"),
        "{stderr}"
    );
}

/// OpenSC's PKCS#11 spy module, which logs every call to the module behind it.
fn spy_module() -> std::path::PathBuf {
    ["x86_64-linux-gnu", "aarch64-linux-gnu"]
        .iter()
        .map(|arch| std::path::PathBuf::from(format!("/usr/lib/{arch}/pkcs11-spy.so")))
        .find(|p| p.exists())
        .expect("pkcs11-spy.so (install it with: sudo apt-get install -y opensc-pkcs11)")
}

#[test]
fn a_wrong_pin_makes_exactly_one_c_login_call() {
    let token = TestToken::new().with_demo_keys();
    std::fs::write(token.dir.path().join("pin"), "wrong-pin-000").expect("pin");
    // The agent talks to SoftHSM2 through the spy, which records every call it forwards.
    token.write_config(&spy_module(), "");
    let calls = token.dir.path().join("pkcs11-calls.log");
    let out = token
        .command()
        .args(["serve", "--config", path_str(&token.config)])
        .env("PKCS11SPY", softhsm_module())
        .env("PKCS11SPY_OUTPUT", &calls)
        .output()
        .expect("run signet serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("CKR_PIN_INCORRECT"), "{stderr}");
    let log = std::fs::read_to_string(&calls).expect("the spy's log");
    let logins: Vec<&str> = log.lines().filter(|l| l.contains("C_Login")).collect();
    assert_eq!(logins.len(), 1, "exactly one C_Login: {logins:?}");
    assert!(
        log.contains("CKR_PIN_INCORRECT"),
        "the token's answer is in the spy log"
    );
    assert!(!stderr.contains("wrong-pin-000"), "{stderr}");
}
