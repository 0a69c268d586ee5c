"""The committed stubs are what generate.sh makes from proto/signet/v1/signer.proto today, so the
proto and the stubs never drift apart (run clients/python/generate.sh after changing the proto).

The stubs are regenerated with grpcio-tools, which the protobuf-7 environment of ./test.sh cannot
hold (grpcio-tools 1.76.0 needs protobuf < 7): there $SIGNET_GENERATE_PYTHON names the first
environment's interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parent
COMMITTED = PACKAGE / "src/signet_client/_proto"


def files(root: Path) -> dict:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_committed_stubs_match_the_proto(tmp_path):
    out = tmp_path / "_proto"
    subprocess.run(
        ["bash", str(PACKAGE / "generate.sh"), str(out)],
        check=True,
        env=dict(os.environ, PYTHON=os.environ.get("SIGNET_GENERATE_PYTHON") or sys.executable),
    )
    fresh, committed = files(out), files(COMMITTED)
    assert sorted(fresh) == sorted(committed)
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"regenerate with clients/python/generate.sh: {stale} differ from the proto"


def test_the_installed_package_uses_these_stubs():
    import signet_client._proto.signet.v1.signer_pb2 as pb

    assert pb.DESCRIPTOR.name == "signet/v1/signer.proto"
    assert pb.DESCRIPTOR.package == "signet.v1"
