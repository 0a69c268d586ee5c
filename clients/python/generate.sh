#!/usr/bin/env bash
# Regenerates the gRPC stubs in src/signet_client/_proto/ from proto/signet/v1/signer.proto
# with grpcio-tools (the version pinned in tests/python/requirements.txt).
#
# Usage: clients/python/generate.sh [OUTPUT_DIR]   (default: src/signet_client/_proto)
# The interpreter is $PYTHON (default: python3); it must have grpcio-tools installed.
#
# protoc writes signet/v1/signer_pb2.py (and .pyi) and signet/v1/signer_pb2_grpc.py, and the
# gRPC module imports the messages with the absolute `from signet.v1 import signer_pb2`. That
# would need a top-level `signet` package, so the one import line is rewritten to the relative
# `from . import signer_pb2`; the script fails if that line is not found exactly once. The
# descriptor keeps its canonical name signet/v1/signer.proto.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="${1:-$here/src/signet_client/_proto}"
python="${PYTHON:-python3}"
mkdir -p "$out"
rm -rf "$out/signet"
"$python" -m grpc_tools.protoc -I "$repo/proto" \
  --python_out="$out" --pyi_out="$out" --grpc_python_out="$out" \
  "$repo/proto/signet/v1/signer.proto"
grpc_module="$out/signet/v1/signer_pb2_grpc.py"
absolute='^from signet\.v1 import signer_pb2 as '
if [ "$(grep -c "$absolute" "$grpc_module")" != 1 ]; then
  echo "generate.sh: expected one 'from signet.v1 import signer_pb2' line in $grpc_module" >&2
  exit 1
fi
sed -i "s/$absolute/from . import signer_pb2 as /" "$grpc_module"
for package in "$out" "$out/signet" "$out/signet/v1"; do
  [ -f "$package/__init__.py" ] || : > "$package/__init__.py"
done
if [ ! -s "$out/__init__.py" ]; then
  printf '"""Generated gRPC stubs (clients/python/generate.sh); do not edit."""\n' > "$out/__init__.py"
fi
