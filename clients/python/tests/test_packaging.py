"""The package as users get it: installed (never imported from the checkout), complete (py.typed,
the .pyi stubs), built without writing into the checkout, on the protobuf major ./test.sh asked
for ($SIGNET_EXPECT_PROTOBUF_MAJOR: 6 for the checkout install, 7 for the wheel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import google.protobuf

import signet_client

PACKAGE = Path(__file__).resolve().parents[1]
SOURCE = PACKAGE / "src/signet_client"


def tree(root: Path) -> Dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def listing(root: Path) -> list:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if "__pycache__" not in p.parts
    )


def test_the_tests_run_the_installed_package_and_it_is_complete():
    installed = Path(signet_client.__file__).resolve().parent
    assert SOURCE.resolve() != installed, "the tests must not import the checkout's src/"
    assert "site-packages" in installed.parts
    files = tree(installed)
    assert "py.typed" in files and "_proto/signet/v1/signer_pb2.pyi" in files
    assert files == tree(SOURCE), "the installed package differs from src/signet_client"


def test_the_protobuf_runtime_is_the_one_asked_for():
    major = int(google.protobuf.__version__.split(".")[0])
    assert major in (6, 7), google.protobuf.__version__
    expected = os.environ.get("SIGNET_EXPECT_PROTOBUF_MAJOR")
    if expected is not None:
        assert major == int(expected), google.protobuf.__version__
    if major == 7:
        # The packages that need protobuf 7 load beside the client's stubs in one process.
        import grpc_health.v1.health_pb2 as health
        import grpc_reflection.v1alpha.reflection  # noqa: F401

        import signet_client._proto.signet.v1.signer_pb2 as pb

        assert health.HealthCheckRequest(service="signet.v1.Signer").service
        assert pb.SignRequest(key_id="k").SerializeToString() == b"\n\x01k"


def test_installing_from_the_checkout_writes_nothing_into_it(tmp_path):
    """`pip install ./clients/python` (here without build isolation, so offline: the backend is
    in the test environment) leaves the checkout's files exactly as they were."""
    before = listing(PACKAGE)
    for command in (
        ["install", "--no-deps", "--target", str(tmp_path / "site")],
        ["wheel", "--no-deps", "--wheel-dir", str(tmp_path / "wheels")],
    ):
        subprocess.run(
            [sys.executable, "-m", "pip", *command, "--no-build-isolation", "--quiet",
             "--disable-pip-version-check", str(PACKAGE)],
            check=True,
        )
    assert listing(PACKAGE) == before
    assert tree(tmp_path / "site/signet_client") == tree(SOURCE)
    assert len(list((tmp_path / "wheels").glob("signet_client-*.whl"))) == 1
