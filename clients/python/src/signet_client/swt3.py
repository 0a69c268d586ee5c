"""swt3-ai 0.7.8's HMAC signing and verifying through the agent: the secret stays in the HSM.

Usage::

    from signet_client import Client
    from signet_client import swt3 as signet_swt3

    # Checks the key is HMAC and routes swt3_ai.signing.sign_payload (install(), idempotent).
    key = signet_swt3.SignetHmacKey(Client("unix:///run/signet/signet.sock"), "witness-hmac")
    # Wherever the SDK takes a `signing_key`, pass `key`:
    payloads = swt3_ai.clearing.extract_payloads(record, "TENANT", 1, agent_id="a", signing_key=key)

- **Payload signatures.** ``swt3_ai.clearing`` looks ``swt3_ai.signing.sign_payload`` up when it
  signs (``from .signing import sign_payload`` inside ``_apply_operational_metadata``).
  :func:`install` replaces that module attribute with :func:`sign_payload`, which signs the SDK's
  own canonical message (``swt3_ai.signing._build_message``) with the agent's HMAC key when the
  key is a :class:`SignetHmacKey`, and calls the SDK's original for any other key.
- **Trust credentials, key attestations, liveness responses** (``swt3_ai.trust``) compute
  ``hmac.new(signing_key.encode(), message)`` inline, so there is nothing to route: use
  :func:`sign_credential`, :func:`generate_key_attestation` and :func:`respond_to_challenge`,
  which sign the same canonical strings with the agent (``Sign`` with the HMAC key) and return
  what the SDK's functions return.
- A :class:`SignetHmacKey` is not a string and holds no secret: SDK code that would compute an
  HMAC itself with it (``signing_key.encode(...)``) raises ``TypeError`` instead of signing with
  something else.
- **Verifying** (Tier 4 for the verifier too): :func:`verify_payload` (the counterpart of
  ``sign_payload``), :func:`verify_anchor` (the whole anchor: fingerprint and signature, through
  ``VerifyFingerprint``), :func:`verify_credential_signature`, :func:`verify_key_attestation`
  and :func:`verify_liveness_response` check through the agent (``Verify`` inside the HSM) for a
  :class:`SignetHmacKey` and take the SDK's arguments in the SDK's order; any other key goes to
  the SDK's own function. :func:`install` also routes ``swt3_ai.trust.verify_credential_signature``
  (which ``swt3_ai.trust.verify_credential`` looks up at call time), so a ``TrustRegistry`` whose
  signing key for a peer is a :class:`SignetHmacKey` verifies that peer's credentials in the HSM.
  The agent's client needs the ``verify`` grant; an ingest server needs no other.

swt3-ai 0.7.8's package ``__init__`` does not import before Python 3.12 (``buffer.py`` uses a
3.12-only f-string); on older Pythons :func:`install` raises with that explanation.
"""

from __future__ import annotations

import hmac
import importlib
import importlib.metadata
import threading
import time
from typing import Any, Callable, Optional

from .client import AnchorVerdict, Client

__all__ = [
    "SWT3_VERSION",
    "SignetHmacKey",
    "check_swt3_version",
    "generate_key_attestation",
    "install",
    "respond_to_challenge",
    "sign_credential",
    "sign_payload",
    "verify_anchor",
    "verify_credential_signature",
    "verify_key_attestation",
    "verify_liveness_response",
    "verify_payload",
]

#: The swt3-ai release whose signing this integration was written against and tested with.
SWT3_VERSION = "0.7.8"

_HMAC = "hmac-sha256"


class SignetHmacKey:
    """The agent's HMAC-SHA256 key ``key_id`` where the SDK takes a ``signing_key``. Making one
    checks the key's type and calls :func:`install`."""

    def __init__(self, client: Client, key_id: str) -> None:
        algorithm = next((k.algorithm for k in client.list_keys() if k.key_id == key_id), None)
        if algorithm != _HMAC:
            raise ValueError(
                f"key '{key_id}' is {algorithm or 'not on the agent'}; SWT3 signatures are "
                "HMAC-SHA256 (import the secret with `signet keys import-hmac`)"
            )
        self.client = client
        self.key_id = key_id
        install()

    def hmac_hex(self, message: str) -> str:
        """HMAC-SHA256 of the UTF-8 ``message`` with the agent's key, as 64 lowercase hex."""
        signature = self.client.sign(self.key_id, message.encode("utf-8"))
        if len(signature) != 32:
            raise RuntimeError(
                f"key '{self.key_id}' did not make an HMAC-SHA256 ({len(signature)} bytes)"
            )
        return signature.hex()

    def hmac_verify(self, message: str, signature_hex: str) -> bool:
        """Whether ``signature_hex`` is the HMAC-SHA256 of the UTF-8 ``message`` with the
        agent's key, checked inside the HSM. Anything but 64 hex characters is False, as the
        SDK's ``hmac.compare_digest`` answers."""
        if len(signature_hex) != 64:
            return False
        try:
            tag = bytes.fromhex(signature_hex)
        except ValueError:
            return False
        return self.client.verify(self.key_id, message.encode("utf-8"), tag).valid

    def encode(self, *_: Any, **__: Any) -> bytes:
        """Refuses: SDK code that computes an HMAC itself was handed the agent's key."""
        raise TypeError(
            f"SignetHmacKey('{self.key_id}') holds no secret: this swt3-ai function computes the "
            "HMAC itself; use the function of the same name in signet_client.swt3 (or install())"
        )

    def __bool__(self) -> bool:
        # The SDK signs only `if signing_key:`.
        return True

    def __repr__(self) -> str:
        return f"SignetHmacKey(key_id={self.key_id!r})"


