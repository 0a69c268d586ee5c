"""Three agents on one SoftHSM2 token behind gRPC's own client-side `round_robin` with health
checking (grpc C-core, which grpcio is), and one of them SIGKILLed under load.

Each replica is a real `signet serve` with its own config, TLS listener, unix socket and audit
log; all three open the same token directory (SoftHSM2's file store may be opened by several
processes). The client is one `Client` on the target list `ipv4:A,B,C` with the service config
the README gives: `round_robin`, `healthCheckConfig` on `signet.v1.Signer`, and a retry policy
on `UNAVAILABLE`. Under load from several threads one replica is killed with SIGKILL. Then:

- every call fails, if at all, with `UNAVAILABLE` only (the service config's retry policy
  retries it; a call that still ends in `UNAVAILABLE` is retried here, as a caller would), and
  every message ends with exactly one signature, which verifies with `cryptography`'s Ed25519;
- the two survivors keep serving, and calls after the kill are spread over both (their audit
  logs grow);
- `signet audit verify` passes on each replica's log, the killed one's included, and the killed
  replica starts again on its log and is taken back into rotation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from conftest import TLS_CLIENT_CN, Token, free_port, make_certificates
from signet_client import Client, SignetError

REPLICAS = 3
THREADS = 6

#: The service config of the README's "Several replicas behind a load balancer".
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "healthCheckConfig": {"serviceName": "signet.v1.Signer"},
    "methodConfig": [
        {
            "name": [{"service": "signet.v1.Signer"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}


class Replica:
    """One `signet serve` on the shared token, with its own listener and audit log."""

    def __init__(self, token: Token, index: int, env: Optional[Dict[str, str]] = None):
        self.token = token
        self.env = env or token.env
        self.index = index
        self.port = free_port()
        self.socket = token.dir / f"replica{index}.sock"
        self.audit = token.dir / f"audit{index}.jsonl"
        self.config = token.dir / f"replica{index}.toml"
        self.log = token.dir / f"replica{index}.log"
        self.config.write_text(
            f'[[listen]]\ntype = "unix"\npath = "{self.socket.name}"\n\n'
            f'[[listen]]\ntype = "tls"\naddress = "127.0.0.1:{self.port}"\n'
            'cert = "server.pem"\nkey = "server.key"\nclient_ca = "ca.pem"\n\n'
            f'[[clients]]\nname = "tests"\nuid = {os.getuid()}\nkeys = ["*"]\n'
            'operations = ["sign"]\n\n'
            f'[[clients]]\nname = "tls-client"\ncert_cn = "{TLS_CLIENT_CN}"\n'
            'keys = ["*"]\noperations = ["sign"]\n\n'
            f'[backend]\ntype = "pkcs11"\nmodule = "{token.module}"\n'
            f'token = {{ label = "{token.label}" }}\npin = {{ file = "pin" }}\n\n'
            f'[audit]\npath = "{self.audit.name}"\n'
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [self.token.bin, "serve", "--config", str(self.config)],
                cwd=self.token.dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 30
        while True:
            status = self.process.poll()
            if status is not None:
                pytest.fail(f"replica {self.index} exited ({status}):\n{self.log_text()}")
            if self.socket.exists():
                try:
                    with Client(str(self.socket), timeout=2) as c:
                        if c.list_keys():
                            return
                except SignetError:
                    pass
            if time.monotonic() > deadline:
                pytest.fail(f"replica {self.index} did not serve in 30 s:\n{self.log_text()}")
            time.sleep(0.05)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def records(self) -> int:
        """How many complete records its audit log holds (the genesis line included)."""
        try:
            return self.audit.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def balanced_client(replicas: List[Replica], certs: Dict[str, Path]) -> Client:
    target = "ipv4:" + ",".join(f"127.0.0.1:{r.port}" for r in replicas)
    return Client(
        target,
        root_ca=str(certs["ca"]),
        client_cert=str(certs["client_cert"]),
        client_key=str(certs["client_key"]),
        server_name="localhost",
        timeout=10,
        options=[
            ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
            # Reconnect to a replica that comes back within a second or two, not minutes.
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
        ],
    )


class Load:
    """Threads signing distinct messages through one client until stopped; each message is
    retried on `UNAVAILABLE` until it is signed, and any other error is kept."""

    def __init__(self, client: Client):
        self.client = client
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.signed: Dict[bytes, List[bytes]] = {}
        self.unavailable = 0
        self.other_errors: List[Tuple[bytes, str]] = []
        self.threads = [threading.Thread(target=self.run, args=(t,)) for t in range(THREADS)]

    def run(self, thread: int) -> None:
        n = 0
        while not self.stop.is_set():
            message = f"replica-failover {thread} {n}".encode()
            n += 1
            while True:
                try:
                    signature = self.client.sign("ed", message)
                except SignetError as error:
                    with self.lock:
                        if error.code == grpc.StatusCode.UNAVAILABLE:
                            self.unavailable += 1
                            continue
                        self.other_errors.append((message, f"{error.code}: {error}"))
                    break
                with self.lock:
                    self.signed.setdefault(message, []).append(signature)
                break

    def count(self) -> int:
        with self.lock:
            return len(self.signed)

    def wait_for(self, calls: int) -> None:
        deadline = time.monotonic() + 120
        while self.count() < calls:
            assert not self.other_errors, self.other_errors[:5]
            assert time.monotonic() < deadline, f"only {self.count()} of {calls} calls answered"
            time.sleep(0.02)


def test_round_robin_failover_under_sigkill() -> None:
    with tempfile.TemporaryDirectory(prefix="signet-replicas-") as tmp:
        token = Token(Path(tmp))
        certs = make_certificates(token.dir)
        token.write_config()
        token.run("token", "init", "--config", str(token.config), "--so-pin-file", "so-pin")
        token.keys("generate", "--type", "ed25519", "--id", "ed")
        replicas = [Replica(token, i) for i in range(REPLICAS)]
        try:
            for r in replicas:
                r.start()
            run_failover(replicas, certs)
        finally:
            for r in replicas:
                if r.process is not None and r.process.poll() is None:
                    r.stop()
        for r in replicas:
            out = subprocess.run(
                [token.bin, "audit", "verify", str(r.audit)],
                capture_output=True, cwd=token.dir, env=token.env, timeout=60,
            )
            assert out.returncode == 0, (
                f"audit verify on replica {r.index}'s log failed ({out.returncode}):\n"
                f"{out.stdout.decode(errors='replace')}{out.stderr.decode(errors='replace')}"
            )


def run_failover(replicas: List[Replica], certs: Dict[str, Path]) -> None:
    victim, survivors = replicas[0], replicas[1:]
    with balanced_client(replicas, certs) as client:
        public = Ed25519PublicKey.from_public_bytes(client.public_key("ed").raw)
        load = Load(client)
        for t in load.threads:
            t.start()
        try:
            load.wait_for(150)
            before = [r.records() for r in replicas]
            assert all(b > 1 for b in before), f"round_robin did not use every replica: {before}"
            assert victim.process is not None
            victim.process.send_signal(signal.SIGKILL)
            assert victim.process.wait(timeout=20) == -signal.SIGKILL
            at_kill = load.count()
            after_kill = [r.records() for r in survivors]
            load.wait_for(at_kill + 300)
            grown = [r.records() - a for r, a in zip(survivors, after_kill)]
            # Round robin over the two survivors: each served a fair share of the 300 calls.
            assert all(g >= 60 for g in grown), f"calls after the kill per survivor: {grown}"

            # The killed replica starts again on its log and is taken back into rotation.
            victim.start()
            back = victim.records()
            resumed = load.count()
            deadline = time.monotonic() + 60
            while victim.records() - back < 20:
                assert time.monotonic() < deadline, "the restarted replica got no calls"
                time.sleep(0.05)
            load.wait_for(resumed + 100)
        finally:
            load.stop.set()
            for t in load.threads:
                t.join(timeout=60)
        assert not load.other_errors, f"calls failed with other than UNAVAILABLE: {load.other_errors[:5]}"
        assert all(len(s) == 1 for s in load.signed.values()), "a message got two final answers"
        for message, (signature,) in load.signed.items():
            public.verify(signature, message)
        print(
            f"{len(load.signed)} messages signed and verified; {load.unavailable} calls ended "
            "in UNAVAILABLE and were retried by the caller"
        )


def health(replica: Replica) -> int:
    """`grpc.health.v1.Health/Check` for `signet.v1.Signer` on the replica's unix socket:
    1 SERVING, 2 NOT_SERVING (the messages are encoded by hand: grpcio-health-checking is not
    one of the client's dependencies)."""
    service = b"signet.v1.Signer"
    channel = grpc.insecure_channel(
        f"unix://{replica.socket}", options=[("grpc.default_authority", "localhost")]
    )
    try:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        answer: bytes = check(b"\x0a" + bytes([len(service)]) + service, timeout=5)
    finally:
        channel.close()
    # HealthCheckResponse { status = 1 }: one varint field, absent when UNKNOWN (0).
    return answer[1] if answer[:1] == b"\x08" else 0


def test_round_robin_leaves_out_a_replica_whose_token_is_gone() -> None:
    """One replica reaches the token through a symlink of its own; removing the link takes the
    token away from that replica only. It turns NOT_SERVING, round_robin sends it nothing while
    the others sign every call, and once the link is back it serves and gets calls again."""
    with tempfile.TemporaryDirectory(prefix="signet-replicas-") as tmp:
        token = Token(Path(tmp))
        certs = make_certificates(token.dir)
        token.write_config()
        token.run("token", "init", "--config", str(token.config), "--so-pin-file", "so-pin")
        token.keys("generate", "--type", "ed25519", "--id", "ed")
        link = token.dir / "tokens-of-replica2"
        link.symlink_to(token.dir / "tokens")
        conf = token.dir / "softhsm2-replica2.conf"
        conf.write_text(
            f"directories.tokendir = {link}\nobjectstore.backend = file\nlog.level = ERROR\n"
        )
        replicas = [Replica(token, i) for i in range(2)]
        replicas.append(Replica(token, 2, env=dict(token.env, SOFTHSM2_CONF=str(conf))))
        lone = replicas[2]
        try:
            for r in replicas:
                r.start()
            with balanced_client(replicas, certs) as client:
                public = Ed25519PublicKey.from_public_bytes(client.public_key("ed").raw)
                load = Load(client)
                for t in load.threads:
                    t.start()
                try:
                    load.wait_for(100)
                    assert lone.records() > 1, "round_robin did not use the third replica"
                    link.unlink()
                    deadline = time.monotonic() + 60
                    while health(lone) != 2:
                        assert time.monotonic() < deadline, "the replica stayed SERVING"
                        time.sleep(0.05)
                    # Calls already on their way when it turned NOT_SERVING may still reach it.
                    load.wait_for(load.count() + 100)
                    out_of_rotation = lone.records()
                    load.wait_for(load.count() + 200)
                    assert lone.records() == out_of_rotation, "calls reached the NOT_SERVING replica"

                    link.symlink_to(token.dir / "tokens")
                    deadline = time.monotonic() + 60
                    while health(lone) != 1:
                        assert time.monotonic() < deadline, f"no recovery:\n{lone.log_text()}"
                        time.sleep(0.05)
                    assert "re-established" in lone.log_text(), lone.log_text()
                    while lone.records() - out_of_rotation < 20:
                        assert time.monotonic() < deadline, "the recovered replica got no calls"
                        time.sleep(0.05)
                finally:
                    load.stop.set()
                    for t in load.threads:
                        t.join(timeout=60)
                assert not load.other_errors, f"other than UNAVAILABLE: {load.other_errors[:5]}"
                for message, signatures in load.signed.items():
                    assert len(signatures) == 1, "a message got two final answers"
                    public.verify(signatures[0], message)
        finally:
            for r in replicas:
                if r.process is not None and r.process.poll() is None:
                    assert r.stop() == 0, r.log_text()
