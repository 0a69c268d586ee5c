#!/usr/bin/env bash
# Runs the whole Signet test suite: formatting, lints, and every test (unit tests, and the
# integration tests that create their own SoftHSM2 tokens in temporary directories). The tests
# run with the yubihsm-mock feature, so the conformance suite covers both backends: SoftHSM2
# through PKCS#11, and the native YubiHSM backend against the yubihsm crate's MockHsm. Lints run
# with and without it, so the default build stays clean too.
# Installs what the tests need when it is missing: softhsm2, opensc (pkcs11-tool), and a Python
# virtual environment with the callers' own libraries (sqooler) for the compatibility tests.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-packages.sh softhsm2 opensc
SIGNET_TEST_PYTHON="$(scripts/python-env.sh)"
export SIGNET_TEST_PYTHON
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked --features yubihsm-mock -- -D warnings
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast --features yubihsm-mock
else
  cargo test --locked --no-fail-fast --features yubihsm-mock
fi
