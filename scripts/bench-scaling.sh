#!/usr/bin/env bash
# How the agent's throughput scales with HSM sessions against a slow HSM (issue 17, item 4).
# SoftHSM2 sits behind the pass-through crates/pkcs11-slow, which sleeps LATENCY per C_Sign and
# lets at most PARALLEL signatures run at once. For each device parallelism (32: a network HSM;
# 4: a small appliance) and each backend.sessions in 1 2 4 8 16 32, the release agent runs with
# the audit log on (fsync = "always", as deployed) and `signet bench agent` drives it with
# max(16, 2 x sessions) Sign calls in flight over 4 connections. Each point prints the
# measured throughput, the model min(sessions, parallelism) / latency, their ratio, the agent's
# CPU (of one core, from /proc/PID/stat) and the machine's load average. First it measures the
# device alone (`signet bench raw` through the pass-through, one session).
# The key is HMAC-SHA256 by default (KEY_TYPE=ed25519 or p256 for another): the model counts
# only the device's latency, so SoftHSM2's own CPU per signature (about 20 us for HMAC, 120 us
# for Ed25519 on the reference machine) must stay small next to it and within the cores.
# Writes docs/bench/scaling.csv and plots it as docs/bench/scaling.png (matplotlib, in a
# virtual environment under target/ made from PyPI on first use).
#
#   scripts/bench-scaling.sh [seconds-per-point] [latency-us]
# Environment: SIGNET_BIN (a signet binary instead of building the release one), KEY_TYPE
# (hmac-sha256), PARALLELS="32 4" and SESSIONS="1 2 4 8 16 32" to choose the points, NO_PLOT=1
# to skip the plot.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration=${1:-4}
latency_us=${2:-2000}
parallels=${PARALLELS:-32 4}
sessions_list=${SESSIONS:-1 2 4 8 16 32}
key_type=${KEY_TYPE:-hmac-sha256}
out_dir=$root/docs/bench
csv=$out_dir/scaling.csv

find_module() {
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
           /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/lib64/pkcs11/libsofthsm2.so \
           /usr/local/lib/softhsm/libsofthsm2.so; do
    [ -f "$m" ] && { echo "$m"; return 0; }
  done
  return 1
}
if ! softhsm=$(find_module); then
  scripts/ensure-packages.sh softhsm2
  softhsm=$(find_module)
fi

target=${CARGO_TARGET_DIR:-$root/target}
if [ -z "${SIGNET_BIN:-}" ]; then
  echo "Building the agent (release) and the pass-through." >&2
  cargo build --quiet --release --bin signet
fi
# The same build the tests use (tests/common/slow.rs): a target directory of its own.
cargo build --quiet -p pkcs11-slow --target-dir "$target/pkcs11-slow"
signet=${SIGNET_BIN:-$target/release/signet}
slow=$target/pkcs11-slow/debug/libpkcs11_slow.so

work=$(mktemp -d)
trap 'set +e; [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; true' EXIT

# A token of its own, with one key, made straight on SoftHSM2.
mkdir "$work/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$work/tokens" > "$work/softhsm2.conf"
export SOFTHSM2_CONF=$work/softhsm2.conf
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$work/pin"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$work/so-pin"
config() { # MODULE SESSIONS
  cat <<EOT
[[listen]]
type = "unix"
path = "$work/agent.sock"
mode = "0600"

[[clients]]
name = "bench"
uid = $(id -u)
keys = ["*"]
operations = ["sign", "fingerprint", "verify"]

[audit]
path = "$work/audit-$2.jsonl"
fsync = "always"

[backend]
type = "pkcs11"
module = "$1"
token = { label = "bench-scaling" }
pin = { file = "$work/pin" }
sessions = $2
EOT
}
config "$softhsm" 1 > "$work/setup.toml"
"$signet" token init --config "$work/setup.toml" --so-pin-file "$work/so-pin" >/dev/null
if [ "$key_type" = hmac-sha256 ]; then
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n' |
    "$signet" keys import-hmac --config "$work/setup.toml" --id bench-key >/dev/null 2>&1
else
  "$signet" keys generate --config "$work/setup.toml" --type "$key_type" --id bench-key >/dev/null
fi

