"""Python client of the Signet signing agent.

>>> from signet_client import Client
>>> with Client("unix:///run/signet/signet.sock") as signet:
...     jws = signet.sign_jws({"job_id": "42", "status": "DONE"}, "spooler-kid")

``sign_jws`` returns exactly what ``sqooler.security.sign_payload(payload, jwk).model_dump()``
returns for the same key; ``public_jwk`` gives the key in sqooler's ``JWK`` form;
``witness_fingerprint`` returns an SWT3 anchor in the swt3-ai SDK's formats; ``verify`` and
``verify_fingerprint`` check signatures and anchors with the key inside the HSM.

Two integrations are imported on demand: ``signet_client.sqooler`` (sqooler 0.9.0's own spooler
loop signing through the agent) and ``signet_client.swt3`` (swt3-ai 0.7.8's HMAC signing through
the agent).
"""

from .client import (
    DEFAULT_TIMEOUT,
    AnchorVerdict,
    Client,
    KeyInfo,
    PublicKey,
    Signature,
    SignetError,
    Verdict,
    WitnessAnchor,
    crc32c,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AnchorVerdict",
    "Client",
    "KeyInfo",
    "PublicKey",
    "Signature",
    "SignetError",
    "Verdict",
    "WitnessAnchor",
    "crc32c",
]
__version__ = "0.1.0"
