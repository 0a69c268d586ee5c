"""sqooler compatibility, checked with sqooler itself (tests/python/requirements.txt pins it).

- sqooler's own `JWSDict.verify_signature` accepts what `sign_jws` returns, with the JWK that
  `public_jwk` returns, for a key generated inside the token;
- a key made by sqooler's helper and moved into the token with `signet keys import-sqooler`
  gives JWS objects byte-identical to sqooler's own `sign_payload` with the original key;
- a spooler whose storage is sqooler's local storage provider writes byte-identical files
  whether sqooler signs with the private key or Signet signs, and `verify_result` accepts them.

Every signature is also verified independently with `cryptography`'s Ed25519.
"""

from __future__ import annotations

import base64
import copy
import datetime
import json

import grpc
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqooler.security import (
    JWK,
    JWSDict,
    JWSHeader,
    payload_to_base64url,
    public_from_private_jwk,
    sign_payload,
)

from conftest import SQOOLER_KID
from signet_client import SignetError

PAYLOADS = [
    {"job_id": "42", "status": "DONE", "counts": [1, 2, 3]},
    {},
    {"nested": {"deeper": {"list": [{"a": 1}, {"b": [True, False, None]}], "x": 1.5}}},
    {"text": "Grüße, 量子, Ωmega, emoji 🧪, quote \" backslash \\ newline \n tab \t"},
    {"ünïcode-kéy": "välue", "量子": ["比特", 2]},
    {"floats": [0.1, -2.5e-10, 1e100, 3.0], "ints": [0, -1, 2**70], "bool": True, "none": None},
    {"when": datetime.datetime(2026, 11, 21, 9, 30, 15, 123456)},
    {"when_tz": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)},
    {"big": "x" * 20000, "many": list(range(500))},
    {"padding": "a"},  # lengths that need 0, 1 and 2 padding characters
    {"padding": "ab"},
    {"padding": "abc"},
]


def signing_input(payload: dict, kid: str) -> bytes:
    """What sqooler signs, computed with sqooler's own functions."""
    return JWSHeader(kid=kid).to_base64url() + b"." + payload_to_base64url(payload)


def verify_ed25519(raw_public: bytes, jws: dict) -> None:
    """Independent check with `cryptography` (raises InvalidSignature)."""
    signature = base64.urlsafe_b64decode(jws["signature"])
    kid = jws["header"]["kid"]
    Ed25519PublicKey.from_public_bytes(raw_public).verify(
        signature, signing_input(jws["payload"], kid)
    )


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_sqooler_verifies_sign_jws_for_a_key_generated_in_the_token(client, payload):
    jws = client.sign_jws(payload, "ed")
    assert jws["header"] == {"alg": "EdDSA", "kid": "ed", "typ": "JWS", "version": "0.1"}
    assert list(jws) == ["header", "payload", "signature"]
    assert jws["payload"] == payload
    public = JWK(**client.public_jwk("ed"))
    assert JWSDict(**jws).verify_signature(public) is True
    verify_ed25519(client.public_key("ed").raw, jws)

    # A changed payload, header or signature does not verify.
    if payload:
        tampered = copy.deepcopy(jws)
        tampered["payload"]["tampered"] = 1
        assert JWSDict(**tampered).verify_signature(public) is False
    other_kid = copy.deepcopy(jws)
    other_kid["header"]["kid"] = "someone-else"
    assert JWSDict(**other_kid).verify_signature(public) is False
    flipped = bytearray(base64.urlsafe_b64decode(jws["signature"]))
    flipped[0] ^= 1
    bad = dict(jws, signature=base64.urlsafe_b64encode(bytes(flipped)).decode())
    assert JWSDict(**bad).verify_signature(public) is False


def test_sign_jws_does_not_share_the_callers_payload(client):
    payload = {"counts": [1, 2]}
    jws = client.sign_jws(payload, "ed")
    payload["counts"].append(3)
    assert jws["payload"] == {"counts": [1, 2]}
    assert JWSDict(**jws).verify_signature(JWK(**client.public_jwk("ed")))


