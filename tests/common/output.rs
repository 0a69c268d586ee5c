//! What the `signet` commands print, read the way the tests check it.

use std::process::Output;

use super::Device;

/// Standard output, lossily decoded.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error, lossily decoded.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts that the command failed and returns its standard error.
pub fn failed(out: &Output, what: &str) -> String {
    let err = stderr(out);
    assert!(!out.status.success(), "{what} should have failed:\n{err}");
    err
}

/// `keys list --json`, parsed.
pub fn list(device: &impl Device) -> Vec<serde_json::Value> {
    let out = device.keys("list", &["--json"]);
    super::assert_success(&out, "signet keys list --json");
    serde_json::from_str(&stdout(&out)).expect("list --json prints a JSON array")
}

/// The ids `keys list --json` names, in its order.
pub fn listed_ids(device: &impl Device) -> Vec<String> {
    list(device)
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect()
}