def _sdk(module: str) -> Any:
    try:
        return importlib.import_module(f"swt3_ai.{module}")
    except SyntaxError as error:
        raise RuntimeError(
            f"swt3-ai does not import on this Python ({error.filename}: {error.msg}); swt3-ai "
            f"{SWT3_VERSION} needs Python >= 3.12 although it declares >= 3.9"
        ) from error


def check_swt3_version(version: str) -> None:
    """Raises ``RuntimeError`` unless ``version`` is :data:`SWT3_VERSION`."""
    if version != SWT3_VERSION:
        raise RuntimeError(
            f"signet_client.swt3 routes swt3-ai {SWT3_VERSION}'s signing_key uses to the agent, "
            f"but swt3-ai {version} is installed; another release may sign elsewhere and bypass "
            f"the agent. Install swt3-ai=={SWT3_VERSION} or update signet-client."
        )


_lock = threading.Lock()
_original: Optional[Callable[..., str]] = None
_original_verify_credential: Optional[Callable[..., bool]] = None


def sign_payload(
    signing_key: Any,
    anchor_fingerprint: str,
    agent_id: Optional[str] = None,
    *,
    algorithm: str = _HMAC,
) -> str:
    """``swt3_ai.signing.sign_payload``: the agent signs for a :class:`SignetHmacKey`, the SDK's
    own function for any other key."""
    signing = _sdk("signing")
    if not isinstance(signing_key, SignetHmacKey):
        original = _original or signing.sign_payload
        return str(original(signing_key, anchor_fingerprint, agent_id, algorithm=algorithm))
    if algorithm != _HMAC:
        raise ValueError(f"the agent's SWT3 keys sign {_HMAC}, not {algorithm!r}")
    return signing_key.hmac_hex(str(signing._build_message(anchor_fingerprint, agent_id)))


def install() -> None:
    """Routes ``swt3_ai.signing.sign_payload`` (which ``swt3_ai.clearing`` looks up at call time)
    through :func:`sign_payload`, and ``swt3_ai.trust.verify_credential_signature`` (which
    ``verify_credential`` looks up) through :func:`verify_credential_signature`. Idempotent;
    checks the swt3-ai version."""
    global _original, _original_verify_credential
    check_swt3_version(importlib.metadata.version("swt3-ai"))
    signing = _sdk("signing")
    trust = _sdk("trust")
    with _lock:
        if signing.sign_payload is not sign_payload:
            _original = signing.sign_payload
            signing.sign_payload = sign_payload
        if trust.verify_credential_signature is not verify_credential_signature:
            _original_verify_credential = trust.verify_credential_signature
            trust.verify_credential_signature = verify_credential_signature


def sign_credential(credential: Any, key: SignetHmacKey) -> str:
    """``swt3_ai.trust.sign_credential(credential, key)``: the SDK's canonical message
    (``build_credential_message``), signed by the agent."""
    return key.hmac_hex(str(_sdk("trust").build_credential_message(credential)))


def generate_key_attestation(
    agent_id: str,
    public_key: str,
    anchor_fingerprint: str,
    anchor_timestamp_ms: int,
    key: SignetHmacKey,
    key_purpose: str = "signing",
) -> Any:
    """``swt3_ai.trust.generate_key_attestation(...)`` with the proof made by the agent."""
    message = f"{agent_id}:{public_key}:{anchor_fingerprint}:{anchor_timestamp_ms}:{key_purpose}"
    return _sdk("trust").KeyAttestation(
        agent_id=agent_id,
        public_key=public_key,
        anchor_fingerprint=anchor_fingerprint,
        anchor_timestamp_ms=anchor_timestamp_ms,
        key_purpose=key_purpose,
        attestation_proof=key.hmac_hex(message),
    )