def test_public_jwk_is_sqooler_jwk(client, agent):
    for kid in ["ed", SQOOLER_KID]:
        jwk = client.public_jwk(kid)
        model = JWK(**jwk)
        assert (model.key_ops, model.kid, model.d, model.kty, model.alg, model.crv) == (
            "verify", kid, None, "OKP", "EdDSA", "Ed25519",
        )
        assert base64.urlsafe_b64decode(model.x) == client.public_key(kid).raw
        # Serialised as sqooler's storage providers write it (upload_public_key).
        assert json.dumps(jwk, separators=(",", ":"), ensure_ascii=False) == model.model_dump_json()
    # For the migrated key: exactly the public half of the original private key, and exactly
    # what `signet keys import-sqooler` printed.
    original = public_from_private_jwk(agent.sqooler_private)
    assert JWK(**client.public_jwk(SQOOLER_KID)) == original
    assert JWK(**client.public_jwk(SQOOLER_KID)).model_dump_json() == original.model_dump_json()
    assert original.model_dump_json() == agent.sqooler_public_json


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_a_migrated_key_signs_byte_identically_to_sqooler(client, agent, payload):
    theirs = sign_payload(payload, agent.sqooler_private)
    ours = client.sign_jws(payload, SQOOLER_KID)
    assert ours == theirs.model_dump()
    assert JWSDict(**ours).model_dump_json() == theirs.model_dump_json()
    # What a storage provider writes (json.dump with sqooler's datetime handler).
    from sqooler.security import datetime_handler

    assert json.dumps(ours, default=datetime_handler) == json.dumps(
        theirs.model_dump(), default=datetime_handler
    )
    public = public_from_private_jwk(agent.sqooler_private)
    assert JWSDict(**ours).verify_signature(public)
    verify_ed25519(base64.urlsafe_b64decode(public.x), ours)


def test_the_header_encoding_matches_sqooler_for_unusual_kids():
    # kids that key ids on a token may not allow, checked against sqooler's header encoding
    # without the agent.
    from signet_client import _sqooler

    kids = ["a", "spooler-ä1", "量子", 'q"uote', "back\\slash", "ctl\x01\x1f", "emoji 🧪", ""]
    for kid in kids:
        assert _sqooler.header_to_base64url(kid) == JWSHeader(kid=kid).to_base64url(), kid


def test_a_spooler_on_sqoolers_storage_writes_the_same_files(client, agent, tmp_path):
    """The whole sqooler flow on its local storage provider: config, public key, result. The
    storage written with Signet is byte for byte the storage sqooler writes with the private
    key, and sqooler's `verify_result` accepts it."""
    from sqooler.schemes import BackendConfigSchemaIn, LocalLoginInformation, ResultDict
    from sqooler.storage_providers.local import LocalProviderExtended

    name, job_id = "signetdemo", "job-7"
    config = BackendConfigSchemaIn(
        description="a spooler that signs in an HSM",
        version="0.0.1",
        display_name=name,
        cold_atom_type="spin",
        gates=[],
        max_experiments=10,
        max_shots=100,
        simulator=True,
        supported_instructions=["barrier", "measure"],
        num_wires=2,
        wire_order="interleaved",
        num_species=1,
        sign=True,
        kid=SQOOLER_KID,
    )
    result = ResultDict(
        display_name=name, backend_version="0.0.1", job_id=job_id, status="DONE",
        header={"note": "résumé"}, results=[],
    )
    private = agent.sqooler_private

    # Before: sqooler signs with the private key from PRIVATE_JWK_STR.
    before = LocalProviderExtended(LocalLoginInformation(base_path=str(tmp_path / "a")), "a")
    before.upload_config(config.model_copy(), name, private_jwk=private)
    before.upload_public_key(public_from_private_jwk(private), name)
    before.upload_result(result.model_copy(), name, job_id, private_jwk=private)

    # After: Signet signs; the spooler uploads what sign_jws returned.
    after = LocalProviderExtended(LocalLoginInformation(base_path=str(tmp_path / "b")), "b")
    after.upload(
        client.sign_jws(config.model_dump(), SQOOLER_KID),
        after.get_attribute_path("configs"),
        after.get_attribute_id("configs", job_id="", display_name=name),
    )
    after.upload_public_key(JWK(**client.public_jwk(SQOOLER_KID)), name)
    after.upload(
        client.sign_jws(result.model_dump(), SQOOLER_KID),
        after.get_attribute_path("results", name, job_id),
        after.get_attribute_id("results", job_id),
    )

    assert after.verify_result(name, job_id) is True
    assert before.verify_result(name, job_id) is True
    assert after.get_config(name) == before.get_config(name)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.json"))
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.json"))
    assert files_a == files_b and len(files_a) == 3, (files_a, files_b)
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


