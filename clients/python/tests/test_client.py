"""The client's own API against the real agent: every signature verified with `cryptography` or
`hmac`, errors as SignetError with the gRPC code, unix and TLS connections, deadlines."""

from __future__ import annotations

import hashlib
import hmac
import json

import grpc
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from conftest import SQOOLER_KID, SWT3_SECRET
from signet_client import Client, KeyInfo, SignetError, crc32c


def test_list_keys(client):
    assert client.list_keys() == sorted(
        [
            KeyInfo("ec", "p256", True),
            KeyInfo("ed", "ed25519", True),
            KeyInfo("hmac", "hmac-sha256", False),
            KeyInfo(SQOOLER_KID, "ed25519", True),
            KeyInfo("witness", "hmac-sha256", False),
        ],
        key=lambda k: k.key_id,
    )


def test_public_key_encodings_agree(client, agent):
    ed = client.public_key("ed")
    assert ed.algorithm == "ed25519" and len(ed.raw) == 32
    loaded = serialization.load_pem_public_key(ed.pem.encode())
    assert loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == ed.raw
    assert serialization.load_der_public_key(ed.spki_der).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    ) == ed.raw
    assert ed.jwk["kid"] == "ed" and ed.jwk["crv"] == "Ed25519" and ed.jwk["alg"] == "EdDSA"
    # `signet keys generate` printed the same JWK.
    assert json.loads(agent.ed_generated) == ed.jwk
    ec_key = client.public_key("ec")
    assert ec_key.algorithm == "p256" and len(ec_key.raw) == 65 and ec_key.jwk["alg"] == "ES256"


def test_results_name_the_key_version(client):
    # Never-rotated keys are version 1, and their JWK Set holds that one version, kid = key id.
    ed = client.public_key("ed")
    assert ed.key_version == 1
    assert [k["kid"] for k in ed.jwks["keys"]] == ["ed"]
    assert client.public_key("ed", key_version=1).raw == ed.raw
    with pytest.raises(SignetError) as missing:
        client.public_key("ed", key_version=7)
    assert missing.value.code == grpc.StatusCode.NOT_FOUND
    signed = client.sign_versioned("ed", b"versioned")
    assert (signed.key_id, signed.key_version, signed.algorithm) == ("ed", 1, "ed25519")
    Ed25519PublicKey.from_public_bytes(ed.raw).verify(signed.signature, b"versioned")
    # What an SWT3 payload's signing_key_id / signing_key_version carry.
    anchor = client.witness_fingerprint("witness", "T", "AI-INF.1", 1, 1, 0, 1774800000000)
    assert (anchor.signing_key_id, anchor.signing_key_version) == ("witness", 1)


@pytest.mark.parametrize("message", [b"", b"hello", bytes(range(256)) * 100])
def test_sign_and_verify_independently(client, message):
    ed = Ed25519PublicKey.from_public_bytes(client.public_key("ed").raw)
    ed.verify(client.sign("ed", message), message)

    ec_public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), client.public_key("ec").raw
    )
    raw = client.sign("ec", message)
    assert len(raw) == 64
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    ec_public.verify(der, message, ec.ECDSA(hashes.SHA256()))
    ec_public.verify(client.sign("ec", message, der=True), message, ec.ECDSA(hashes.SHA256()))

    assert client.sign("witness", message) == hmac.new(
        SWT3_SECRET.encode(), message, hashlib.sha256
    ).digest()
    assert len(client.sign("hmac", message)) == 32


def test_errors_are_signet_errors_with_the_grpc_code(client):
    with pytest.raises(SignetError) as caught:
        client.sign("no-such-key", b"x")
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
    assert "no key with id 'no-such-key'" in caught.value.message
    with pytest.raises(SignetError) as caught:
        client.sign("ed", b"x", der=True)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(SignetError) as caught:
        client.sign("", b"x")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(SignetError) as caught:
        client.public_key("hmac")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(SignetError) as caught:
        client.sign("ed", b"x" * (2 << 20))
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_an_absent_agent_is_unavailable_and_deadlines_apply(agent, tmp_path):
    with Client(str(tmp_path / "nobody.sock"), timeout=1) as nobody:
        with pytest.raises(SignetError) as caught:
            nobody.list_keys()
        assert caught.value.code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
    # An absolute path is a unix socket target too; a tiny per-call deadline expires.
    with Client(str(agent.socket)) as c:
        assert c.list_keys()
        with pytest.raises(SignetError) as caught:
            c.sign("ed", b"x" * (512 << 10), timeout=1e-6)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_tls_with_a_client_certificate(client, agent):
    certs = agent.certs
    with Client(
        agent.tls_address,
        root_ca=str(certs["ca"]),
        client_cert=str(certs["client_cert"]),
        client_key=str(certs["client_key"]),
        server_name="localhost",
    ) as tls:
        signature = tls.sign("ed", b"over mutual TLS")
        Ed25519PublicKey.from_public_bytes(client.public_key("ed").raw).verify(
            signature, b"over mutual TLS"
        )
        jws = tls.sign_jws({"over": "tls"}, "ed")
        from sqooler.security import JWK, JWSDict

        assert JWSDict(**jws).verify_signature(JWK(**tls.public_jwk("ed")))
        # The certificate's client may sign with `ed` only.
        with pytest.raises(SignetError) as caught:
            tls.sign("ec", b"x")
        assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED
    # Without a client certificate the TLS handshake is refused.
    with Client(
        agent.tls_address, root_ca=str(certs["ca"]), server_name="localhost", timeout=3
    ) as anon:
        with pytest.raises(SignetError) as caught:
            anon.list_keys()
        assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


def test_bad_targets_are_refused_before_connecting():
    with pytest.raises(ValueError):
        Client("127.0.0.1:1")  # TCP without TLS or insecure=True
    with pytest.raises(ValueError):
        Client("unix:///x.sock", root_ca="ca.pem")
    with pytest.raises(ValueError):
        Client("127.0.0.1:1", root_ca="ca.pem", client_cert="c.pem")


def test_crc32c():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
