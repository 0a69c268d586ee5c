#!/usr/bin/env bash
# Prints an agent configuration for benchmarks on the development token (softhsm/setup.sh):
# one unix socket at $1, no audit log, and the calling user allowed to sign with every key.
#   scripts/bench-agent-config.sh SOCKET > agent.toml
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
