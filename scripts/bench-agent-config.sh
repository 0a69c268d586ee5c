#!/usr/bin/env bash
# Prints an agent configuration for benchmarks on the development token (softhsm/setup.sh):
# one unix socket at $1, the calling user allowed to sign with every key, and no audit log,
# or, with $2 = always or interval, an audit log at $3 synced that way.
#   scripts/bench-agent-config.sh SOCKET [always|interval AUDIT_PATH] > agent.toml
set -euo pipefail
cd "$(dirname "$0")/.."
state=$PWD/softhsm/state
module=$(sed -n 's/^module = "\(.*\)"$/\1/p' "$state/signet.toml" | head -n1)
cat <<EOT
[[listen]]
type = "unix"
path = "$1"
mode = "0600"

[backend]
type = "pkcs11"
module = "$module"
token = { label = "signet-dev" }
pin = { file = "$state/pin" }

[[clients]]
name = "bench"
uid = $(id -u)
keys = ["*"]
operations = ["sign", "fingerprint", "verify"]
EOT
if [ -n "${2:-}" ]; then
  cat <<EOT

[audit]
path = "$3"
fsync = "$2"
EOT
fi
