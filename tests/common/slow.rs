//! The slow-HSM pass-through (`crates/pkcs11-slow`): built on demand, where it is, and a test
//! token whose agent reaches SoftHSM2 through it with a given latency and parallelism.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{softhsm_module, Agent, TestToken};

/// The pass-through module. `SIGNET_SLOW_P11_MODULE` when set; otherwise it is built with
/// `cargo build -p pkcs11-slow` into `target/pkcs11-slow/` (a target directory of its own, so
/// the build never waits for the lock of the build that runs the tests) and its path returned.
/// Cargo's own locking makes concurrent calls safe; an up-to-date build takes a fraction of a
/// second.
pub fn module() -> PathBuf {
    if let Some(path) = std::env::var_os("SIGNET_SLOW_P11_MODULE") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "SIGNET_SLOW_P11_MODULE names {}, which is not a file",
            path.display()
        );
        return path;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("pkcs11-slow");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "-p", "pkcs11-slow", "--target-dir"])
        .arg(&target)
        .output()
        .expect("run cargo to build crates/pkcs11-slow");
    assert!(
        out.status.success(),
        "cargo build -p pkcs11-slow failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = target.join("debug").join("libpkcs11_slow.so");
    assert!(path.is_file(), "the build made no {}", path.display());
    path
}

/// How the simulated device behaves.
#[derive(Clone, Copy, Debug)]
pub struct Device {
    /// Slept per `C_Sign`/`C_Verify`.
    pub latency: Duration,
    /// How many of those run at once (0: no limit).
    pub parallel: usize,
}

impl Device {
    /// The environment that configures the pass-through in front of SoftHSM2.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLOW_P11_MODULE", softhsm_module().display().to_string()),
            ("SLOW_P11_LATENCY_US", self.latency.as_micros().to_string()),
            ("SLOW_P11_PARALLEL", self.parallel.to_string()),
        ]
    }
}

/// Points `token`'s config at the pass-through (`extra` in `[backend]`, and after it any further
/// tables), once its keys are made: the `signet` commands of [`TestToken`] reach SoftHSM2
/// itself, and only an agent started with [`TestToken::start_agent_with_env`] and
/// [`Device::env`] signs through the pass-through.
pub fn route_through(token: &TestToken, extra: &str) {
    token.write_config(&module(), extra);
}

/// Starts the agent of `token` (see [`route_through`]) with the pass-through configured as
/// `device`, and checks that it has loaded the pass-through and SoftHSM2 behind it.
pub async fn start_agent(token: &TestToken, device: Device) -> Agent {
    let env = device.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let agent = token.start_agent_with_env(&env).await;
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", agent.pid())).expect("maps");
    assert!(
        maps.contains("libpkcs11_slow.so") && maps.contains("libsofthsm2.so"),
        "the agent has loaded the pass-through and, behind it, SoftHSM2"
    );
    agent
}
