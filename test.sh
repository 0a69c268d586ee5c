#!/usr/bin/env bash
# Runs the whole Signet test suite: formatting, lints, and every test (unit tests, and the
# integration tests that create their own SoftHSM2 or Kryoptic tokens in temporary directories).
# The tests run with the yubihsm-mock feature, so the conformance suite covers three backends:
# SoftHSM2 and Kryoptic through PKCS#11, and the native YubiHSM backend against the yubihsm
# crate's MockHsm. Lints run with and without it, so the default build stays clean too.
# The Kryoptic module is built from the crate registry by scripts/kryoptic.sh (a few minutes the
# first time, then cached under target/kryoptic/<version>/; it installs libclang-dev for bindgen).
# Installs what the tests need when it is missing: softhsm2, opensc (pkcs11-tool), systemd
# (systemd-analyze, for the unit in deploy/), and a Python virtual environment with the callers'
# own libraries (sqooler, swt3-ai) and the Python client for the compatibility tests and the
# client's own tests (clients/python/tests, run last, also against the client's wheel in a second
# environment with protobuf 7), and a third environment with cryptography 48 in which swt3-ai's own
# verify_mldsa checks an SWT3 anchor signed by an ML-DSA-65 key on Kryoptic
# (clients/python/tests_mldsa).
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure-packages.sh softhsm2 opensc systemd
SIGNET_KRYOPTIC_MODULE="$(scripts/kryoptic.sh)"
export SIGNET_KRYOPTIC_MODULE
SIGNET_TEST_PYTHON="$(scripts/python-env.sh)"
export SIGNET_TEST_PYTHON
cargo fmt --all -- --check
# The agent and the Rust client crate (crates/signet-client) together, so they share one build.
packages=(-p signet -p signet-client)
cargo clippy --all-targets --locked "${packages[@]}" -- -D warnings
cargo clippy --all-targets --locked --features yubihsm-mock "${packages[@]}" -- -D warnings
# The test-support PKCS#11 modules (the only crates with unsafe code) are linted too.
cargo clippy --all-targets --locked -p pkcs11-faults -p pkcs11-slow -- -D warnings
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --locked --no-fail-fast --features yubihsm-mock "${packages[@]}" || status=$?
  # nextest runs no doc tests: the client crate's README example is one.
  cargo test --locked --no-fail-fast --features yubihsm-mock "${packages[@]}" --doc || status=$?
else
  cargo test --locked --no-fail-fast --features yubihsm-mock "${packages[@]}" || status=$?
fi
# The Python client (clients/python) against the agent binary the Rust tests use (a no-op build
# after them: same features), whatever the Rust tests said, so one run reports both: its types
# (`mypy --strict` on the installed package, which ships py.typed), its tests as installed from the
# checkout (protobuf 6), and its tests against the wheel `python -m build` makes, installed in a
# clean environment with protobuf 7 and grpcio-reflection/grpcio-health-checking.
cargo build --locked --features yubihsm-mock --bin signet
signet_bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/signet"
"$SIGNET_TEST_PYTHON" -m mypy --config-file clients/python/pyproject.toml \
  --cache-dir target/mypy-cache -p signet_client || status=$?
SIGNET_BIN="$signet_bin" SIGNET_EXPECT_PROTOBUF_MAJOR=6 \
  "$SIGNET_TEST_PYTHON" -m pytest -q -p no:cacheprovider clients/python/tests || status=$?
if wheel_python="$(scripts/python-env.sh wheel)"; then
  SIGNET_BIN="$signet_bin" SIGNET_EXPECT_PROTOBUF_MAJOR=7 \
    SIGNET_GENERATE_PYTHON="$SIGNET_TEST_PYTHON" \
    "$wheel_python" -m pytest -q -p no:cacheprovider clients/python/tests || status=$?
else
  status=1
fi
# swt3-ai's own ML-DSA-65 verifier on anchors the agent signs on a Kryoptic token, in its own
# environment: it needs cryptography >= 48, sqooler pins cryptography < 43.
if mldsa_python="$(scripts/python-env.sh mldsa)"; then
  SIGNET_BIN="$signet_bin" \
    "$mldsa_python" -m pytest -q -p no:cacheprovider clients/python/tests_mldsa || status=$?
else
  status=1
fi
exit "$status"