def respond_to_challenge(
    challenge: Any, agent_id: str, anchor_fingerprint: str, key: SignetHmacKey
) -> Any:
    """``swt3_ai.trust.respond_to_challenge(...)`` with the response signed by the agent."""
    message = (
        f"{agent_id}:{anchor_fingerprint}:{challenge.nonce}:{challenge.challenge_timestamp_ms}"
    )
    return _sdk("trust").LivenessResponse(
        nonce=challenge.nonce,
        challenge_timestamp_ms=challenge.challenge_timestamp_ms,
        agent_id=agent_id,
        anchor_fingerprint=anchor_fingerprint,
        response_signature=key.hmac_hex(message),
    )


# -- verifying ----------------------------------------------------------------------------------


def verify_payload(
    signing_key: Any,
    anchor_fingerprint: str,
    agent_id: Optional[str],
    signature: str,
    *,
    algorithm: str = _HMAC,
) -> bool:
    """Whether ``signature`` is what ``sign_payload(signing_key, anchor_fingerprint, agent_id)``
    makes: checked by the agent inside the HSM for a :class:`SignetHmacKey`, recomputed with the
    SDK's own ``sign_payload`` for a plain secret."""
    signing = _sdk("signing")
    message = str(signing._build_message(anchor_fingerprint, agent_id))
    if isinstance(signing_key, SignetHmacKey):
        if algorithm != _HMAC:
            raise ValueError(f"the agent's SWT3 keys verify {_HMAC}, not {algorithm!r}")
        return signing_key.hmac_verify(message, signature)
    original = _original or signing.sign_payload
    expected = str(original(signing_key, anchor_fingerprint, agent_id, algorithm=algorithm))
    return hmac.compare_digest(expected, signature)


def verify_anchor(
    key: SignetHmacKey,
    tenant_id: str,
    procedure_id: str,
    factor_a: float,
    factor_b: float,
    factor_c: float,
    timestamp_ms: int,
    anchor_fingerprint: str,
    signature: str,
    agent_id: Optional[str] = None,
) -> AnchorVerdict:
    """An ingest server's whole check of a witness payload: the fingerprint recomputed from the
    anchor fields (``mint_fingerprint``'s arguments) and the signature over it, in the agent
    (``VerifyFingerprint``). The verdict says which part failed."""
    return key.client.verify_fingerprint(
        key.key_id,
        tenant_id,
        procedure_id,
        factor_a,
        factor_b,
        factor_c,
        timestamp_ms,
        anchor_fingerprint,
        signature,
        agent_id,
    )


def verify_credential_signature(credential: Any, signing_key: Any) -> bool:
    """``swt3_ai.trust.verify_credential_signature``: checked by the agent for a
    :class:`SignetHmacKey`, by the SDK's own function for any other key."""
    trust = _sdk("trust")
    if not isinstance(signing_key, SignetHmacKey):
        original = _original_verify_credential or trust.verify_credential_signature
        return bool(original(credential, signing_key))
    if not credential.credential_signature:
        return False
    message = str(trust.build_credential_message(credential))
    return signing_key.hmac_verify(message, credential.credential_signature)


def verify_key_attestation(attestation: Any, signing_key: Any) -> bool:
    """``swt3_ai.trust.verify_key_attestation``: the proof checked by the agent for a
    :class:`SignetHmacKey`."""
    trust = _sdk("trust")
    if not isinstance(signing_key, SignetHmacKey):
        return bool(trust.verify_key_attestation(attestation, signing_key))
    message = (
        f"{attestation.agent_id}:{attestation.public_key}:{attestation.anchor_fingerprint}:"
        f"{attestation.anchor_timestamp_ms}:{attestation.key_purpose}"
    )
    return signing_key.hmac_verify(message, attestation.attestation_proof)


def verify_liveness_response(
    response: Any, challenge: Any, signing_key: Any, timeout_ms: int = 5000
) -> Any:
    """``swt3_ai.trust.verify_liveness_response``: the SDK's checks in the SDK's order, the
    signature checked by the agent for a :class:`SignetHmacKey`; returns a ``LivenessResult``."""
    trust = _sdk("trust")
    if not isinstance(signing_key, SignetHmacKey):
        return trust.verify_liveness_response(response, challenge, signing_key, timeout_ms)
    result = trust.LivenessResult
    if response.nonce != challenge.nonce:
        return result(valid=False, reason="nonce_mismatch")
    if response.challenge_timestamp_ms != challenge.challenge_timestamp_ms:
        return result(valid=False, reason="timestamp_mismatch")
    if response.agent_id != challenge.target_agent_id:
        return result(valid=False, reason="agent_mismatch")
    if int(time.time() * 1000) - challenge.challenge_timestamp_ms > timeout_ms:
        return result(valid=False, reason="liveness_timeout")
    message = (
        f"{response.agent_id}:{response.anchor_fingerprint}:{response.nonce}:"
        f"{response.challenge_timestamp_ms}"
    )
    if not signing_key.hmac_verify(message, response.response_signature):
        return result(valid=False, reason="signature_invalid")
    return result(valid=True)
