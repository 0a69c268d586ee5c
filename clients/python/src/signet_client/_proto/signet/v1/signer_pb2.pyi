from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Algorithm(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ALGORITHM_UNSPECIFIED: _ClassVar[Algorithm]
    ALGORITHM_ED25519: _ClassVar[Algorithm]
    ALGORITHM_ECDSA_P256_SHA256: _ClassVar[Algorithm]
    ALGORITHM_HMAC_SHA256: _ClassVar[Algorithm]
    ALGORITHM_ML_DSA_65: _ClassVar[Algorithm]

class SignatureFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIGNATURE_FORMAT_UNSPECIFIED: _ClassVar[SignatureFormat]
    SIGNATURE_FORMAT_RAW: _ClassVar[SignatureFormat]
    SIGNATURE_FORMAT_DER: _ClassVar[SignatureFormat]
ALGORITHM_UNSPECIFIED: Algorithm
ALGORITHM_ED25519: Algorithm
ALGORITHM_ECDSA_P256_SHA256: Algorithm
ALGORITHM_HMAC_SHA256: Algorithm
ALGORITHM_ML_DSA_65: Algorithm
SIGNATURE_FORMAT_UNSPECIFIED: SignatureFormat
SIGNATURE_FORMAT_RAW: SignatureFormat
SIGNATURE_FORMAT_DER: SignatureFormat

class ItemError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class SignBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[SignRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[SignRequest, _Mapping]]] = ...) -> None: ...

class SignBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SignBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SignBatchResult, _Mapping]]] = ...) -> None: ...

class SignBatchResult(_message.Message):
    __slots__ = ("signature", "error")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    signature: SignResponse
    error: ItemError
    def __init__(self, signature: _Optional[_Union[SignResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class FingerprintBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[FingerprintRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[FingerprintRequest, _Mapping]]] = ...) -> None: ...

class FingerprintBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[FingerprintBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[FingerprintBatchResult, _Mapping]]] = ...) -> None: ...

class FingerprintBatchResult(_message.Message):
    __slots__ = ("fingerprint", "error")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    fingerprint: FingerprintResponse
    error: ItemError
    def __init__(self, fingerprint: _Optional[_Union[FingerprintResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class VerifyBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[VerifyRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[VerifyRequest, _Mapping]]] = ...) -> None: ...

class VerifyBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VerifyBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[VerifyBatchResult, _Mapping]]] = ...) -> None: ...

class VerifyBatchResult(_message.Message):
    __slots__ = ("verdict", "error")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    verdict: VerifyResponse
    error: ItemError
    def __init__(self, verdict: _Optional[_Union[VerifyResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class VerifyFingerprintBatchRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[VerifyFingerprintRequest]
    def __init__(self, items: _Optional[_Iterable[_Union[VerifyFingerprintRequest, _Mapping]]] = ...) -> None: ...

class VerifyFingerprintBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VerifyFingerprintBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[VerifyFingerprintBatchResult, _Mapping]]] = ...) -> None: ...

class VerifyFingerprintBatchResult(_message.Message):
    __slots__ = ("verdict", "error")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    verdict: VerifyFingerprintResponse
    error: ItemError
    def __init__(self, verdict: _Optional[_Union[VerifyFingerprintResponse, _Mapping]] = ..., error: _Optional[_Union[ItemError, _Mapping]] = ...) -> None: ...

class SignRequest(_message.Message):
    __slots__ = ("key_id", "message", "signature_format", "message_crc32c")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_CRC32C_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    message: bytes
    signature_format: SignatureFormat
    message_crc32c: int
    def __init__(self, key_id: _Optional[str] = ..., message: _Optional[bytes] = ..., signature_format: _Optional[_Union[SignatureFormat, str]] = ..., message_crc32c: _Optional[int] = ...) -> None: ...

class SignResponse(_message.Message):
    __slots__ = ("signature", "key_id", "algorithm", "signature_format", "signature_crc32c", "verified_message_crc32c", "key_version")
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_CRC32C_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_MESSAGE_CRC32C_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    signature: bytes
    key_id: str
    algorithm: Algorithm
    signature_format: SignatureFormat
    signature_crc32c: int
    verified_message_crc32c: bool
    key_version: int
    def __init__(self, signature: _Optional[bytes] = ..., key_id: _Optional[str] = ..., algorithm: _Optional[_Union[Algorithm, str]] = ..., signature_format: _Optional[_Union[SignatureFormat, str]] = ..., signature_crc32c: _Optional[int] = ..., verified_message_crc32c: bool = ..., key_version: _Optional[int] = ...) -> None: ...

class GetPublicKeyRequest(_message.Message):
    __slots__ = ("key_id", "key_version")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    key_version: int
    def __init__(self, key_id: _Optional[str] = ..., key_version: _Optional[int] = ...) -> None: ...

class GetPublicKeyResponse(_message.Message):
    __slots__ = ("key_id", "algorithm", "raw", "spki_der", "pem", "jwk", "jwk_thumbprint", "key_version", "jwks")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    SPKI_DER_FIELD_NUMBER: _ClassVar[int]
    PEM_FIELD_NUMBER: _ClassVar[int]
    JWK_FIELD_NUMBER: _ClassVar[int]
    JWK_THUMBPRINT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    JWKS_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    algorithm: Algorithm
    raw: bytes
    spki_der: bytes
    pem: str
    jwk: str
    jwk_thumbprint: str
    key_version: int
    jwks: str
    def __init__(self, key_id: _Optional[str] = ..., algorithm: _Optional[_Union[Algorithm, str]] = ..., raw: _Optional[bytes] = ..., spki_der: _Optional[bytes] = ..., pem: _Optional[str] = ..., jwk: _Optional[str] = ..., jwk_thumbprint: _Optional[str] = ..., key_version: _Optional[int] = ..., jwks: _Optional[str] = ...) -> None: ...

