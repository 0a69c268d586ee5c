"""SWT3 compatibility, checked with the swt3-ai Python SDK itself: for the key imported with
`signet keys import-hmac`, `witness_fingerprint` returns what `swt3_ai.fingerprint.mint_fingerprint`
and `swt3_ai.signing.sign_payload` return with the same secret."""

from __future__ import annotations

import hashlib
import hmac
import random
import time

import grpc
import pytest
from swt3_ai.fingerprint import mint_fingerprint
from swt3_ai.signing import sign_payload

from conftest import SWT3_SECRET
from signet_client import SignetError

CASES = [
    # tenant, procedure, a, b, c, timestamp, agent id
    ("ENCLAVE_ALPHA", "AI-INF.1", 1.0, 1.0, 0.0, 1774800000000, "agent-007"),
    ("ENCLAVE_ALPHA", "AI-INF.1", 1.0, 1.0, 0.0, 1774800000000, None),
    ("tënant-ü", "AI-MDL.2", 1.5, -2.25, 0.1, 1774800000001, "agent-ä"),
    ("租户", "AI-INF.1", 42, 0, -0.0, 1, "a b"),
    ("a b", "P", 123456.789, 1e15, 9.007e15, 1774800000002, None),
    ("T", "P", 0.0001, -0.5, 4.5e18, 0 + 1774800000003, "x"),
    ("T", "P", -9.2e18, 1 / 3, 2.0**53 + 2, 1774800000004, "x"),
]


