"""sqooler's JWS encoding, byte for byte (sqooler 0.9, ``sqooler/security.py``).

sqooler's ``sign_payload(payload, jwk)`` signs ``header_b64 + b"." + payload_b64`` where

- ``header_b64`` is the *padded* base64url (``base64.urlsafe_b64encode``) of the pydantic model
  ``JWSHeader(kid=...)`` serialised with ``model_dump_json()``: compact JSON, members in the
  order ``alg, kid, typ, version``, non-ASCII characters written as UTF-8;
- ``payload_b64`` is the padded base64url of ``json.dumps(payload, default=datetime_handler)``:
  Python's default separators (``", "`` and ``": "``), ``ensure_ascii=True``, and
  ``datetime.datetime`` values written with ``isoformat()``;

and returns ``JWSDict(header=..., payload=..., signature=...)`` whose signature is the padded
base64url of the 64-byte Ed25519 signature. ``model_dump()`` of that is the dict uploaded to the
storage. Nothing here depends on sqooler; the tests compare it with sqooler itself.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import Any, Dict

ALG = "EdDSA"
TYP = "JWS"
VERSION = "0.1"


def header(kid: str) -> Dict[str, str]:
    """The JWS header sqooler writes for ``kid``, members in sqooler's order."""
    return {"alg": ALG, "kid": kid, "typ": TYP, "version": VERSION}


def _datetime_handler(value: Any) -> str:
    # sqooler.security.datetime_handler: datetimes become ISO 8601, anything else is an error.
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError("Unknown type")


def header_to_base64url(kid: str) -> bytes:
    """``JWSHeader(kid=kid).to_base64url()``: pydantic's compact JSON, padded base64url."""
    text = json.dumps(header(kid), separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(text.encode("utf-8"))


def payload_to_base64url(payload: Dict[str, Any]) -> bytes:
    """``sqooler.security.payload_to_base64url(payload)``."""
    text = json.dumps(payload, default=_datetime_handler)
    return base64.urlsafe_b64encode(text.encode())


def signing_input(payload: Dict[str, Any], kid: str) -> bytes:
    """The bytes sqooler signs: ``header_b64 + b"." + payload_b64``."""
    return header_to_base64url(kid) + b"." + payload_to_base64url(payload)


def encode_signature(signature: bytes) -> str:
    """The JWS signature member: padded base64url as a string."""
    return base64.urlsafe_b64encode(signature).decode("utf-8")


def public_jwk(kid: str, raw: bytes) -> Dict[str, Any]:
    """The public JWK in sqooler's ``JWK`` model form (``public_from_private_jwk``): ``x`` is the
    padded base64url of the 32-byte key, ``d`` is ``None``; members in the model's order, so
    ``json.dumps(jwk, separators=(",", ":"), ensure_ascii=False)`` equals
    ``JWK(**jwk).model_dump_json()``."""
    return {
        "x": base64.urlsafe_b64encode(raw).decode("ascii"),
        "key_ops": "verify",
        "kid": kid,
        "d": None,
        "kty": "OKP",
        "alg": ALG,
        "crv": "Ed25519",
    }