class FingerprintRequest(_message.Message):
    __slots__ = ("key_id", "tenant_id", "procedure_id", "factor_a", "factor_b", "factor_c", "timestamp_ms", "agent_id")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_ID_FIELD_NUMBER: _ClassVar[int]
    FACTOR_A_FIELD_NUMBER: _ClassVar[int]
    FACTOR_B_FIELD_NUMBER: _ClassVar[int]
    FACTOR_C_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    tenant_id: str
    procedure_id: str
    factor_a: float
    factor_b: float
    factor_c: float
    timestamp_ms: int
    agent_id: str
    def __init__(self, key_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., procedure_id: _Optional[str] = ..., factor_a: _Optional[float] = ..., factor_b: _Optional[float] = ..., factor_c: _Optional[float] = ..., timestamp_ms: _Optional[int] = ..., agent_id: _Optional[str] = ...) -> None: ...

class FingerprintResponse(_message.Message):
    __slots__ = ("fingerprint", "signature", "timestamp_ms", "key_id", "key_version", "algorithm")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    signature: str
    timestamp_ms: int
    key_id: str
    key_version: int
    algorithm: Algorithm
    def __init__(self, fingerprint: _Optional[str] = ..., signature: _Optional[str] = ..., timestamp_ms: _Optional[int] = ..., key_id: _Optional[str] = ..., key_version: _Optional[int] = ..., algorithm: _Optional[_Union[Algorithm, str]] = ...) -> None: ...

class ListKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[KeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[KeyInfo, _Mapping]]] = ...) -> None: ...

class KeyInfo(_message.Message):
    __slots__ = ("key_id", "algorithm", "has_public_key", "key_version", "can_sign")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    HAS_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CAN_SIGN_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    algorithm: Algorithm
    has_public_key: bool
    key_version: int
    can_sign: bool
    def __init__(self, key_id: _Optional[str] = ..., algorithm: _Optional[_Union[Algorithm, str]] = ..., has_public_key: bool = ..., key_version: _Optional[int] = ..., can_sign: bool = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("key_id", "message", "signature", "signature_format", "key_version", "message_crc32c", "signature_crc32c")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_CRC32C_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_CRC32C_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    message: bytes
    signature: bytes
    signature_format: SignatureFormat
    key_version: int
    message_crc32c: int
    signature_crc32c: int
    def __init__(self, key_id: _Optional[str] = ..., message: _Optional[bytes] = ..., signature: _Optional[bytes] = ..., signature_format: _Optional[_Union[SignatureFormat, str]] = ..., key_version: _Optional[int] = ..., message_crc32c: _Optional[int] = ..., signature_crc32c: _Optional[int] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("valid", "key_id", "key_version", "algorithm", "verified_message_crc32c", "verified_signature_crc32c")
    VALID_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_MESSAGE_CRC32C_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_SIGNATURE_CRC32C_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    key_id: str
    key_version: int
    algorithm: Algorithm
    verified_message_crc32c: bool
    verified_signature_crc32c: bool
    def __init__(self, valid: bool = ..., key_id: _Optional[str] = ..., key_version: _Optional[int] = ..., algorithm: _Optional[_Union[Algorithm, str]] = ..., verified_message_crc32c: bool = ..., verified_signature_crc32c: bool = ...) -> None: ...

class VerifyFingerprintRequest(_message.Message):
    __slots__ = ("key_id", "tenant_id", "procedure_id", "factor_a", "factor_b", "factor_c", "timestamp_ms", "agent_id", "fingerprint", "signature", "key_version")
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PROCEDURE_ID_FIELD_NUMBER: _ClassVar[int]
    FACTOR_A_FIELD_NUMBER: _ClassVar[int]
    FACTOR_B_FIELD_NUMBER: _ClassVar[int]
    FACTOR_C_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    key_id: str
    tenant_id: str
    procedure_id: str
    factor_a: float
    factor_b: float
    factor_c: float
    timestamp_ms: int
    agent_id: str
    fingerprint: str
    signature: str
    key_version: int
    def __init__(self, key_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., procedure_id: _Optional[str] = ..., factor_a: _Optional[float] = ..., factor_b: _Optional[float] = ..., factor_c: _Optional[float] = ..., timestamp_ms: _Optional[int] = ..., agent_id: _Optional[str] = ..., fingerprint: _Optional[str] = ..., signature: _Optional[str] = ..., key_version: _Optional[int] = ...) -> None: ...

class VerifyFingerprintResponse(_message.Message):
    __slots__ = ("valid", "fingerprint_matches", "signature_matches", "key_id", "key_version", "expected_fingerprint")
    VALID_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_MATCHES_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_MATCHES_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    KEY_VERSION_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    fingerprint_matches: bool
    signature_matches: bool
    key_id: str
    key_version: int
    expected_fingerprint: str
    def __init__(self, valid: bool = ..., fingerprint_matches: bool = ..., signature_matches: bool = ..., key_id: _Optional[str] = ..., key_version: _Optional[int] = ..., expected_fingerprint: _Optional[str] = ...) -> None: ...
