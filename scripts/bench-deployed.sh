#!/usr/bin/env bash
# The agent as deployed: three agents on the development token (softhsm/setup.sh), one without
# an audit log, one with fsync = "always", one with fsync = "interval", alternated with the
# raw module in one `signet bench compare` run per key type. Prints, per key type, each
# agent's median ratio to the raw module and to the agent without an audit log (the issue's
# goal: >= 0.9x with the audit log on, at 8 or more calls in flight).
#
#   scripts/bench-deployed.sh [seconds-per-run] [rounds] [extra `bench compare` options...]
#   scripts/bench-deployed.sh 3 3 --in-flight 1 --connections 1   # latency at one call
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-3}
rounds=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
softhsm/setup.sh >/dev/null 2>&1
export SOFTHSM2_CONF=$PWD/softhsm/state/softhsm2.conf
signet=target/release/signet
[ -x "$signet" ] || { echo "build it first: cargo build --release" >&2; exit 1; }
# The audit logs go where an operator's would: on the disk (not a tmpfs), so fsync costs what
# it costs there.
work=$(mktemp -d "$PWD/target/bench-deployed.XXXXXX")
pids=()
cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$work"
  true
}
trap cleanup EXIT

scripts/bench-agent-config.sh "$work/off.sock" > "$work/off.toml"
scripts/bench-agent-config.sh "$work/always.sock" always "$work/always.jsonl" > "$work/always.toml"
scripts/bench-agent-config.sh "$work/interval.sock" interval "$work/interval.jsonl" \
  > "$work/interval.toml"
# One after the other: SoftHSM2 processes opening its file store at the same moment can
# catch each other mid-write.
for agent in off always interval; do
  SIGNET_LOG=warn "$signet" serve --config "$work/$agent.toml" 2>"$work/$agent.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -S "$work/$agent.sock" ] && break; sleep 0.1; done
  [ -S "$work/$agent.sock" ] || { cat "$work/$agent.log" >&2; exit 1; }
done

for spec in "Ed25519 Sign:demo-ed25519:sign" "P-256 Sign:demo-p256:sign" \
            "HMAC Fingerprint:demo-hmac:fingerprint"; do
  IFS=: read -r name key rpc <<<"$spec"
  echo "== $name =="
  "$signet" bench compare --config "$work/off.toml" --key "$key" --rpc "$rpc" \
    --agent "audit-off=$work/off.sock" --agent "fsync-always=$work/always.sock" \
    --agent "fsync-interval=$work/interval.sock" \
    --duration "$duration" --rounds "$rounds" "$@" | grep -E '^(round|median)'
done
for agent in always interval; do
  "$signet" audit verify "$work/$agent.jsonl" >/dev/null \
    || { echo "audit verify failed on the $agent log" >&2; exit 1; }
done
echo "audit verify: both logs intact"
