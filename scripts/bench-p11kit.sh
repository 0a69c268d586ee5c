#!/usr/bin/env bash
# Compares Signet with a PKCS#11 remoting peer, end to end, on the development token:
# `p11-kit server` exports the SoftHSM2 token over a unix socket, and `signet bench compare`
# alternates runs of the agent (over its unix socket) with raw runs through p11-kit-client.so
# (the same harness, threads and key handles as `bench raw`, only the module differs).
# The printed ratio is agent / p11-kit peer; the issue's target is at least 1.5x on P-256.
#
#   scripts/bench-p11kit.sh [seconds-per-run] [rounds]
#
# Installs p11-kit when missing (Debian/Ubuntu). Uses softhsm/setup.sh's token and demo keys.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-2}
rounds=${2:-3}
scripts/ensure-packages.sh p11-kit p11-kit-modules
softhsm/setup.sh >/dev/null 2>&1
state=$PWD/softhsm/state
export SOFTHSM2_CONF=$state/softhsm2.conf
client=$(dpkg -L p11-kit-modules | grep '/p11-kit-client.so$' | head -n1)
softhsm=$(sed -n 's/^module = "\(.*\)"$/\1/p' "$state/signet.toml" | head -n1)
work=$(mktemp -d)
cleanup() {
  set +e
  [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
  true
}
trap cleanup EXIT

# The agent on its own socket, without the audit log (the peer has none either).
scripts/bench-agent-config.sh "$work/agent.sock" > "$work/agent.toml"
target/release/signet serve --config "$work/agent.toml" 2>"$work/agent.log" &
agent=$!

# The peer: p11-kit server in front of the same module and token.
p11-kit server --foreground --provider "$softhsm" --name "$work/p11.sock" \
  "pkcs11:token=signet-dev" >"$work/server.env" 2>"$work/server.log" &
server=$!
export P11_KIT_SERVER_ADDRESS="unix:path=$work/p11.sock"
sed "s|^module = \".*\"$|module = \"$client\"|" "$work/agent.toml" > "$work/peer.toml"

for _ in $(seq 100); do
  [ -S "$work/agent.sock" ] && [ -S "$work/p11.sock" ] && break
  sleep 0.1
done
[ -S "$work/agent.sock" ] || { cat "$work/agent.log" >&2; exit 1; }
[ -S "$work/p11.sock" ] || { cat "$work/server.log" >&2; exit 1; }

run() {
  echo "== $1 =="
  target/release/signet bench compare --config "$work/peer.toml" --socket "$work/agent.sock" \
    --duration "$duration" --rounds "$rounds" "${@:2}" | tail -n 2
}
run "ECDSA P-256 Sign, agent vs p11-kit peer" --key demo-p256
run "HMAC Fingerprint, agent vs p11-kit peer (HMAC over the 64-byte message)" --key demo-hmac --rpc fingerprint
# Ed25519 is not compared: p11-kit 0.24's RPC protocol does not carry CKM_EDDSA (the peer
# answers CKR_MECHANISM_INVALID), so the peer cannot sign with an Ed25519 key at all.
