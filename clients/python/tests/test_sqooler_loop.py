"""sqooler 0.9.0's own spooler loop (`update_backends`, `main`) on its local storage provider,
signing through the agent with `signet_client.sqooler`: no private key in the environment, on disk
or in the spooler. Every signed file is checked with sqooler's own verification and with
`cryptography`'s Ed25519 against the agent's public key."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel
from sqooler.schemes import ExperimentDict, ExperimentalInputDict, LocalLoginInformation
from sqooler.security import JWK, JWSDict, create_jwk_pair
from sqooler.storage_providers.local import LocalProviderExtended
from sqooler.utils import main, update_backends

import signet_client.sqooler as signet_sqooler
from conftest import SQOOLER_KID
from signet_client import Client
from signet_client.sqooler import SignetJWK, SignetSpooler, SqoolerVersionError

NAME = "signetloop"


class MeasureInstruction(BaseModel):
    name: str
    wires: List[int]
    params: List[float]


class DeviceConfig(BaseModel):
    instructions: List[Any]
    shots: int
    num_wires: int
    wire_order: str
    seed: Any = None


def gen_circuit(exp_name: str, info: ExperimentalInputDict) -> ExperimentDict:
    return ExperimentDict(
        header={"name": exp_name}, shots=info.shots, success=True,
        data={"memory": ["1 0"] * info.shots},
    )


def make_spooler() -> SignetSpooler:
    spooler = SignetSpooler(
        ins_schema_dict={"measure": MeasureInstruction},
        device_config=DeviceConfig,
        n_wires=2,
        description="a spooler whose key stays in the HSM",
        sign=True,
    )
    spooler.gen_circuit = gen_circuit
    return spooler


JOB = {
    "experiment_0": {
        "instructions": [["measure", [0], []], ["measure", [1], []]],
        "num_wires": 2,
        "shots": 3,
        "wire_order": "interleaved",
    }
}


def verify_ed25519(public: bytes, jws: Dict[str, Any]) -> None:
    """An independent check of a stored JWS (cryptography, not sqooler)."""
    header = base64.urlsafe_b64encode(
        json.dumps(jws["header"], separators=(",", ":"), ensure_ascii=False).encode()
    )
    payload = base64.urlsafe_b64encode(json.dumps(jws["payload"]).encode())
    Ed25519PublicKey.from_public_bytes(public).verify(
        base64.urlsafe_b64decode(jws["signature"]), header + b"." + payload
    )


def run_loop(client: Client, tmp_path: Path, key_id: str = SQOOLER_KID):
    storage = LocalProviderExtended(LocalLoginInformation(base_path=str(tmp_path)), "local")
    spooler = make_spooler()
    spooler.sign_with_signet(client, key_id)
    update_backends(storage, {NAME: spooler})
    job_id = storage.upload_job(JOB, NAME, "alice")
    storage.upload_status(NAME, "alice", job_id)
    main(storage, {NAME: spooler}, num_iter=2)
    return storage, spooler, job_id


@pytest.fixture
def no_loop_pause(monkeypatch):
    # sqooler's main() sleeps T_WAIT_MAIN (0.2 s) per iteration; python-decouple reads it here.
    monkeypatch.setenv("T_WAIT_MAIN", "0")


def signed_files(root: Path) -> Dict[str, Dict[str, Any]]:
    out = {}
    for path in sorted(root.rglob("*.json")):
        content = json.loads(path.read_text(encoding="utf-8"))
        if set(content) == {"header", "payload", "signature"}:
            out[path.relative_to(root).as_posix()] = content
    return out


def test_sqoolers_own_loop_signs_through_the_agent(client, tmp_path, monkeypatch, no_loop_pause):
    monkeypatch.delenv("PRIVATE_JWK_STR", raising=False)
    storage, spooler, job_id = run_loop(client, tmp_path)
    raw = client.public_key(SQOOLER_KID).raw

    assert storage.get_status(NAME, "alice", job_id).status == "DONE"
    assert storage.get_result(NAME, "alice", job_id).results[0].data.memory == ["1 0"] * 3
    assert storage.verify_result(NAME, job_id) is True
    # upload_public_key stored the agent's public JWK.
    assert storage.get_public_key(NAME) == JWK(**client.public_jwk(SQOOLER_KID))
    # The spooler's "private" JWK holds no key.
    handle = spooler.get_private_jwk()
    assert isinstance(handle, SignetJWK) and handle.d is None

    # sqooler 0.9.0's local provider signs configs and results in the loop and stores the final
    # status unsigned; a status is signed by upload_status when given the key (the provider's
    # fallback path): call it as sqooler does, with the spooler's handle.
    storage.upload_status(NAME, "bob", "job-status-check", spooler.get_private_jwk())
    files = signed_files(tmp_path)
    kinds = {"configs" if p.startswith("backends/configs/") else p.split("/")[0] for p in files}
    assert kinds == {"configs", "status", "results"}, sorted(files)
    for path, jws in files.items():
        assert jws["header"]["kid"] == SQOOLER_KID, path
        assert JWSDict(**jws).verify_signature(storage.get_public_key(NAME)), path
        verify_ed25519(raw, jws)
    config = files[f"backends/configs/{NAME}.json"]["payload"]
    assert config["sign"] is True and config["kid"] == SQOOLER_KID
    assert config["last_queue_check"] is not None  # main() re-signed the config (update_config)

    # Tampering with the stored result: sqooler's own verify_result says False.
    result_path = tmp_path / next(p for p in files if p.startswith("results/"))
    stored = json.loads(result_path.read_text(encoding="utf-8"))
    stored["payload"]["results"][0]["data"]["memory"][0] = "0 1"
    result_path.write_text(json.dumps(stored), encoding="utf-8")
    assert storage.verify_result(NAME, job_id) is False


def test_a_private_key_in_the_environment_is_never_used(
    client, tmp_path, monkeypatch, no_loop_pause
):
    # A real sqooler key with the same kid, where sqooler looks for it.
    private, public = create_jwk_pair(kid=SQOOLER_KID)
    monkeypatch.setenv("PRIVATE_JWK_STR", private.to_config_str())
    storage, spooler, job_id = run_loop(client, tmp_path)
    assert storage.verify_result(NAME, job_id) is True
    assert storage.get_public_key(NAME) == JWK(**client.public_jwk(SQOOLER_KID))
    assert spooler.get_private_jwk().d is None
    env_key = base64.urlsafe_b64decode(public.x)
    for path, jws in signed_files(tmp_path).items():
        assert not JWSDict(**jws).verify_signature(public), path
        with pytest.raises(InvalidSignature):
            verify_ed25519(env_key, jws)
        verify_ed25519(client.public_key(SQOOLER_KID).raw, jws)


def test_without_the_agent_nothing_is_signed(client, tmp_path, monkeypatch, no_loop_pause):
    """The agent unreachable (the spooler was set up while it answered, then its socket is gone),
    with a real key in PRIVATE_JWK_STR: `update_backends` on a new storage and `main` on a
    running one raise UNAVAILABLE; nothing is signed some other way and no file changes."""
    import grpc

    from signet_client import SignetError

    private, _ = create_jwk_pair(kid=SQOOLER_KID)
    monkeypatch.setenv("PRIVATE_JWK_STR", private.to_config_str())
    new = LocalProviderExtended(LocalLoginInformation(base_path=str(tmp_path / "new")), "new")
    running = LocalProviderExtended(
        LocalLoginInformation(base_path=str(tmp_path / "running")), "running"
    )
    spooler = make_spooler()
    spooler.sign_with_signet(client, SQOOLER_KID)
    update_backends(running, {NAME: spooler})
    running.upload_job(JOB, NAME, "alice")
    before = {p: p.read_bytes() for p in sorted(tmp_path.rglob("*.json"))}
    with Client(f"unix://{tmp_path}/no-agent.sock", timeout=5) as gone:
        spooler.get_private_jwk()._client = gone
        for run in (
            lambda: update_backends(new, {NAME: spooler}),
            lambda: main(running, {NAME: spooler}, num_iter=1),
        ):
            with pytest.raises(SignetError) as caught:
                run()
            assert caught.value.code == grpc.StatusCode.UNAVAILABLE, caught.value
    assert {p: p.read_bytes() for p in sorted(tmp_path.rglob("*.json"))} == before
    assert signed_files(tmp_path / "new") == {}


def test_a_spooler_that_was_not_given_the_agent_does_not_read_the_environment(monkeypatch):
    private, _ = create_jwk_pair(kid="k")
    monkeypatch.setenv("PRIVATE_JWK_STR", private.to_config_str())
    with pytest.raises(RuntimeError, match="sign_with_signet"):
        make_spooler().get_private_jwk()


def test_keys_that_cannot_sign_for_sqooler_are_refused(client):
    with pytest.raises(ValueError, match="ECDSA.*deterministic"):
        make_spooler().sign_with_signet(client, "ec")
    with pytest.raises(ValueError, match="Ed25519"):
        make_spooler().sign_with_signet(client, "hmac")
    with pytest.raises(ValueError, match="no key"):
        make_spooler().sign_with_signet(client, "no-such-key")


def test_other_jwks_keep_sqoolers_behaviour(client):
    """The hooks pass every JWK that is not a Signet handle to sqooler's own functions."""
    import sqooler.storage_providers.base as base
    import sqooler.utils as utils
    from sqooler.security import sign_payload

    make_spooler().sign_with_signet(client, SQOOLER_KID)
    private, public = create_jwk_pair(kid="local")
    assert base.sign_payload({"a": 1}, private) == sign_payload({"a": 1}, private)
    assert utils.public_from_private_jwk(private) == public
    with pytest.raises(ValueError, match="not intended for signing"):
        base.sign_payload({"a": 1}, public)
    # A handle that reached sqooler's own functions has no key to sign with: they refuse.
    handle = make_spooler()
    handle.sign_with_signet(client, SQOOLER_KID)
    with pytest.raises(ValueError, match="private key is missing"):
        sign_payload({"a": 1}, handle.get_private_jwk())
    from sqooler.security import public_from_private_jwk

    with pytest.raises(ValueError, match="not intended for signing"):
        public_from_private_jwk(handle.get_private_jwk())


