"""sqooler 0.9.0's own spooler loop, signing through the agent with no private key anywhere.

Usage::

    from sqooler.utils import main, update_backends
    from signet_client import Client
    from signet_client.sqooler import SignetSpooler

    spooler = SignetSpooler(ins_schema_dict=..., device_config=..., n_wires=2, sign=True)
    spooler.sign_with_signet(Client("unix:///run/signet/signet.sock"), "spooler-kid")
    update_backends(storage, {"mybackend": spooler})
    main(storage, {"mybackend": spooler})

How it hooks in (sqooler 0.9.0 only; any other version is refused on import):

- ``update_backends`` and ``main`` ask ``spooler.get_private_jwk()`` for the key and hand it to
  the storage provider. :class:`SignetSigning` (a mixin; :class:`SignetSpooler` and
  :class:`SignetLabscriptSpooler` are the ready-made classes) returns a :class:`SignetJWK`
  instead: a ``sqooler.security.JWK`` with ``key_ops="sign"``, the agent's public key in ``x``
  and ``d=None``. It never reads ``PRIVATE_JWK_STR``.
- Everything the loop signs (configs in ``upload_config``/``update_config``, statuses, results in
  ``update_in_database``) goes through one name, ``sqooler.storage_providers.base.sign_payload``,
  and ``update_backends`` derives the key it uploads with
  ``sqooler.utils.public_from_private_jwk``. Those two module attributes are replaced by
  dispatchers: a :class:`SignetJWK` is signed by the agent (and the signature checked with
  sqooler's own ``JWSDict.verify_signature`` before it is returned) or turned into the agent's
  public JWK; any other JWK goes to sqooler's original function, unchanged.
- A :class:`SignetJWK` holds no key bytes, so if it ever reached sqooler's own ``sign_payload``
  or ``public_from_private_jwk`` they would raise (``d`` is ``None``); there is nothing to fall
  back to.

Only Ed25519 keys are accepted. sqooler's JWS is EdDSA only, and ``update_config`` re-signs the
stored config and compares the signature bytes with the stored ones to check that the key has not
changed: that needs a deterministic signature scheme. ECDSA signatures are randomised, so with a
P-256 key every ``update_config`` (each loop iteration) would fail.
"""

from __future__ import annotations

import base64
import importlib.metadata
import threading
from typing import Any, Callable, Dict, Optional

import sqooler.storage_providers.base as _base
import sqooler.utils as _utils
from pydantic import PrivateAttr
from sqooler.security import JWK, JWSDict, JWSHeader
from sqooler.security import public_from_private_jwk as _sqooler_public_from_private
from sqooler.security import sign_payload as _sqooler_sign_payload
from sqooler.spoolers import LabscriptSpooler, Spooler

from .client import Client

__all__ = [
    "SQOOLER_VERSION",
    "SignetJWK",
    "SignetLabscriptSpooler",
    "SignetSigning",
    "SignetSpooler",
    "SqoolerVersionError",
    "check_sqooler_version",
    "install",
]

#: The sqooler release whose loop this integration was written against and tested with.
SQOOLER_VERSION = "0.9.0"


class SqoolerVersionError(RuntimeError):
    """The installed sqooler is not the release this integration knows."""


def check_sqooler_version(version: str) -> None:
    """Raises :class:`SqoolerVersionError` unless ``version`` is :data:`SQOOLER_VERSION`."""
    if version != SQOOLER_VERSION:
        raise SqoolerVersionError(
            f"signet_client.sqooler hooks into sqooler {SQOOLER_VERSION}'s signing calls "
            f"(sqooler.storage_providers.base.sign_payload, sqooler.utils."
            f"public_from_private_jwk), but sqooler {version} is installed; a different release "
            "may sign elsewhere and bypass the agent, so it is refused. Install "
            f"sqooler=={SQOOLER_VERSION} or update signet-client."
        )


check_sqooler_version(importlib.metadata.version("sqooler"))


