"""swt3-ai 0.7.8's own signing code, with the secret in the agent (`signet_client.swt3`).

swt3-ai's package `__init__` does not import on Python 3.11 (see conftest.py); everything the SDK
signs with outside `witness.py`/`buffer.py` does: `clearing` (payload signatures, which look up
`swt3_ai.signing.sign_payload` at call time), `signing` and `trust` (credentials, key
attestations, liveness). Those modules run here as installed. Every signature is compared with the
SDK's own function given the plain secret, checked by the SDK's own verifier, and recomputed with
the standard library's `hmac`.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest
import swt3_ai.clearing as clearing
import swt3_ai.signing as signing
import swt3_ai.trust as trust
from swt3_ai.types import InferenceRecord

import signet_client.swt3 as signet_swt3
from conftest import SWT3_SECRET
from signet_client.swt3 import SignetHmacKey


def independent_hmac(message: str) -> str:
    return hmac.new(SWT3_SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def key(client):
    key = SignetHmacKey(client, "witness")
    assert signing.sign_payload is signet_swt3.sign_payload  # installed by the constructor
    return key


RECORD = InferenceRecord(
    model_id="gpt-4o-2024-08-06",
    model_hash="494a14f4d10a",
    prompt_hash="fee60ff2c1908cb3",
    response_hash="2c29ba3dc930d672",
    latency_ms=847,
    input_tokens=120,
    output_tokens=142,
    guardrails_active=3,
    guardrails_required=2,
    guardrail_names=["pii", "toxicity", "jailbreak"],
    provider="openai",
)


@pytest.mark.parametrize("agent_id", ["agent-007", "agént-ü", None])
def test_the_sdks_clearing_signs_payloads_through_the_agent(key, agent_id):
    payloads = clearing.extract_payloads(
        RECORD, "ENCLAVE_ALPHA", 1, agent_id=agent_id, signing_key=key,
        signing_key_id="witness", signing_key_version=3,
    )
    assert len(payloads) >= 3
    for payload in payloads:
        fp = payload.anchor_fingerprint
        # The SDK's own sign_payload with the plain secret (a str key goes to the original).
        assert payload.payload_signature == signing.sign_payload(SWT3_SECRET, fp, agent_id)
        signed = f"{fp}:{agent_id}" if agent_id else fp
        assert payload.payload_signature == independent_hmac(signed)
        assert payload.signing_algorithm == "hmac-sha256"
        assert (payload.signing_key_id, payload.signing_key_version) == ("witness", 3)
    revocation = clearing.extract_revocation_payload(
        "ENCLAVE_ALPHA", payloads[0].anchor_fingerprint, "superseded", 1,
        agent_id=agent_id, signing_key=key,
    )
    assert revocation.payload_signature == signing.sign_payload(
        SWT3_SECRET, revocation.anchor_fingerprint, agent_id
    )


def test_the_agent_key_does_not_sign_ml_dsa(key):
    with pytest.raises(ValueError, match="ml-dsa-65"):
        clearing.extract_payloads(
            RECORD, "T", 1, signing_key=key, signing_algorithm="ml-dsa-65"
        )


def test_trust_credentials(key):
    credential = trust.TrustCredential(
        agent_id="agent-7", tenant_id="tënant", anchor_fingerprint="f7f20b581cbf",
        anchor_timestamp_ms=1774800000000, is_signed=True,
        procedures=["AI-INF.1", "AI-GRD.1", "AI-HW.1"], clearing_level=2,
        has_hardware_attestation=True, has_guardrails=True,
    )
    ours = signet_swt3.sign_credential(credential, key)
    assert ours == trust.sign_credential(credential, SWT3_SECRET)
    assert ours == independent_hmac(trust.build_credential_message(credential))
    credential.credential_signature = ours
    assert trust.verify_credential_signature(credential, SWT3_SECRET)
    credential.clearing_level = 3
    assert not trust.verify_credential_signature(credential, SWT3_SECRET)


def test_key_attestations(key):
    args = ("agent-7", "MCowBQYDK2VwAyEA-public", "f7f20b581cbf", 1774800000000)
    for purpose in ["signing", "delegation"]:
        ours = signet_swt3.generate_key_attestation(*args, key, key_purpose=purpose)
        assert ours == trust.generate_key_attestation(*args, SWT3_SECRET, key_purpose=purpose)
        assert trust.verify_key_attestation(ours, SWT3_SECRET)
        assert not trust.verify_key_attestation(ours, SWT3_SECRET + "0")


def test_liveness_responses(key):
    challenge = trust.generate_challenge("agent-7")
    ours = signet_swt3.respond_to_challenge(challenge, "agent-7", "f7f20b581cbf", key)
    assert ours == trust.respond_to_challenge(challenge, "agent-7", "f7f20b581cbf", SWT3_SECRET)
    assert trust.verify_liveness_response(ours, challenge, SWT3_SECRET).valid
    other = trust.generate_challenge("agent-7")
    assert not trust.verify_liveness_response(ours, other, SWT3_SECRET).valid


def test_sdk_code_that_would_hmac_itself_refuses_the_agent_key(key):
    credential = trust.TrustCredential("a", "t", "f7f20b581cbf", 1)
    with pytest.raises(TypeError, match="holds no secret"):
        trust.sign_credential(credential, key)
    with pytest.raises(TypeError, match="holds no secret"):
        trust.generate_key_attestation("a", "pk", "f7f20b581cbf", 1, key)


def test_only_hmac_keys_are_accepted(client):
    for key_id in ["ed", "ec", "no-such-key"]:
        with pytest.raises(ValueError, match="HMAC-SHA256"):
            SignetHmacKey(client, key_id)


def test_other_keys_keep_the_sdks_behaviour(key):
    signet_swt3.install()  # idempotent
    assert signing.sign_payload is signet_swt3.sign_payload
    assert signing.sign_payload(SWT3_SECRET, "f7f20b581cbf", "agent-007") == independent_hmac(
        "f7f20b581cbf:agent-007"
    )


def test_installing_with_another_installed_swt3_version_fails(tmp_path):
    """swt3-ai's metadata says 0.7.9 (a dist-info ahead of the real one on sys.path):
    install() raises before anything is hooked."""
    import subprocess
    import sys

    dist = tmp_path / "swt3_ai-0.7.9.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: swt3-ai\nVersion: 0.7.9\n")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import signet_client.swt3 as s; s.install()"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode != 0
    assert "swt3-ai 0.7.9 is installed" in out.stderr, out.stderr


def test_another_swt3_version_is_refused():
    signet_swt3.check_swt3_version("0.7.8")
    for version in ["0.7.9", "0.8.0", "1.0.0"]:
        with pytest.raises(RuntimeError, match=version):
            signet_swt3.check_swt3_version(version)
