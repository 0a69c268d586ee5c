//! The hardened systemd unit and the production config in `deploy/`: `systemd-analyze verify`
//! accepts the unit without a single warning, it keeps the hardening the security model relies
//! on, and the config it points at is a valid Signet configuration.

use std::path::Path;
use std::process::Command;

fn repo(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

#[test]
fn systemd_analyze_verifies_the_unit_without_warnings() {
    let analyze = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        analyze.is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: install it with `apt-get install -y systemd` (test.sh does)"
    );
    // The unit as installed, except that ExecStart points at the binary under test (verify
    // checks that the command exists and is executable).
    let unit = repo("deploy/signet.service")
        .replace("/usr/local/bin/signet", env!("CARGO_BIN_EXE_signet"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("signet.service");
    std::fs::write(&path, unit).expect("unit file");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // A directive systemd cannot parse is only a warning, with exit status 0.
    assert!(
        stderr.trim().is_empty(),
        "systemd-analyze verify warned:\n{stderr}"
    );
}

#[test]
fn the_unit_keeps_its_hardening_and_takes_the_pin_as_a_credential() {
    let unit = repo("deploy/signet.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    for directive in [
        "User=signet",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "MemoryDenyWriteExecute=yes",
        "LimitCORE=0",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet=",
        "LoadCredential=pin:/etc/signet/pin",
        "RuntimeDirectory=signet",
        // bind_unix sets the socket's group with chown, which ~@privileged would refuse.
        "SystemCallFilter=@chown",
        "ExecStart=/usr/local/bin/signet serve --config /etc/signet/signet.toml",
    ] {
        assert!(
            lines.contains(&directive),
            "deploy/signet.service lacks {directive}"
        );
    }
    assert!(
        !unit.contains("--pin") && !unit.contains("SIGNET_PIN"),
        "the PIN must not be passed in argv or the environment"
    );
}

#[test]
fn the_production_config_is_valid_and_reads_the_pin_from_the_credential() {
    let text = repo("deploy/signet.toml");
    let config = signet::config::Config::parse(&text).expect("deploy/signet.toml must parse");
    let signet::config::Backend::Pkcs11(p) = &config.backend else {
        panic!("deploy/signet.toml uses the PKCS#11 backend");
    };
    assert!(
        matches!(&p.pin, signet::config::SecretSource::File(f)
            if f == Path::new("/run/credentials/signet.service/pin")),
        "the PIN comes from systemd's credential directory"
    );
    assert!(config.audit.is_some(), "production keeps an audit log");
    let metrics = config.metrics.expect("metrics configured");
    assert!(metrics.address.ip().is_loopback());
}