export SLOW_P11_MODULE=$softhsm SLOW_P11_LATENCY_US=$latency_us
# The device alone, no agent: one session signing straight through the pass-through in this
# process (`signet bench raw`). Its rate against 1/latency is what sleeping costs on this machine
# (timer slack and wake-up delay) plus the module's own work: the ceiling of a one-session point.
config "$slow" 1 > "$work/raw.toml"
raw=$(SLOW_P11_PARALLEL=1 "$signet" bench raw --config "$work/raw.toml" --key bench-key --threads 1 \
        --duration "$duration" 2>/dev/null | sed -n 's/.*: \([0-9]*\) ops\/s.*/\1/p')
awk -v r="$raw" -v l="$latency_us" 'BEGIN { m = 1e6 / l; printf "the device alone, one session (signet bench raw): %d/s, %.3f of 1/latency = %d/s\n", r, r / m, m }'

echo "key_type,parallelism,sessions,latency_us,in_flight,ops_per_s,model_ops_per_s,ratio,p50_us,p99_us,agent_cpu_pct,loadavg,errors" > "$csv"
printf '%-11s %8s %9s %10s %10s %7s %8s %8s %10s %7s\n' parallelism sessions in-flight "ops/s" model ratio \
  "p50 us" "p99 us" "agent CPU" load
for parallel in $parallels; do
  export SLOW_P11_PARALLEL=$parallel
  for sessions in $sessions_list; do
    config "$slow" "$sessions" > "$work/agent.toml"
    rm -f "$work/agent.sock"
    SIGNET_LOG=warn "$signet" serve --config "$work/agent.toml" 2>"$work/agent.log" &
    agent=$!
    for _ in $(seq 200); do [ -S "$work/agent.sock" ] && break; sleep 0.05; done
    in_flight=$(( sessions * 2 > 16 ? sessions * 2 : 16 ))
    cpu_before=$(awk '{print $14 + $15}' "/proc/$agent/stat")
    line=$("$signet" bench agent --socket "$work/agent.sock" --key bench-key --rpc sign \
             --connections 4 --in-flight "$in_flight" --duration "$duration" 2>/dev/null || true)
    cpu_after=$(awk '{print $14 + $15}' "/proc/$agent/stat")
    load=$(cut -d' ' -f1 /proc/loadavg)
    kill "$agent"; wait "$agent" 2>/dev/null || true
    agent=
    "$signet" audit verify "$work/audit-$sessions.jsonl" >/dev/null 2>&1 ||
      echo "warning: audit verify failed on the log of sessions=$sessions" >&2
    rm -f "$work"/audit-"$sessions".jsonl*
    # "...: 1234 ops/s (...), latency p50 N us, p99 N us, ...; errors: none; ..."
    ops=$(sed -n 's/.*: \([0-9]*\) ops\/s.*/\1/p' <<<"$line")
    p50=$(sed -n 's/.*p50 \([0-9]*\) us.*/\1/p' <<<"$line")
    p99=$(sed -n 's/.*p99 \([0-9]*\) us.*/\1/p' <<<"$line")
    errors=$(sed -n 's/.*errors: \([^;]*\);.*/\1/p' <<<"$line")
    if [ -z "$ops" ]; then
      echo "the bench run failed for parallelism=$parallel sessions=$sessions: $line" >&2
      tail -5 "$work/agent.log" >&2
      exit 1
    fi
    # The agent's CPU over the run, in % of one core (the run lasts about $duration s).
    read -r model ratio cpu <<<"$(awk -v s="$sessions" -v p="$parallel" -v l="$latency_us" -v o="$ops" \
      -v c=$((cpu_after - cpu_before)) -v t="$(getconf CLK_TCK)" -v d="$duration" \
      'BEGIN { m = (s < p ? s : p) * 1e6 / l; printf "%.0f %.3f %.0f\n", m, o / m, c / t / d * 100 }')"
    echo "$key_type,$parallel,$sessions,$latency_us,$in_flight,$ops,$model,$ratio,$p50,$p99,$cpu,$load,$errors" >> "$csv"
    printf '%-11s %8s %9s %10s %10s %7s %8s %8s %9s%% %7s\n' "$parallel" "$sessions" "$in_flight" \
      "$ops" "$model" "$ratio" "$p50" "$p99" "$cpu" "$load"
  done
done
echo "wrote $csv" >&2

[ -n "${NO_PLOT:-}" ] && exit 0
venv=$target/bench-plot-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'matplotlib==3.9.*'
fi
"$venv/bin/python" scripts/plot-scaling.py "$csv" "$out_dir/scaling.png"
echo "wrote $out_dir/scaling.png" >&2
