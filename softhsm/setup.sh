#!/usr/bin/env bash
# Prepares a development SoftHSM2 token for Signet, idempotently:
#   - installs SoftHSM2 when it is missing (Debian/Ubuntu, needs root or sudo),
#   - builds signet,
#   - creates softhsm/state/ (git-ignored) with a token "signet-dev", random PINs in 0600 files,
#     and the demo keys demo-ed25519, demo-p256 and demo-hmac (generated inside the token).
# Running it again changes nothing that exists. Remove softhsm/state/ to start over.
# With --kryoptic, the token is a Kryoptic one instead (module built by scripts/kryoptic.sh, a
# sqlite store named by KRYOPTIC_CONF), in softhsm/state/kryoptic/ with the same keys and an
# ML-DSA-65 key, demo-mldsa (SoftHSM2 2.6.1 has no ML-DSA).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/softhsm/state
kind=softhsm
if [ "${1:-}" = "--kryoptic" ]; then
  kind=kryoptic
  state=$root/softhsm/state/kryoptic
elif [ $# -gt 0 ]; then
  echo "usage: $0 [--kryoptic]" >&2
  exit 2
fi

find_module() {
  for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
           /usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
    [ -f "$m" ] && { echo "$m"; return 0; }
  done
  return 1
}

if [ "$kind" = kryoptic ]; then
  module=$(scripts/kryoptic.sh)
elif ! module=$(find_module); then
  scripts/ensure-packages.sh softhsm2
  module=$(find_module) || { echo "SoftHSM2 installation failed: no libsofthsm2.so found" >&2; exit 1; }
fi

echo "Building the agent (release; the first build takes several minutes)." >&2
cargo build --release
signet=$root/target/release/signet

mkdir -p "$state"
[ "$kind" = softhsm ] && mkdir -p "$state/tokens"
chmod 700 "$state"
umask 077
for f in pin so-pin; do
  # 32 hex characters from the kernel's CSPRNG; written once, never printed.
  [ -s "$state/$f" ] || od -An -N16 -tx1 /dev/urandom | tr -d ' \n' > "$state/$f"
done
[ "$kind" = softhsm ] && sed "s|@TOKENDIR@|$state/tokens|" softhsm/softhsm2.conf.template > "$state/softhsm2.conf"
sed -e "s|@MODULE@|$module|" -e "s|@UID@|$(id -u)|" softhsm/signet.toml.template > "$state/signet.toml"
export SOFTHSM2_CONF=$state/softhsm2.conf
# Kryoptic: a KRYOPTIC_CONF ending in .sql is the whole configuration, one slot on that store.
export KRYOPTIC_CONF=$state/kryoptic.sql

"$signet" token init --config "$state/signet.toml" --so-pin-file "$state/so-pin" >/dev/null
demo_keys=(ed25519:demo-ed25519 p256:demo-p256 hmac-sha256:demo-hmac)
[ "$kind" = kryoptic ] && demo_keys+=(ml-dsa-65:demo-mldsa)
for key in "${demo_keys[@]}"; do
  "$signet" keys generate --config "$state/signet.toml" --type "${key%%:*}" --id "${key#*:}" --exists-ok >/dev/null
done
echo "$kind token 'signet-dev' ready in $state (demo keys: ${demo_keys[*]#*:})"
