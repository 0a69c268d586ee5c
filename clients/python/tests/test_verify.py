"""`Client.verify`, `Client.verify_fingerprint` and the verify half of `signet_client.swt3`
against the real agent: what the agent and swt3-ai's own functions (given the plain secret)
signed verifies inside the HSM, altered signatures and anchors do not, and the verdict names
the failing part."""

from __future__ import annotations

import time

import grpc
import pytest
import swt3_ai.fingerprint as fingerprint
import swt3_ai.signing as signing
import swt3_ai.trust as trust

import signet_client.swt3 as signet_swt3
from conftest import SWT3_SECRET
from signet_client import AnchorVerdict, SignetError, Verdict
from signet_client.swt3 import SignetHmacKey


def flipped(signature: bytes) -> bytes:
    return bytes([signature[0] ^ 1]) + signature[1:]


@pytest.mark.parametrize("key_id", ["ed", "ec", "hmac", "witness"])
def test_verify_accepts_what_sign_made_and_refuses_a_flipped_bit(client, key_id):
    message = b"verify me"
    signature = client.sign(key_id, message)
    verdict = client.verify(key_id, message, signature)
    assert verdict.valid and verdict.key_id == key_id and verdict.key_version == 1
    assert isinstance(verdict, Verdict)
    assert not client.verify(key_id, message, flipped(signature)).valid
    assert not client.verify(key_id, b"another message", signature).valid


def test_verify_der_and_malformed_input(client):
    signature = client.sign("ec", b"m", der=True)
    assert client.verify("ec", b"m", signature, der=True).valid
    with pytest.raises(SignetError) as refused:
        client.verify("ec", b"m", b"\x30\x01", der=True)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "DER" in refused.value.message
    with pytest.raises(SignetError) as refused:
        client.verify("hmac", b"m", b"")
    assert "signature must not be empty" in refused.value.message
    with pytest.raises(SignetError) as refused:
        client.verify("hmac", b"m", client.sign("hmac", b"m"), key_version=2)
    assert refused.value.code == grpc.StatusCode.NOT_FOUND


def test_verify_accepts_the_sdks_own_tag(client):
    tag = signing.sign_payload(SWT3_SECRET, "f7f20b581cbf", "agent-007")
    message = b"f7f20b581cbf:agent-007"
    assert client.verify("witness", message, bytes.fromhex(tag)).valid
    assert not client.verify("hmac", message, bytes.fromhex(tag)).valid, "another key"


def test_verify_fingerprint_names_the_failing_part(client):
    ts = 1774800000123
    fields = ("ACME", "AI-INF.1", 12.5, 3.0, 0.0, ts)
    fp = fingerprint.mint_fingerprint(*fields)
    sig = signing.sign_payload(SWT3_SECRET, fp, "agent-7")
    verdict = client.verify_fingerprint("witness", *fields, fp, sig, "agent-7")
    assert isinstance(verdict, AnchorVerdict)
    assert (verdict.valid, verdict.fingerprint_matches, verdict.signature_matches) == (
        True, True, True
    )
    changed = ("ACME", "AI-INF.1", 12.25, 3.0, 0.0, ts)
    verdict = client.verify_fingerprint("witness", *changed, fp, sig, "agent-7")
    assert (verdict.fingerprint_matches, verdict.signature_matches) == (False, True)
    assert verdict.expected_fingerprint == fingerprint.mint_fingerprint(*changed)
    verdict = client.verify_fingerprint("witness", *fields, fp, sig, "agent-8")
    assert (verdict.fingerprint_matches, verdict.signature_matches) == (True, False)
    with pytest.raises(ValueError):
        client.verify_fingerprint("witness", "ACME", "AI-INF.1", 1, 1, 0, 0, fp, sig)


@pytest.fixture
def key(client):
    return SignetHmacKey(client, "witness")


def test_swt3_payloads_and_anchors_verify_in_the_agent(key):
    fp = "f7f20b581cbf"
    for agent_id in ["agent-007", None]:
        sig = signing.sign_payload(SWT3_SECRET, fp, agent_id)
        assert signet_swt3.verify_payload(key, fp, agent_id, sig)
        assert signet_swt3.verify_payload(SWT3_SECRET, fp, agent_id, sig), "a plain secret"
        assert not signet_swt3.verify_payload(key, fp, "agent-x", sig)
        assert not signet_swt3.verify_payload(key, fp, agent_id, sig[:-1] + "0" * 1)
        assert not signet_swt3.verify_payload(key, fp, agent_id, "not hex")
    ts = int(time.time() * 1000)
    fields = ("T", "AI-INF.1", 1.0, 2.0, 3.0, ts)
    anchor = key.client.witness_fingerprint("witness", *fields, agent_id="w-1")
    verdict = signet_swt3.verify_anchor(key, *fields, anchor.fingerprint, anchor.signature, "w-1")
    assert verdict.valid


def test_trust_verifiers_check_in_the_agent(key):
    credential = trust.TrustCredential(
        agent_id="agent-7", tenant_id="T", anchor_fingerprint="f7f20b581cbf",
        anchor_timestamp_ms=int(time.time() * 1000), is_signed=True,
        procedures=["AI-INF.1"], clearing_level=1,
    )
    credential.credential_signature = trust.sign_credential(credential, SWT3_SECRET)
    assert signet_swt3.verify_credential_signature(credential, key)
    # install() routed the SDK's lookup: its own verify_credential uses the agent's key.
    registry = trust.TrustRegistry()
    registry.trust_agent("T", "agent-7")
    registry.register_signing_key("agent-7", key)
    assert trust.verify_credential(credential, registry, "T").granted
    credential.clearing_level = 3
    assert not signet_swt3.verify_credential_signature(credential, key)
    assert trust.verify_credential_signature(credential, SWT3_SECRET) is False

    args = ("agent-7", "MCowBQYDK2VwAyEA-public", "f7f20b581cbf", 1774800000000)
    attestation = trust.generate_key_attestation(*args, SWT3_SECRET)
    assert signet_swt3.verify_key_attestation(attestation, key)
    attestation.key_purpose = "delegation"
    assert not signet_swt3.verify_key_attestation(attestation, key)

    challenge = trust.generate_challenge("agent-7")
    response = trust.respond_to_challenge(challenge, "agent-7", "f7f20b581cbf", SWT3_SECRET)
    assert signet_swt3.verify_liveness_response(response, challenge, key).valid
    response.response_signature = "0" * 64
    result = signet_swt3.verify_liveness_response(response, challenge, key)
    assert (result.valid, result.reason) == (False, "signature_invalid")
