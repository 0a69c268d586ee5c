"""SWT3 anchors signed by an ML-DSA-65 key in the HSM, checked by swt3-ai's own verifier.

A Kryoptic token (PKCS#11 3.2, ML-DSA) in a temporary directory, an ML-DSA-65 key made with
`signet keys generate --type ml-dsa-65`, the real agent serving it; `witness_fingerprint` mints and
signs anchors, and `swt3_ai.signing.verify_mldsa` (swt3-ai 0.7.8, with cryptography >= 48: this
environment, tests/python/requirements-mldsa.txt) accepts them given the raw public key from
GetPublicKey. Nothing is skipped: without the Kryoptic module or the binary the test fails and
says how to build them.

The module is $SIGNET_KRYOPTIC_MODULE (./test.sh sets it), else target/kryoptic/1.5.4/ as
scripts/kryoptic.sh builds it; the binary is $SIGNET_BIN, else target/debug/signet.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import pytest

from signet_client import Client, SignetError

REPO = Path(__file__).resolve().parents[3]
TEST_PIN = "test-user-pin-7f3a9c"
TEST_SO_PIN = "test-so-pin-51d2e8"


def _swt3_signing():
    """`swt3_ai.signing`, imported without the package `__init__` where that needs Python 3.12
    (swt3-ai 0.7.8's buffer.py; see clients/python/tests/conftest.py): signing.py itself uses the
    standard library and, for ML-DSA, cryptography."""
    try:
        import swt3_ai.signing as signing

        return signing
    except SyntaxError:
        pass
    spec = importlib.util.find_spec("swt3_ai")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("swt3-ai is not installed (tests/python/requirements-mldsa.txt)", pytrace=False)
    package = types.ModuleType("swt3_ai")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["swt3_ai"] = package
    import swt3_ai.signing as signing

    return signing


def _kryoptic_module() -> str:
    explicit = os.environ.get("SIGNET_KRYOPTIC_MODULE")
    path = Path(explicit) if explicit else REPO / "target/kryoptic/1.5.4/libkryoptic_pkcs11.so"
    if not path.is_file():
        pytest.fail(
            f"the Kryoptic PKCS#11 module is not built (looked for {path}); build it once with "
            "scripts/kryoptic.sh",
            pytrace=False,
        )
    return str(path)


def _signet_bin() -> str:
    path = Path(os.environ.get("SIGNET_BIN") or REPO / "target/debug/signet")
    if not os.access(path, os.X_OK):
        pytest.fail(f"the signet binary is missing ({path}): build it with `cargo build`",
                    pytrace=False)
    return str(path.resolve())


@pytest.fixture(scope="module")
def agent():
    with tempfile.TemporaryDirectory(prefix="signet-pytest-mldsa-") as tmp:
        directory = Path(tmp)
        (directory / "pin").write_text(TEST_PIN)
        (directory / "so-pin").write_text(TEST_SO_PIN)
        config = directory / "signet.toml"
        config.write_text(
            '[[listen]]\ntype = "unix"\npath = "signet.sock"\n\n'
            f'[[clients]]\nname = "tests"\nuid = {os.getuid()}\nkeys = ["*"]\n'
            'operations = ["sign", "fingerprint", "verify"]\n\n'
            f'[backend]\ntype = "pkcs11"\nmodule = "{_kryoptic_module()}"\n'
            f'token = {{ label = "py-mldsa-{os.getpid()}" }}\npin = {{ file = "pin" }}\n'
        )
        env = dict(os.environ, KRYOPTIC_CONF=str(directory / "kryoptic.sql"), SIGNET_LOG="info")
        binary = _signet_bin()

        def run(*args: str) -> None:
            out = subprocess.run([binary, *args], capture_output=True, cwd=directory, env=env,
                                 timeout=120)
            assert out.returncode == 0, f"signet {' '.join(args[:2])}: {out.stderr.decode()}"

        run("token", "init", "--config", str(config), "--so-pin-file", "so-pin")
        run("keys", "generate", "--config", str(config), "--type", "ml-dsa-65", "--id", "pq")
        log = directory / "agent.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen([binary, "serve", "--config", str(config)], cwd=directory,
                                       env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=log_file)
        target = f"unix://{directory / 'signet.sock'}"
        try:
            deadline = time.monotonic() + 30
            while True:
                assert process.poll() is None, f"the agent exited:\n{log.read_text()}"
                try:
                    with Client(target, timeout=2) as client:
                        if client.list_keys():
                            break
                except SignetError:
                    pass
                assert time.monotonic() < deadline, f"the agent did not serve:\n{log.read_text()}"
                time.sleep(0.05)
            yield target
        finally:
            process.send_signal(signal.SIGTERM)
            status = process.wait(timeout=30)
        assert status == 0, f"the agent did not stop cleanly ({status}):\n{log.read_text()}"


@pytest.mark.parametrize("agent_id", ["w-1", None])
def test_swt3_verify_mldsa_accepts_anchors_signed_in_the_hsm(agent, agent_id):
    signing = _swt3_signing()
    with Client(agent) as client:
        (key,) = client.list_keys()
        assert key.algorithm == "ml-dsa-65"
        public = client.public_key("pq")
        assert public.algorithm == "ml-dsa-65"
        raw = public.raw
        assert len(raw) == 1952
        anchor = client.witness_fingerprint(
            "pq", "ENCLAVE_ALPHA", "AI-INF.1", 1, 1, 0, 1774800000000, agent_id=agent_id
        )
    assert anchor.signing_algorithm == "ml-dsa-65"
    assert anchor.fingerprint == "f7f20b581cbf"
    assert len(anchor.signature) == 2 * 3309
    message = signing._build_message(anchor.fingerprint, agent_id)
    assert signing.verify_mldsa(raw, message, anchor.signature)
    # The verifier is not a yes-man: another message, or another agent id, fails.
    assert not signing.verify_mldsa(raw, message + "x", anchor.signature)
    other = signing._build_message(anchor.fingerprint, "someone-else")
    assert not signing.verify_mldsa(raw, other, anchor.signature)