def independent_hmac(message: str) -> str:
    return hmac.new(SWT3_SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()


def test_sdk_published_vector(client):
    anchor = client.witness_fingerprint(
        "witness", "ENCLAVE_ALPHA", "AI-INF.1", 1.0, 1.0, 0.0, 1774800000000, "agent-007"
    )
    assert anchor.fingerprint == "f7f20b581cbf"
    assert anchor.timestamp_ms == 1774800000000
    assert anchor.key_id == "witness"
    assert anchor.signature == sign_payload(SWT3_SECRET, "f7f20b581cbf", "agent-007")


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_witness_fingerprint_agrees_with_the_sdk(client, case):
    tenant, procedure, a, b, c, ts, agent_id = case
    anchor = client.witness_fingerprint("witness", tenant, procedure, a, b, c, ts, agent_id)
    assert anchor.timestamp_ms == ts
    assert anchor.fingerprint == mint_fingerprint(tenant, procedure, a, b, c, ts)
    assert anchor.signature == sign_payload(SWT3_SECRET, anchor.fingerprint, agent_id)
    signed = f"{anchor.fingerprint}:{agent_id}" if agent_id else anchor.fingerprint
    assert anchor.signature == independent_hmac(signed)
    assert len(anchor.fingerprint) == 12 and len(anchor.signature) == 64
    assert anchor.fingerprint == anchor.fingerprint.lower()
    assert anchor.signature == anchor.signature.lower()


def test_the_agents_clock_when_no_timestamp_is_given(client):
    before = int(time.time() * 1000)
    anchor = client.witness_fingerprint("witness", "T", "AI-INF.1", 1, 2, 3, agent_id="w-1")
    after = int(time.time() * 1000)
    assert before - 1000 <= anchor.timestamp_ms <= after + 1000
    assert anchor.fingerprint == mint_fingerprint("T", "AI-INF.1", 1, 2, 3, anchor.timestamp_ms)
    assert anchor.signature == sign_payload(SWT3_SECRET, anchor.fingerprint, "w-1")


#: Exactly halfway between two shortest decimals: repr (and JavaScript) write the even one,
#: Rust's `{}` and the swt3-ai crate the odd one (1.0000076293945313).
TIES = [1 + 2**-17, 1000 + 2**-14, 1e12 + 1 / 32, -(1 + 2**-17)]


@pytest.mark.parametrize("tie", TIES, ids=repr)
def test_ties_agree_with_the_sdk(client, tie):
    assert repr(1 + 2**-17) == "1.0000076293945312"
    ts = 1774800000000
    anchor = client.witness_fingerprint("witness", "T", "AI-INF.1", tie, 0.5, tie, ts, "a-1")
    assert anchor.fingerprint == mint_fingerprint("T", "AI-INF.1", tie, 0.5, tie, ts)
    assert anchor.signature == sign_payload(SWT3_SECRET, anchor.fingerprint, "a-1")
    assert anchor.signature == independent_hmac(f"{anchor.fingerprint}:a-1")


def test_factors_python_and_javascript_write_differently_are_refused_by_the_agent(client):
    # str(1e-05) == "1e-05" in the Python SDK, String(1e-5) == "0.00001" in JavaScript;
    # str(int(2.0**60)) == "1152921504606846976", String(2**60) == "1152921504606847000".
    for factors, name, text in [
        ((1e-5, 1, 1), "factor_a", "1e-05"),
        ((1, -2.5e-7, 1), "factor_b", "-2.5e-07"),
        ((1, 1, 2.0**60), "factor_c", "1152921504606846976"),
    ]:
        with pytest.raises(SignetError) as caught:
            client.witness_fingerprint("witness", "T", "P", *factors, 1)
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"{name}={text} " in str(caught.value)
    # Where both write the same text the anchor is the SDK's: 0.0001 (plain in both), below
    # 1e-9 (the same exponent notation), round integers beyond 2**53.
    for value in (0.0001, 1.5e-10, 5e-324, 9.2e18):
        anchor = client.witness_fingerprint("witness", "T", "P", value, 1, 1, 1)
        assert anchor.fingerprint == mint_fingerprint("T", "P", value, 1, 1, 1)


def test_the_clients_check_is_the_sdks_formula():
    # The client checks the agent's answer with its own copy of the SDK's formula.
    from signet_client import _swt3

    rng = random.Random(15)
    values = TIES + [0.0, -0.0, 1e-7, 2.0**60, 1e300, 5e-324]
    values += [rng.random() * 10 ** rng.randint(-12, 15) for _ in range(2000)]
    values += [(rng.getrandbits(53) | 1) * 2.0 ** -rng.randint(1, 60) for _ in range(2000)]
    for v in values:
        assert _swt3.fingerprint("T", "P", v, -v, 1, 5) == mint_fingerprint("T", "P", v, -v, 1, 5)


def test_errors_carry_the_grpc_code(client):
    def code(*args, **kwargs):
        with pytest.raises(SignetError) as caught:
            client.witness_fingerprint(*args, **kwargs)
        return caught.value.code

    assert code("no-such-key", "T", "P", 1, 1, 1, 1) == grpc.StatusCode.NOT_FOUND
    assert code("ed", "T", "P", 1, 1, 1, 1) == grpc.StatusCode.FAILED_PRECONDITION
    assert code("witness", "T:x", "P", 1, 1, 1, 1) == grpc.StatusCode.INVALID_ARGUMENT
    assert code("witness", "", "P", 1, 1, 1, 1) == grpc.StatusCode.INVALID_ARGUMENT
    assert code("witness", "T", "P", float("nan"), 1, 1, 1) == grpc.StatusCode.INVALID_ARGUMENT
    assert code("witness", "T", "P", 1e20, 1, 1, 1) == grpc.StatusCode.INVALID_ARGUMENT
    assert code("witness", "T", "P", 1, 1, 1, -5) == grpc.StatusCode.INVALID_ARGUMENT
    assert code("witness", "T", "P", 1, 1, 1, 1, "") == grpc.StatusCode.INVALID_ARGUMENT
    assert code("witness", "T" * 257, "P", 1, 1, 1, 1) == grpc.StatusCode.INVALID_ARGUMENT
    # An explicit 0 would silently mean "the agent's clock": refused before any call.
    with pytest.raises(ValueError, match="timestamp_ms=0"):
        client.witness_fingerprint("witness", "T", "P", 1, 1, 1, 0)
