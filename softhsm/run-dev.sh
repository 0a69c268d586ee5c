#!/usr/bin/env bash
# Sets up the development token (softhsm/setup.sh) and runs the agent on it, on loopback:
# unix:softhsm/state/signet.sock and 127.0.0.1:50051. Stop it with Ctrl-C.
# The token is SoftHSM2 unless --kryoptic is given: then it is a Kryoptic token (the module is
# built once by scripts/kryoptic.sh, a few minutes) in softhsm/state/kryoptic/, and the socket is
# unix:softhsm/state/kryoptic/signet.sock.
set -euo pipefail
cd "$(dirname "$0")/.."
softhsm/setup.sh "$@"
state=$PWD/softhsm/state
[ "${1:-}" = "--kryoptic" ] && state=$state/kryoptic
echo "Signet listening on unix:$state/signet.sock and 127.0.0.1:50051"
echo "Demo key ids: demo-ed25519 (Ed25519), demo-p256 (ECDSA P-256), demo-hmac (HMAC-SHA256)"
[ "${1:-}" = "--kryoptic" ] && echo "               demo-mldsa (ML-DSA-65, Kryoptic only)"
SOFTHSM2_CONF=$state/softhsm2.conf KRYOPTIC_CONF=$state/kryoptic.sql \
  exec target/release/signet serve --config "$state/signet.toml"
