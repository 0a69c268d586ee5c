"""Test fixtures: the real `signet` agent on a SoftHSM2 token of its own in a temporary directory.

Like the Rust integration tests (tests/common/mod.rs): a softhsm2.conf whose token directory is in
a temporary directory, `signet token init`, keys made with `signet keys generate` and imported
with `signet keys import-sqooler` (a key made by sqooler's own helper) and `signet keys
import-hmac` (an SWT3 secret), then `signet serve` in the background with a unix socket (this
process's uid may sign and fingerprint with every key) and a TLS listener (a client certificate
made here may sign with `ed` only). Nothing is skipped: without SoftHSM2 or the binary the tests
fail and say what to install or build.

The binary is $SIGNET_BIN (./test.sh passes target/debug/signet); without it, the newer of
target/debug/signet and target/release/signet.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import pytest

from signet_client import Client, SignetError


def _load_swt3_submodules() -> None:
    """Makes `import swt3_ai.fingerprint` and `import swt3_ai.signing` work on Python 3.11.

    swt3-ai 0.7.8 declares Requires-Python >=3.9, but its package `__init__` imports
    `swt3_ai/buffer.py`, which uses an f-string with a backslash in an expression (valid only
    from Python 3.12), so `import swt3_ai` raises SyntaxError before 3.12. The two modules the
    tests compare with (`fingerprint`, `signing`) use the standard library only, so they are
    imported as they are, from the installed package, without running its `__init__`.
    """
    import importlib.util
    import sys
    import types

    try:
        import swt3_ai  # noqa: F401
        return
    except SyntaxError:
        pass
    spec = importlib.util.find_spec("swt3_ai")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("swt3-ai is not installed (tests/python/requirements.txt)", pytrace=False)
    package = types.ModuleType("swt3_ai")
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__ = spec.origin
    sys.modules["swt3_ai"] = package


_load_swt3_submodules()

REPO = Path(__file__).resolve().parents[3]

MODULE_PATHS = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
]

TEST_PIN = "test-user-pin-7f3a9c"
TEST_SO_PIN = "test-so-pin-51d2e8"

#: The SWT3 secret imported as `witness` (64 hex characters, as SWT3 recommends).
SWT3_SECRET = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
#: The sqooler kid of the key migrated with import-sqooler (non-ASCII on purpose).
SQOOLER_KID = "spooler-ä1"
#: The CN of the TLS client certificate, allowed to sign with `ed` only.
TLS_CLIENT_CN = "py-client"


def softhsm_module() -> str:
    for path in MODULE_PATHS:
        if os.path.exists(path):
            return path
    pytest.fail(
        "SoftHSM2 is not installed, and the Signet tests need a real token.\n"
        "Install it with: sudo apt-get install -y softhsm2 opensc\n"
        f"(looked for the module in {MODULE_PATHS})",
        pytrace=False,
    )


def signet_bin() -> str:
    explicit = os.environ.get("SIGNET_BIN")
    if explicit:
        if not os.access(explicit, os.X_OK):
            pytest.fail(f"SIGNET_BIN={explicit} is not an executable", pytrace=False)
        # The agent runs in the token's directory, so a relative path is resolved here.
        return os.path.abspath(explicit)
    candidates = [REPO / "target/debug/signet", REPO / "target/release/signet"]
    existing = [p for p in candidates if os.access(p, os.X_OK)]
    if not existing:
        pytest.fail(
            "the signet binary is missing: build it with `cargo build` (or set SIGNET_BIN)",
            pytrace=False,
        )
    return str(max(existing, key=lambda p: p.stat().st_mtime))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certificates(directory: Path) -> Dict[str, Path]:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM files."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key_pem(key) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("signet python test CA"))
        .issuer_name(name("signet python test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def issue(cn: str, sans: list, server: bool):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [x509.oid.ExtendedKeyUsageOID.SERVER_AUTH if server
                     else x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = issue(
        "signet",
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
        server=True,
    )
    client, client_key = issue(TLS_CLIENT_CN, [x509.DNSName("py-client.example")], server=False)
    files = {
        "ca": (directory / "ca.pem", ca.public_bytes(serialization.Encoding.PEM)),
        "server_cert": (directory / "server.pem", server.public_bytes(serialization.Encoding.PEM)),
        "server_key": (directory / "server.key", key_pem(server_key)),
        "client_cert": (directory / "client.pem", client.public_bytes(serialization.Encoding.PEM)),
        "client_key": (directory / "client.key", key_pem(client_key)),
    }
    for path, data in files.values():
        path.write_bytes(data)
        path.chmod(0o600)
    return {k: path for k, (path, _) in files.items()}


@dataclass
class Agent:
    """A running `signet serve` on a temporary token, and what the tests need to know about it."""

    dir: Path
    config: Path
    socket: Path
    target: str
    tls_address: str
    certs: Dict[str, Path]
    log: Path
    #: The private JWK (sqooler's model) of the key migrated with import-sqooler.
    sqooler_private: object
    #: The public JWK JSON that import-sqooler printed.
    sqooler_public_json: str
    #: What `signet keys generate --type ed25519 --id ed` printed.
    ed_generated: str
    process: Optional[subprocess.Popen] = None

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


class Token:
    """Runs `signet` with the token's SoftHSM2 configuration, like TestToken in the Rust tests."""

    def __init__(self, directory: Path):
        self.dir = directory
        self.bin = signet_bin()
        self.module = softhsm_module()
        (directory / "tokens").mkdir()
        self.softhsm_conf = directory / "softhsm2.conf"
        self.softhsm_conf.write_text(
            f"directories.tokendir = {directory / 'tokens'}\n"
            "objectstore.backend = file\nlog.level = ERROR\n"
        )
        (directory / "pin").write_text(TEST_PIN)
        (directory / "so-pin").write_text(TEST_SO_PIN)
        self.label = f"py-test-{os.getpid()}"
        self.config = directory / "signet.toml"
        self.env = dict(os.environ, SOFTHSM2_CONF=str(self.softhsm_conf), SIGNET_LOG="info")

    def write_config(self, listeners: str = "", clients: str = "") -> None:
        self.config.write_text(
            '[[listen]]\ntype = "unix"\npath = "signet.sock"\n\n'
            f"{listeners}"
            f'[[clients]]\nname = "tests"\nuid = {os.getuid()}\nkeys = ["*"]\n'
            'operations = ["sign", "fingerprint", "verify"]\n\n'
            f"{clients}"
            f'[backend]\ntype = "pkcs11"\nmodule = "{self.module}"\n'
            f'token = {{ label = "{self.label}" }}\npin = {{ file = "pin" }}\n'
        )

    def run(self, *args: str, stdin: Optional[bytes] = None) -> str:
        out = subprocess.run(
            [self.bin, *args],
            input=stdin,
            capture_output=True,
            cwd=self.dir,
            env=self.env,
            timeout=120,
        )
        if out.returncode != 0:
            pytest.fail(
                f"signet {' '.join(args[:2])} failed ({out.returncode}):\n"
                f"stdout: {out.stdout.decode(errors='replace')}\n"
                f"stderr: {out.stderr.decode(errors='replace')}",
                pytrace=False,
            )
        return out.stdout.decode()

    def keys(self, command: str, *args: str, stdin: Optional[bytes] = None) -> str:
        return self.run("keys", command, "--config", str(self.config), *args, stdin=stdin)


