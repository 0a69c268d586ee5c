"""The Signet client: a thin, typed layer over the generated gRPC stubs."""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union

import grpc

from . import _sqooler, _swt3
from ._proto.signet.v1 import signer_pb2 as pb
from ._proto.signet.v1 import signer_pb2_grpc as pb_grpc

#: The deadline of every call unless the client or the call says otherwise (seconds).
DEFAULT_TIMEOUT = 10.0

#: The agent's default message limit is 1 MiB; public keys and batches can be larger than
#: gRPC's 4 MiB default receive limit only in extreme cases, so allow 64 MiB like the Rust tests.
_MAX_RECEIVE = 64 << 20

_ALGORITHMS: Dict[int, str] = {
    pb.ALGORITHM_ED25519: "ed25519",
    pb.ALGORITHM_ECDSA_P256_SHA256: "p256",
    pb.ALGORITHM_HMAC_SHA256: "hmac-sha256",
    pb.ALGORITHM_ML_DSA_65: "ml-dsa-65",
}


def _algorithm_name(value: int) -> str:
    return _ALGORITHMS.get(value, f"unknown({value})")


class SignetError(Exception):
    """A call the agent (or gRPC) refused or could not complete.

    Attributes:
        code: the :class:`grpc.StatusCode`, e.g. ``grpc.StatusCode.NOT_FOUND``.
        message: the status message (the agent's messages never contain secrets or paths).
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message

    @classmethod
    def _from_rpc(cls, error: grpc.RpcError) -> "SignetError":
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = error.details() if hasattr(error, "details") else str(error)
        return cls(code or grpc.StatusCode.UNKNOWN, details or "")


@dataclass(frozen=True)
class KeyInfo:
    """A key the agent serves (``ListKeys``)."""

    key_id: str
    #: ``"ed25519"``, ``"p256"``, ``"hmac-sha256"`` or ``"ml-dsa-65"`` (the names ``signet keys
    #: generate`` takes).
    algorithm: str
    #: False for HMAC keys, which have no public half.
    has_public_key: bool
    #: The version that signs (1 for a key that was never rotated).
    key_version: int = 1
    #: False for a key served for verification only.
    can_sign: bool = True


@dataclass(frozen=True)
class PublicKey:
    """The public half of an asymmetric key (``GetPublicKey``), in every encoding it returns."""

    key_id: str
    algorithm: str
    #: 32 bytes for Ed25519; the 65-byte uncompressed SEC1 point for P-256.
    raw: bytes
    #: DER SubjectPublicKeyInfo.
    spki_der: bytes
    pem: str
    #: The RFC 8037 / RFC 7518 JWK with ``kid``, ``alg`` and ``key_ops: ["verify"]``.
    jwk: Dict[str, Any]
    #: RFC 7638 SHA-256 thumbprint, base64url without padding.
    jwk_thumbprint: str
    #: The key version these encodings describe (1 for a key that was never rotated).
    key_version: int = 1
    #: RFC 7517 JWK Set (``{"keys": [...]}``) of every version of the key that may verify, each
    #: with its own ``kid``: the key id for version 1, ``"<key id>#N"`` for version N.
    jwks: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WitnessAnchor:
    """An SWT3 witness anchor, in the SWT3 SDK's formats."""

    #: 12 lowercase hex characters, what ``swt3_ai.fingerprint.mint_fingerprint`` returns.
    fingerprint: str
    #: Lowercase hex, what ``swt3_ai.signing.sign_payload`` returns: 64 characters for an HMAC
    #: key, 6,618 for an ML-DSA-65 key (``swt3_ai.signing.verify_mldsa`` checks it).
    signature: str
    #: The timestamp in the formula (the agent's clock when none was given).
    timestamp_ms: int
    #: The key that signed.
    key_id: str
    #: The version of that key that signed (its primary version).
    key_version: int = 1
    #: What an SWT3 payload's ``signing_algorithm`` holds: ``"hmac-sha256"`` or ``"ml-dsa-65"``.
    signing_algorithm: str = "hmac-sha256"

    @property
    def signing_key_id(self) -> str:
        """What an SWT3 payload's ``signing_key_id`` holds (swt3-ai 0.7.8 routing metadata)."""
        return self.key_id

    @property
    def signing_key_version(self) -> int:
        """What an SWT3 payload's ``signing_key_version`` holds."""
        return self.key_version


@dataclass(frozen=True)
class Signature:
    """A signature and the key version that made it (``Client.sign_versioned``)."""

    signature: bytes
    key_id: str
    #: The version of the key that signed (its primary version when the call was made).
    key_version: int
    algorithm: str


