"""The SWT3 witness formula as the Python SDK (``swt3-ai``) writes it, used to check the agent.

The agent mints ``SHA-256("WITNESS:{tenant}:{procedure}:{a}:{b}:{c}:{timestamp_ms}")[:12]`` and
writes each factor as the Rust SDK does: an integral value without a decimal point, any other
value as its shortest round-trip decimal *in plain notation*. The Python SDK
(``swt3_ai.fingerprint.mint_fingerprint``) writes non-integral values with ``str(float)``, which
switches to exponent notation below 1e-4 (``1e-07``). For such factors the two SDKs mint
different fingerprints, so the client refuses them before anything is signed instead of returning
an anchor the Python SDK would not reproduce.
"""

from __future__ import annotations

import hashlib


def python_sdk_number(value: float) -> str:
    """How ``swt3_ai.fingerprint.mint_fingerprint`` writes a factor."""
    if value == int(value):
        return str(int(value))
    return str(value)


def agrees_with_agent(value: float) -> bool:
    """Whether the Python SDK writes ``value`` as the agent does (no exponent notation)."""
    text = python_sdk_number(value)
    return "e" not in text and "E" not in text


def fingerprint(
    tenant_id: str,
    procedure_id: str,
    factor_a: float,
    factor_b: float,
    factor_c: float,
    timestamp_ms: int,
) -> str:
    """The anchor fingerprint exactly as the Python SDK mints it."""
    a, b, c = (python_sdk_number(v) for v in (factor_a, factor_b, factor_c))
    text = f"WITNESS:{tenant_id}:{procedure_id}:{a}:{b}:{c}:{timestamp_ms}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