def _stop(process: subprocess.Popen) -> int:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@pytest.fixture(scope="session")
def agent():
    from sqooler.security import create_jwk_pair

    with tempfile.TemporaryDirectory(prefix="signet-pytest-") as tmp:
        directory = Path(tmp)
        token = Token(directory)
        certs = make_certificates(directory)
        port = free_port()
        token.write_config(
            listeners=(
                f'[[listen]]\ntype = "tls"\naddress = "127.0.0.1:{port}"\n'
                f'cert = "server.pem"\nkey = "server.key"\nclient_ca = "ca.pem"\n\n'
            ),
            clients=(
                f'[[clients]]\nname = "tls-client"\ncert_cn = "{TLS_CLIENT_CN}"\n'
                'keys = ["ed"]\noperations = ["sign"]\n\n'
            ),
        )
        token.run("token", "init", "--config", str(token.config), "--so-pin-file", "so-pin")
        ed_generated = token.keys("generate", "--type", "ed25519", "--id", "ed")
        token.keys("generate", "--type", "p256", "--id", "ec")
        token.keys("generate", "--type", "hmac-sha256", "--id", "hmac")
        # `echo "$SECRET" | signet keys import-hmac`: the trailing newline is not part of it.
        token.keys("import-hmac", "--id", "witness", stdin=f"{SWT3_SECRET}\n".encode())
        # A spooler key made the way sqooler's `sqoolerkey` makes it, migrated into the token.
        private, _public = create_jwk_pair(kid=SQOOLER_KID)
        public_json = token.keys(
            "import-sqooler", stdin=f"{private.to_config_str()}\n".encode()
        ).strip()

        log = directory / "agent.log"
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                [token.bin, "serve", "--config", str(token.config)],
                cwd=directory,
                env=token.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        sock = directory / "signet.sock"
        result = Agent(
            dir=directory,
            config=token.config,
            socket=sock,
            target=f"unix://{sock}",
            tls_address=f"127.0.0.1:{port}",
            certs=certs,
            log=log,
            sqooler_private=private,
            sqooler_public_json=public_json,
            ed_generated=ed_generated,
            process=process,
        )
        try:
            _wait_until_serving(result)
            yield result
        finally:
            status = _stop(process)
            print(f"agent exited with {status}")
        assert status == 0, f"the agent did not stop cleanly ({status}):\n{result.log_text()}"


def _wait_until_serving(agent: Agent) -> None:
    deadline = time.monotonic() + 30
    while True:
        status = agent.process.poll()
        if status is not None:
            pytest.fail(
                f"the agent exited ({status}) before serving:\n{agent.log_text()}", pytrace=False
            )
        if agent.socket.exists():
            try:
                with Client(agent.target, timeout=2) as client:
                    if client.list_keys():
                        return
            except SignetError:
                pass
        if time.monotonic() > deadline:
            pytest.fail(
                f"the agent did not start serving within 30 s:\n{agent.log_text()}",
                pytrace=False,
            )
        time.sleep(0.05)


@pytest.fixture
def client(agent):
    with Client(agent.target) as c:
        yield c
