//! Kryoptic, the second real PKCS#11 token of the tests: where its module is, and how a token of
//! its own is set up in a test's temporary directory (`KRYOPTIC_CONF` names its sqlite file).

use std::path::{Path, PathBuf};

/// The Kryoptic version `scripts/kryoptic.sh` builds by default.
pub const VERSION: &str = "1.5.4";

/// The Kryoptic module: `SIGNET_KRYOPTIC_MODULE` when set (test.sh sets it), else where
/// `scripts/kryoptic.sh` puts it under the target directory; or a panic saying how to build it.
/// Tests never skip.
pub fn module() -> PathBuf {
    if let Some(path) = std::env::var_os("SIGNET_KRYOPTIC_MODULE") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "SIGNET_KRYOPTIC_MODULE names {}, which is not a file.\n{}",
            path.display(),
            HINT
        );
        return path;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = target
        .join("kryoptic")
        .join(VERSION)
        .join("libkryoptic_pkcs11.so");
    assert!(
        path.is_file(),
        "the Kryoptic PKCS#11 module is not built (looked for {}).\n{}",
        path.display(),
        HINT
    );
    path
}

const HINT: &str = "Build it once (a few minutes; cached under target/kryoptic/) with:\n  \
                    scripts/kryoptic.sh\n\
                    (test.sh does this, installing libclang-dev for bindgen if it is missing)";

/// The sqlite store of a Kryoptic token in `dir`, which `KRYOPTIC_CONF` names: a path ending in
/// `.sql` is a whole configuration, one slot on that database.
pub fn store(dir: &Path) -> PathBuf {
    dir.join("kryoptic.sql")
}
