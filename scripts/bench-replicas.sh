#!/usr/bin/env bash
# Replica scaling: 1, 2 and 3 agents on one token, driven through gRPC's own client-side
# round_robin (grpcio, with the health-checked service config of the README's "Several replicas
# behind a load balancer"), each replica with its own TLS listener and its own audit log
# (verify-after-sign on, as always). Prints signatures per second for each replica count,
# measured in alternating rounds in one run, and the ratio to one replica.
#
#   scripts/bench-replicas.sh [seconds-per-run] [rounds] [key-type]
#
# SIGNET_BENCH_MODULE: the PKCS#11 module the token and the agents use (default SoftHSM2; the
#   slow-HSM pass-through module, configured by its own environment, is the intended one: with
#   plain SoftHSM2 on a small machine the replicas share the same CPU cores, so they cannot add
#   up). SIGNET_BENCH_PROCS / SIGNET_BENCH_THREADS: load generator processes and threads in
#   each (default 4 x 16). SIGNET_BIN: the agent binary (default target/release/signet, built).
#
# Sign calls go to key `bench` (ed25519 by default; p256 also works). The token is made in a
# temporary directory by the Python tests' helpers (clients/python/tests/conftest.py).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-3}
rounds=${2:-3}
key_type=${3:-ed25519}
if [ -z "${SIGNET_BIN:-}" ]; then
  cargo build --release --bin signet >&2
  export SIGNET_BIN=$PWD/target/release/signet
fi
python=$(scripts/python-env.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/driver.py" <<'EOF'
"""Starts three replicas on one token and drives 1, 2, 3 of them in alternating rounds."""
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.join(os.environ["SIGNET_REPO"], "clients/python/tests"))

from conftest import Token, make_certificates  # noqa: E402
from test_replicas import Replica, balanced_client  # noqa: E402

PROCS = int(os.environ.get("SIGNET_BENCH_PROCS", "4"))
THREADS = int(os.environ.get("SIGNET_BENCH_THREADS", "16"))


def worker(ports, certs, commands, results):
    """One process: a round_robin client per replica count, threads signing through one."""
    from types import SimpleNamespace

    from signet_client import SignetError

    replicas = [SimpleNamespace(port=port) for port in ports]

    clients = {k: balanced_client(replicas[:k], certs) for k in range(1, len(replicas) + 1)}
    for client in clients.values():
        for _ in range(3 * len(replicas)):
            client.sign("bench", b"warm-up")
    results.put(("ready", 0, 0))
    while True:
        command = commands.get()
        if command is None:
            return
        k, start, end = command
        client = clients[k]
        counts = [0] * THREADS
        errors = [0] * THREADS

        def run(i):
            message = f"bench-replicas {os.getpid()} {i}".encode()
            while time.time() < start:
                time.sleep(0.001)
            while time.time() < end:
                try:
                    client.sign("bench", message)
                    counts[i] += 1
                except SignetError:
                    errors[i] += 1

        threads = [threading.Thread(target=run, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results.put((k, sum(counts), sum(errors)))


def main():
    duration, rounds, key_type = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    with tempfile.TemporaryDirectory(prefix="signet-bench-replicas-") as tmp:
        token = Token(Path(tmp))
        module = os.environ.get("SIGNET_BENCH_MODULE")
        if module:
            token.module = module
        certs = make_certificates(token.dir)
        token.write_config()
        token.run("token", "init", "--config", str(token.config), "--so-pin-file", "so-pin")
        token.keys("generate", "--type", key_type, "--id", "bench")
        replicas = [Replica(token, i) for i in range(3)]
        ctx = mp.get_context("spawn")
        commands = [ctx.Queue() for _ in range(PROCS)]
        results = ctx.Queue()
        procs = []
        try:
            for r in replicas:
                r.start()
            plain = [(r.index, r.port) for r in replicas]
            procs = [
                ctx.Process(target=worker, args=([r.port for r in replicas], certs, q, results), daemon=True)
                for q in commands
            ]
            for p in procs:
                p.start()
            for _ in procs:
                results.get(timeout=120)
            print(f"module {token.module}, key {key_type}, {PROCS} x {THREADS} callers, "
                  f"{duration:g} s per run, replicas {plain}")
            rates = {k: [] for k in (1, 2, 3)}
            for rnd in range(rounds):
                for k in (1, 2, 3):
                    start = time.time() + 0.5
                    for q in commands:
                        q.put((k, start, start + duration))
                    total = errors = 0
                    for _ in procs:
                        _, n, e = results.get(timeout=duration + 120)
                        total += n
                        errors += e
                    rate = total / duration
                    rates[k].append(rate)
                    print(f"round {rnd + 1}: {k} replica(s): {rate:8.0f} signatures/s"
                          + (f" ({errors} errors)" if errors else ""), flush=True)
            base = sorted(rates[1])[len(rates[1]) // 2]
            for k in (1, 2, 3):
                median = sorted(rates[k])[len(rates[k]) // 2]
                print(f"{k} replica(s): median {median:8.0f} signatures/s, "
                      f"{median / base:.2f}x one replica")
        finally:
            for q in commands:
                q.put(None)
            for p in procs:
                p.join(timeout=30)
            for r in replicas:
                if r.process is not None and r.process.poll() is None:
                    r.stop()


if __name__ == "__main__":
    main()
EOF
SIGNET_REPO=$PWD "$python" "$work/driver.py" "$duration" "$rounds" "$key_type"