@dataclass(frozen=True)
class Verdict:
    """Whether a signature verified (``Verify``). A signature that does not verify is
    ``valid=False``; malformed input (empty, wrong length, bad DER) raises INVALID_ARGUMENT."""

    valid: bool
    key_id: str
    #: The key version that matched; when none did, the version tried.
    key_version: int
    algorithm: str


@dataclass(frozen=True)
class AnchorVerdict:
    """Whether an SWT3 anchor verified (``VerifyFingerprint``), part by part."""

    #: ``fingerprint_matches and signature_matches``.
    valid: bool
    #: The fingerprint recomputed from the anchor fields equals the claimed one.
    fingerprint_matches: bool
    #: The signature is the key's HMAC of the *claimed* fingerprint's payload: True with
    #: ``fingerprint_matches`` False means the witness signed that fingerprint but the fields sent
    #: with it are not the ones it was minted from.
    signature_matches: bool
    #: The fingerprint the anchor fields give.
    expected_fingerprint: str
    key_id: str
    key_version: int


def _crc32c_table() -> List[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C (Castagnoli), as the agent computes ``signature_crc32c``."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _read(path: Optional[Union[str, bytes]]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


class Client:
    """A connection to a Signet agent.

    ``target`` is one of:

    - ``"unix:///run/signet/signet.sock"`` (or ``"unix:relative/path.sock"``, or simply an
      absolute path ``"/run/signet/signet.sock"``): the agent's unix socket, where the kernel
      tells the agent who is calling;
    - ``"host:port"`` with ``root_ca`` (PEM file of the CA that signed the agent's certificate)
      and ``client_cert``/``client_key`` (PEM files of the client certificate, which a ``tls``
      listener requires and which names the caller);
    - ``"host:port"`` with ``insecure=True`` for a plaintext loopback listener (which only lists
      keys and returns public keys).

    ``server_name`` overrides the name checked in the agent's certificate (for example when
    connecting to an IP address whose certificate names ``localhost``). ``timeout`` is the default
    deadline of every call in seconds (each method also takes ``timeout=``).

    Use it as a context manager, or call :meth:`close`. One client can be shared by threads.
    """

    def __init__(
        self,
        target: str,
        *,
        root_ca: Optional[str] = None,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
        server_name: Optional[str] = None,
        insecure: bool = False,
        timeout: float = DEFAULT_TIMEOUT,
        options: Optional[List[Tuple[str, Any]]] = None,
    ):
        if target.startswith("/"):
            target = "unix://" + target
        opts: List[Tuple[str, Any]] = [("grpc.max_receive_message_length", _MAX_RECEIVE)]
        opts.extend(options or [])
        tls = root_ca is not None or client_cert is not None or client_key is not None
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key go together")
        if target.startswith("unix:"):
            if tls:
                raise ValueError("TLS settings do not apply to a unix socket")
            # grpcio sends the socket path, percent-encoded, as the HTTP/2 :authority; the agent's
            # HTTP/2 stack rejects that as malformed (RST_STREAM PROTOCOL_ERROR), so name the
            # authority as Go and tonic clients do.
            if not any(name == "grpc.default_authority" for name, _ in opts):
                opts.append(("grpc.default_authority", "localhost"))
            self._channel = grpc.insecure_channel(target, options=opts)
        elif tls:
            if insecure:
                raise ValueError("insecure=True contradicts the TLS settings")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(root_ca),
                private_key=_read(client_key),
                certificate_chain=_read(client_cert),
            )
            if server_name is not None:
                opts.append(("grpc.ssl_target_name_override", server_name))
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        elif insecure:
            self._channel = grpc.insecure_channel(target, options=opts)
        else:
            raise ValueError(
                f"{target!r} is a TCP address: give root_ca, client_cert and client_key for "
                "the agent's TLS listener, or insecure=True for a plaintext loopback listener"
            )
        # The generated gRPC module is unannotated (see pyproject.toml's mypy section).
        self._stub = pb_grpc.SignerStub(self._channel)  # type: ignore[no-untyped-call]
        self._timeout = timeout
        self._lock = threading.Lock()
        self._ed25519_keys: Dict[str, bytes] = {}
        #: The version each Ed25519 key signed with last (its JWS ``kid``).
        self._ed25519_versions: Dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _call(self, method: Any, request: Any, timeout: Optional[float]) -> Any:
        try:
            return method(request, timeout=self._timeout if timeout is None else timeout)
        except grpc.RpcError as error:
            raise SignetError._from_rpc(error) from None
        except ValueError as error:
            # grpcio raises ValueError for a call on a closed channel.
            raise SignetError(grpc.StatusCode.CANCELLED, f"the client is closed: {error}") from None

    # -- the RPCs --------------------------------------------------------------------------

    def sign(
        self, key_id: str, message: bytes, *, der: bool = False, timeout: Optional[float] = None
    ) -> bytes:
        """Signs exactly ``message`` with ``key_id`` and returns the signature bytes.

        Ed25519: 64 bytes. ECDSA P-256: 64 bytes r||s (the JWS ES256 form), or ASN.1 DER with
        ``der=True``. HMAC-SHA256: 32 bytes. The signature's CRC32C is checked.
        """
        request = pb.SignRequest(key_id=key_id, message=bytes(message))
        if der:
            request.signature_format = pb.SIGNATURE_FORMAT_DER
        response = self._call(self._stub.Sign, request, timeout)
        self._check_crc(response)
        return bytes(response.signature)

    def sign_versioned(
        self, key_id: str, message: bytes, *, der: bool = False, timeout: Optional[float] = None
    ) -> Signature:
        """:meth:`sign`, returning the signature with the key version that made it."""
        request = pb.SignRequest(key_id=key_id, message=bytes(message))
        if der:
            request.signature_format = pb.SIGNATURE_FORMAT_DER
        response = self._call(self._stub.Sign, request, timeout)
        self._check_crc(response)
        return Signature(
            signature=bytes(response.signature),
            key_id=response.key_id,
            key_version=response.key_version,
            algorithm=_algorithm_name(response.algorithm),
        )

    @staticmethod
    def _check_crc(response: Any) -> None:
        if crc32c(response.signature) != response.signature_crc32c:
            raise SignetError(
                grpc.StatusCode.DATA_LOSS, "the signature's CRC32C does not match: corrupted"
            )

    def verify(
        self,
        key_id: str,
        message: bytes,
        signature: bytes,
        *,
        der: bool = False,
        key_version: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> Verdict:
        """Checks ``signature`` over exactly ``message`` with ``key_id``. HMAC tags are checked
        inside the HSM (nobody here holds the secret); Ed25519 and P-256 (r||s, or DER with
        ``der=True``) against the key's public key. ``key_version`` pins a version; by default
        every verify-enabled version is tried. The CRC32C of both is sent and must be confirmed.
        Needs the ``verify`` grant."""
        message, signature = bytes(message), bytes(signature)
        request = pb.VerifyRequest(
            key_id=key_id,
            message=message,
            signature=signature,
            message_crc32c=crc32c(message),
            signature_crc32c=crc32c(signature),
        )
        if der:
            request.signature_format = pb.SIGNATURE_FORMAT_DER
        if key_version is not None:
            request.key_version = key_version
        r = self._call(self._stub.Verify, request, timeout)
        if not (r.verified_message_crc32c and r.verified_signature_crc32c):
            raise SignetError(
                grpc.StatusCode.DATA_LOSS, "the agent did not confirm the request's CRC32Cs"
            )
        return Verdict(r.valid, r.key_id, r.key_version, _algorithm_name(r.algorithm))

    def public_key(
        self, key_id: str, *, key_version: Optional[int] = None, timeout: Optional[float] = None
    ) -> PublicKey:
        """The public key of an asymmetric key: of ``key_version``, or of the version that signs.
        An HMAC key raises FAILED_PRECONDITION; a version that is not served, NOT_FOUND."""
        request = pb.GetPublicKeyRequest(key_id=key_id)
        if key_version is not None:
            request.key_version = key_version
        r = self._call(self._stub.GetPublicKey, request, timeout)
        return PublicKey(
            key_id=r.key_id,
            algorithm=_algorithm_name(r.algorithm),
            raw=r.raw,
            spki_der=r.spki_der,
            pem=r.pem,
            jwk=json.loads(r.jwk),
            jwk_thumbprint=r.jwk_thumbprint,
            key_version=r.key_version,
            jwks=json.loads(r.jwks) if r.jwks else {},
        )

    def list_keys(self, *, timeout: Optional[float] = None) -> List[KeyInfo]:
        """The keys the agent serves, sorted by id."""
        r = self._call(self._stub.ListKeys, pb.ListKeysRequest(), timeout)
        return [
            KeyInfo(
                k.key_id, _algorithm_name(k.algorithm), k.has_public_key, k.key_version, k.can_sign
            )
            for k in r.keys
        ]

    # -- sqooler ---------------------------------------------------------------------------

    def _ed25519_raw(self, key_id: str, timeout: Optional[float]) -> bytes:
        """The raw public key of an Ed25519 key, looked up once per key id."""
        with self._lock:
            raw = self._ed25519_keys.get(key_id)
        if raw is not None:
            return raw
        key = self.public_key(key_id, timeout=timeout)
        if key.algorithm != "ed25519":
            raise SignetError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"key '{key_id}' is {key.algorithm}; sqooler keys are Ed25519 (alg EdDSA)",
            )
        with self._lock:
            self._ed25519_keys[key_id] = key.raw
            self._ed25519_versions.setdefault(key_id, key.key_version)
        return key.raw

    def public_jwk(self, key_id: str, *, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The public JWK of an Ed25519 key in sqooler's ``JWK`` model form::

            {"x": "<padded base64url>", "key_ops": "verify", "kid": key_id, "d": None,
             "kty": "OKP", "alg": "EdDSA", "crv": "Ed25519"}

        ``sqooler.security.JWK(**client.public_jwk(kid))`` is what a storage provider's
        ``upload_public_key`` takes. Other key types raise FAILED_PRECONDITION.
        """
        # Read fresh each time (not the cache sign_jws uses for its type check), so a JWK that is
        # uploaded after a key was replaced is the new key's.
        key = self.public_key(key_id, timeout=timeout)
        if key.algorithm != "ed25519":
            raise SignetError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"key '{key_id}' is {key.algorithm}; sqooler keys are Ed25519 (alg EdDSA)",
            )
        # A rotated key's JWK carries its version's kid ("id#N"), as its JWSs do.
        kid = key_id if key.key_version <= 1 else f"{key_id}#{key.key_version}"
        return _sqooler.public_jwk(kid, key.raw)

    def sign_jws(
        self, payload: Dict[str, Any], key_id: str, *, timeout: Optional[float] = None
    ) -> Dict[str, Any]:
        """Signs ``payload`` exactly as ``sqooler.security.sign_payload(payload, jwk)`` does, with
        the Ed25519 key ``key_id`` (its sqooler ``kid``), and returns
        ``sign_payload(payload, jwk).model_dump()``::

            {"header": {"alg": "EdDSA", "kid": key_id, "typ": "JWS", "version": "0.1"},
             "payload": <a deep copy of payload>,
             "signature": "<padded base64url of the Ed25519 signature>"}

        For the same key the result is byte-identical to sqooler's (Ed25519 is deterministic),
        and ``JWSDict(**result).verify_signature(public_jwk)`` accepts it. Keys that are not
        Ed25519 raise FAILED_PRECONDITION before anything is signed.
        """
        if not isinstance(payload, dict):
            raise TypeError(f"payload must be a dict, not {type(payload).__name__}")
        self._ed25519_raw(key_id, timeout)
        # The header names the version that signs (``kid`` = key id for version 1, "id#N" for
        # version N), and is signed: a rotation between choosing the kid and signing is seen in
        # the response's key_version, and the JWS is made once more with the new version.
        for _ in range(2):
            with self._lock:
                version = self._ed25519_versions.get(key_id, 1)
            kid = key_id if version <= 1 else f"{key_id}#{version}"
            message = _sqooler.signing_input(payload, kid)
            response = self._call(
                self._stub.Sign, pb.SignRequest(key_id=key_id, message=message), timeout
            )
            self._check_crc(response)
            if response.algorithm != pb.ALGORITHM_ED25519 or len(response.signature) != 64:
                raise SignetError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"key '{key_id}' did not make an Ed25519 signature "
                    f"({_algorithm_name(response.algorithm)})",
                )
            if response.key_version in (0, version):
                return {
                    "header": _sqooler.header(kid),
                    "payload": copy.deepcopy(payload),
                    "signature": _sqooler.encode_signature(response.signature),
                }
            with self._lock:
                self._ed25519_versions[key_id] = response.key_version
        raise SignetError(
            grpc.StatusCode.UNAVAILABLE,
            f"key '{key_id}' changed its signing version during the call; try again",
        )

    # -- SWT3 ------------------------------------------------------------------------------

    def witness_fingerprint(
        self,
        key_id: str,
        tenant_id: str,
        procedure_id: str,
        factor_a: float,
        factor_b: float,
        factor_c: float,
        timestamp_ms: Optional[int] = None,
        agent_id: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
    ) -> WitnessAnchor:
        """Mints an SWT3 anchor fingerprint and signs it with the key ``key_id`` in the HSM: an
        HMAC-SHA256 key, or an ML-DSA-65 key (``signing_algorithm == "ml-dsa-65"``; the signature
        is what ``swt3_ai.signing.verify_mldsa`` accepts with the key's raw public key).

        The arguments after ``key_id`` are those of ``swt3_ai.fingerprint.mint_fingerprint``
        (``timestamp_ms=None`` uses the agent's clock) plus the ``agent_id`` of
        ``swt3_ai.signing.sign_payload``. With the secret that was imported with
        ``signet keys import-hmac``::

            anchor.fingerprint == mint_fingerprint(tenant_id, procedure_id, a, b, c, anchor.timestamp_ms)
            anchor.signature == sign_payload(secret, anchor.fingerprint, agent_id)

        The agent writes each factor as the Python SDK does (``repr``, ties to the even digit,
        as JavaScript's ``String()`` too) and refuses, with INVALID_ARGUMENT naming the factor, one
        that the Python SDK and JavaScript write differently, since no fingerprint would verify
        with both: a non-integral magnitude from 1e-9 up to 1e-4 (``1e-05`` against
        ``0.00001``) or an integer beyond 2**53 that JavaScript shortens (2**60). It refuses other
        bad input with INVALID_ARGUMENT too (empty or ':'-containing ids, non-finite factors or
        magnitudes from 2**63, negative timestamps), and Ed25519 and P-256 keys with
        FAILED_PRECONDITION.
        The fingerprint returned is checked against the Python SDK's formula.
        """
        factors = [float(v) for v in (factor_a, factor_b, factor_c)]
        request = pb.FingerprintRequest(
            key_id=key_id,
            tenant_id=tenant_id,
            procedure_id=procedure_id,
            factor_a=factors[0],
            factor_b=factors[1],
            factor_c=factors[2],
            timestamp_ms=0 if timestamp_ms is None else _positive_timestamp(timestamp_ms),
        )
        if agent_id is not None:
            request.agent_id = agent_id
        r = self._call(self._stub.Fingerprint, request, timeout)
        a, b, c = factors
        expected = _swt3.fingerprint(tenant_id, procedure_id, a, b, c, r.timestamp_ms)
        if r.fingerprint != expected:
            raise SignetError(
                grpc.StatusCode.INTERNAL,
                f"the agent minted {r.fingerprint}, the SWT3 Python SDK's formula gives {expected}",
            )
        # An agent from before ML-DSA does not set the algorithm: its anchors are HMAC-SHA256.
        algorithm = (
            _algorithm_name(r.algorithm)
            if r.algorithm != pb.ALGORITHM_UNSPECIFIED
            else "hmac-sha256"
        )
        return WitnessAnchor(
            r.fingerprint, r.signature, r.timestamp_ms, r.key_id, r.key_version, algorithm
        )


    def verify_fingerprint(
        self,
        key_id: str,
        tenant_id: str,
        procedure_id: str,
        factor_a: float,
        factor_b: float,
        factor_c: float,
        timestamp_ms: int,
        fingerprint: str,
        signature: str,
        agent_id: Optional[str] = None,
        *,
        key_version: Optional[int] = None,
        timeout: Optional[float] = None,
    ) -> AnchorVerdict:
        """Checks an SWT3 anchor as an ingest server receives it: the agent recomputes the
        fingerprint from the fields (the arguments of ``witness_fingerprint``; ``timestamp_ms``
        required) and checks ``signature`` (64 hex characters, what ``sign_payload`` returns)
        over ``"{fingerprint}:{agent_id}"`` (or ``"{fingerprint}"``) with the HMAC key inside
        the HSM. Needs the ``verify`` grant."""
        request = pb.VerifyFingerprintRequest(
            key_id=key_id,
            tenant_id=tenant_id,
            procedure_id=procedure_id,
            factor_a=float(factor_a),
            factor_b=float(factor_b),
            factor_c=float(factor_c),
            timestamp_ms=_positive_timestamp(timestamp_ms),
            fingerprint=fingerprint,
            signature=signature,
        )
        if agent_id is not None:
            request.agent_id = agent_id
        if key_version is not None:
            request.key_version = key_version
        r = self._call(self._stub.VerifyFingerprint, request, timeout)
        return AnchorVerdict(
            valid=r.valid,
            fingerprint_matches=r.fingerprint_matches,
            signature_matches=r.signature_matches,
            expected_fingerprint=r.expected_fingerprint,
            key_id=r.key_id,
            key_version=r.key_version,
        )


def _positive_timestamp(timestamp_ms: int) -> int:
    """An explicit timestamp: the agent reads 0 as "now", so an explicit 0 is refused rather
    than silently replaced (pass None for the agent's clock); the agent refuses negative ones."""
    value = int(timestamp_ms)
    if value == 0:
        raise ValueError("timestamp_ms=0 is ambiguous; pass None to use the agent's clock")
    return value