class SignetJWK(JWK):  # type: ignore[misc]  # sqooler's pydantic models are untyped for mypy
    """A keyless handle in sqooler's ``JWK`` form: ``kid`` is the agent's key id, ``x`` its
    public key, ``d`` is always ``None``. Signing with it asks the agent."""

    _client: Optional[Client] = PrivateAttr(default=None)

    def sign(self, payload: Dict[str, Any]) -> Any:
        """``sqooler.security.sign_payload(payload, jwk)``, signed by the agent: a ``JWSDict``."""
        if self.d is not None or self._client is None:
            raise RuntimeError("a SignetJWK must come from SignetSigning.sign_with_signet")
        signed = self._client.sign_jws(payload, self.kid)
        jws = JWSDict(
            header=JWSHeader(**signed["header"]), payload=payload, signature=signed["signature"]
        )
        # The agent answered with the key this handle names: checked with sqooler's own
        # verification before sqooler uploads anything.
        if not jws.verify_signature(self.public()):
            raise RuntimeError(
                f"the agent's signature does not verify with the public key of '{self.kid}' "
                "read when the spooler was set up: the key in the agent changed; restart the "
                "spooler so that it uploads the new public key"
            )
        return jws

    def public(self) -> JWK:
        """The public JWK (``key_ops="verify"``), what ``upload_public_key`` stores."""
        return JWK(key_ops="verify", kid=self.kid, x=self.x)


_install_lock = threading.Lock()


def _sign_payload(payload: Dict[str, Any], jwk: JWK) -> Any:
    if isinstance(jwk, SignetJWK):
        return jwk.sign(payload)
    return _sqooler_sign_payload(payload, jwk)


def _public_from_private_jwk(private_jwk: JWK) -> Any:
    if isinstance(private_jwk, SignetJWK):
        return private_jwk.public()
    return _sqooler_public_from_private(private_jwk)


def _hook(module: Any, name: str, original: Callable[..., Any], hook: Callable[..., Any]) -> None:
    current = getattr(module, name, None)
    if current is hook:
        return
    if current is not original:
        raise SqoolerVersionError(
            f"{module.__name__}.{name} is not sqooler's own function (something else replaced "
            "it), so signet_client.sqooler cannot route it to the agent"
        )
    setattr(module, name, hook)


def install() -> None:
    """Routes sqooler's signing calls for :class:`SignetJWK` handles to the agent (idempotent;
    :meth:`SignetSigning.sign_with_signet` calls it). Other JWKs keep sqooler's behaviour."""
    with _install_lock:
        _hook(_base, "sign_payload", _sqooler_sign_payload, _sign_payload)
        _hook(_utils, "public_from_private_jwk", _sqooler_public_from_private,
              _public_from_private_jwk)


def _handle(client: Client, key_id: str) -> SignetJWK:
    algorithm = next((k.algorithm for k in client.list_keys() if k.key_id == key_id), None)
    if algorithm is None:
        raise ValueError(f"the agent has no key '{key_id}'")
    if algorithm == "p256":
        raise ValueError(
            f"key '{key_id}' is ECDSA P-256: sqooler signs with EdDSA only, and its "
            "update_config checks that the key is unchanged by re-signing the stored config and "
            "comparing the signature bytes, which only works with a deterministic scheme; ECDSA "
            "signatures are randomised, so every update would fail. Use an Ed25519 key."
        )
    if algorithm != "ed25519":
        raise ValueError(f"key '{key_id}' is {algorithm}; sqooler needs an Ed25519 key")
    key = client.public_key(key_id)
    handle = SignetJWK(
        key_ops="sign", kid=key_id, x=base64.urlsafe_b64encode(key.raw), d=None
    )
    handle._client = client
    return handle


class SignetSigning:
    """Mixin for a sqooler spooler (put it before the sqooler class): ``get_private_jwk`` returns
    a keyless :class:`SignetJWK` for the agent's key instead of reading ``PRIVATE_JWK_STR``."""

    _signet_jwk: Optional[SignetJWK] = None

    def sign_with_signet(self, client: Client, key_id: str) -> None:
        """Signs everything this spooler's loop signs with the agent's Ed25519 key ``key_id``
        (its sqooler ``kid``). Refuses other key types before anything is signed."""
        handle = _handle(client, key_id)
        install()
        self._signet_jwk = handle

    def get_private_jwk(self) -> JWK:
        """The agent's key as a keyless handle; never ``PRIVATE_JWK_STR``."""
        if self._signet_jwk is None:
            raise RuntimeError(
                "this spooler signs through Signet: call sign_with_signet(client, key_id) first "
                "(PRIVATE_JWK_STR is never read)"
            )
        return self._signet_jwk


class SignetSpooler(SignetSigning, Spooler):  # type: ignore[misc]
    """sqooler's ``Spooler`` signing through the agent."""


class SignetLabscriptSpooler(SignetSigning, LabscriptSpooler):  # type: ignore[misc]
    """sqooler's ``LabscriptSpooler`` signing through the agent."""