def test_another_sqooler_version_is_refused():
    signet_sqooler.check_sqooler_version("0.9.0")
    for version in ["0.9.1", "0.10.0", "1.0.0", "0.8.4"]:
        with pytest.raises(SqoolerVersionError, match=version):
            signet_sqooler.check_sqooler_version(version)


def test_importing_with_another_installed_sqooler_version_fails(tmp_path):
    """The installed distribution's metadata says 0.9.1 (a dist-info ahead of the real one on
    sys.path): `import signet_client.sqooler` raises before anything can be hooked."""
    import subprocess
    import sys

    dist = tmp_path / "sqooler-0.9.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: sqooler\nVersion: 0.9.1\n")
    code = "import sys; sys.path.insert(0, sys.argv[1]); import signet_client.sqooler"
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "SqoolerVersionError" in out.stderr and "sqooler 0.9.1 is installed" in out.stderr


def test_the_labscript_spooler_signs_through_the_agent_too():
    from sqooler.spoolers import LabscriptSpooler

    from signet_client.sqooler import SignetLabscriptSpooler, SignetSigning

    assert issubclass(SignetLabscriptSpooler, LabscriptSpooler)
    for cls in (SignetSpooler, SignetLabscriptSpooler):
        assert cls.get_private_jwk is SignetSigning.get_private_jwk
