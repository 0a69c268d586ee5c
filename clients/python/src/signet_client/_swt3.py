"""The SWT3 witness formula as the Python SDK (``swt3-ai``) writes it, used to check the agent.

The agent mints ``SHA-256("WITNESS:{tenant}:{procedure}:{a}:{b}:{c}:{timestamp_ms}")[:12]`` and
writes each factor as ``swt3_ai.fingerprint.mint_fingerprint`` does: ``str(int(v))`` for an
integral value, ``str(v)`` (which is ``repr``: the shortest round-trip digits, ties to the even
digit) for any other. It refuses, with INVALID_ARGUMENT naming the factor, the factors that
JavaScript's ``String()`` (the TypeScript SDK, the SWT3 endpoint) writes differently, so every
fingerprint it signs is what this module computes.
"""

from __future__ import annotations

import hashlib


def python_sdk_number(value: float) -> str:
    """How ``swt3_ai.fingerprint.mint_fingerprint`` writes a factor."""
    if value == int(value):
        return str(int(value))
    return str(value)


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
