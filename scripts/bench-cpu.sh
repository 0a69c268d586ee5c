#!/usr/bin/env bash
# Where the CPU goes, per operation, on the development token: the agent process, the load
# generator, and the raw module in-process (`signet bench raw`), from the kernel's accounting
# (/proc/PID/stat utime+stime and the load generator's own rusage). On a machine whose cores
# are shared by all three, the raw/agent throughput ratio cannot exceed
#   raw CPU per op / (agent CPU per op + load generator CPU per op),
# which this prints as "CPU ceiling".
#
#   scripts/bench-cpu.sh [seconds-per-run]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-4}
softhsm/setup.sh >/dev/null 2>&1
state=$PWD/softhsm/state
export SOFTHSM2_CONF=$state/softhsm2.conf
signet=target/release/signet
work=$(mktemp -d)
trap 'set +e; kill "${agent:-}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; true' EXIT

scripts/bench-agent-config.sh "$work/agent.sock" > "$work/agent.toml"

ticks=$(getconf CLK_TCK)
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# ops and seconds of user+system CPU of a `signet bench` run: "OPS CPU_SECONDS"
measure() {
  local out
  out=$( { /usr/bin/time -f "cpu %U %S" "$signet" bench "$@" --duration "$duration"; } 2>&1 )
  local ops cpu
  ops=$(echo "$out" | grep -o '([0-9]* ok' | grep -o '[0-9]*' | head -n1)
  cpu=$(echo "$out" | awk '/^cpu /{print $2 + $3}')
  echo "$ops $cpu"
}

printf '%-22s %10s %14s %14s %12s %10s\n' operation "agent op/s" "agent us/op" "loadgen us/op" "raw us/op" "ceiling"
for spec in "Ed25519 Sign:demo-ed25519:sign" "P-256 Sign:demo-p256:sign" \
            "HMAC Fingerprint:demo-hmac:fingerprint" "GetPublicKey (no HSM):demo-ed25519:public-key"; do
  IFS=: read -r name key rpc <<<"$spec"
  SIGNET_LOG=warn "$signet" serve --config "$work/agent.toml" 2>"$work/agent.log" &
  agent=$!
  for _ in $(seq 100); do [ -S "$work/agent.sock" ] && break; sleep 0.05; done
  before=$(cpu_of "$agent")
  read -r ops client_cpu <<<"$(measure agent --socket "$work/agent.sock" --key "$key" --rpc "$rpc")"
  after=$(cpu_of "$agent")
  kill "$agent"; wait "$agent" 2>/dev/null || true
  raw="-"
  if [ "$rpc" != public-key ]; then
    read -r raw_ops raw_cpu <<<"$(measure raw --config "$work/agent.toml" --key "$key")"
    raw=$(awk -v c="$raw_cpu" -v n="$raw_ops" 'BEGIN { printf "%.0f", c * 1e6 / n }')
  fi
  awk -v name="$name" -v ops="$ops" -v d="$duration" -v a=$((after - before)) -v t="$ticks" \
      -v c="$client_cpu" -v raw="$raw" 'BEGIN {
    agent = a / t * 1e6 / ops; client = c * 1e6 / ops
    ceiling = (raw == "-") ? "-" : sprintf("%.2fx", raw / (agent + client))
    printf "%-22s %10.0f %14.0f %14.0f %12s %10s\n", name, ops / d, agent, client, raw, ceiling
  }'
done