def test_sign_jws_refuses_keys_that_are_not_ed25519(client):
    for key_id, algorithm in [("hmac", "hmac-sha256"), ("witness", "hmac-sha256"), ("ec", "p256")]:
        with pytest.raises(SignetError) as caught:
            client.sign_jws({"a": 1}, key_id)
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION, caught.value
        with pytest.raises(SignetError) as caught:
            client.public_jwk(key_id)
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION, caught.value
    with pytest.raises(SignetError) as caught:
        client.sign_jws({"a": 1}, "no-such-key")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(TypeError):
        client.sign_jws([1, 2], "ed")
    with pytest.raises(TypeError):
        client.sign_jws({"unserialisable": object()}, "ed")


def test_independent_verification_catches_a_wrong_key(client):
    jws = client.sign_jws({"a": 1}, "ed")
    with pytest.raises(InvalidSignature):
        verify_ed25519(client.public_key(SQOOLER_KID).raw, jws)


def _readme_switch():
    """The before and after code blocks of the README's three-line switch."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text.split("## Switching a sqooler spooler to Signet: three lines", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the section has a before and an after block"
    return blocks


def test_the_readme_three_line_switch_produces_the_same_jws_and_storage(
    client, agent, tmp_path, monkeypatch
):
    """Runs the README's before and after code as written (only the socket address and the kid
    are this test's) on sqooler's local storage provider: the signed dicts are equal, sqooler
    verifies both, and the stored public keys are the same bytes."""
    import os

    from sqooler.schemes import BackendConfigSchemaIn, LocalLoginInformation
    from sqooler.security import jwk_from_config_str
    from sqooler.storage_providers.local import LocalProviderExtended

    from signet_client import Client

    before, after = _readme_switch()
    lines = lambda block: [line for line in block.strip().splitlines() if line.strip()]
    assert len(lines(before)) == len(lines(after)) == 3
    after = after.replace("unix:///run/signet/signet.sock", agent.target)
    after = after.replace('"spooler-kid"', repr(SQOOLER_KID))

    payload = {"job_id": "7", "status": "DONE", "results": [{"shots": 100, "counts": {"00": 51}}]}
    display_name = "readme"
    config = BackendConfigSchemaIn(
        description="d", version="0.0.1", display_name=display_name, cold_atom_type="spin",
        gates=[], max_experiments=1, max_shots=1, simulator=True, supported_instructions=[],
        num_wires=1, wire_order="interleaved", num_species=1, sign=False, kid=SQOOLER_KID,
    )
    namespaces = {}
    for name, code in [("before", before), ("after", after)]:
        storage = LocalProviderExtended(
            LocalLoginInformation(base_path=str(tmp_path / name)), name
        )
        storage.upload_config(config.model_copy(), display_name)
        scope = {
            "os": os,
            "jwk_from_config_str": jwk_from_config_str,
            "sign_payload": sign_payload,
            "public_from_private_jwk": public_from_private_jwk,
            "Client": Client,
            "JWK": JWK,
            "payload": payload,
            "storage": storage,
            "display_name": display_name,
        }
        monkeypatch.setenv("PRIVATE_JWK_STR", agent.sqooler_private.to_config_str())
        exec(compile(code, f"README {name}", "exec"), scope)
        if "signet" in scope:
            scope["signet"].close()
        namespaces[name] = scope

    signed_before, signed_after = namespaces["before"]["signed"], namespaces["after"]["signed"]
    assert signed_after == signed_before
    assert json.dumps(signed_after) == json.dumps(signed_before)
    for name in ["before", "after"]:
        storage = namespaces[name]["storage"]
        public = storage.get_public_key(display_name)
        assert JWSDict(**namespaces[name]["signed"]).verify_signature(public)
    key_file = f"backends/public_keys/{SQOOLER_KID}.json"
    assert (tmp_path / "after" / key_file).read_bytes() == (
        tmp_path / "before" / key_file
    ).read_bytes()
