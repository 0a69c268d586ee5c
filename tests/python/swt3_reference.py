"""What swt3-ai 0.7.8 itself computes, for tests/factor_text.rs and tests/fingerprint.rs.

Runs the SDK's own `swt3_ai.fingerprint.mint_fingerprint` and `swt3_ai.signing.sign_payload`,
loaded from the installed package. `import swt3_ai` raises SyntaxError before Python 3.12 (its
`buffer.py` uses a 3.12-only f-string); these two modules use the standard library only, so they
are imported without running the package's `__init__` (as clients/python/tests/conftest.py does).

    python swt3_reference.py repr     stdin: one double per line as 16 hex digits (its bits)
                                      stdout: repr(v) TAB mint_fingerprint("T", "P", v, 1, 1, 1, 1)
    python swt3_reference.py anchor   stdin: one JSON object per line: tenant, procedure, the
                                      factors a, b, c as 16 hex digits each, ts, agent (or null),
                                      secret
                                      stdout: mint_fingerprint(...) TAB sign_payload(...)
"""

import importlib.metadata
import importlib.util
import json
import struct
import sys
import types


def load_sdk():
    version = importlib.metadata.version("swt3-ai")
    if version != "0.7.8":
        sys.exit(f"swt3-ai {version} is installed; these tests compare with 0.7.8")
    try:
        import swt3_ai  # noqa: F401
    except SyntaxError:
        spec = importlib.util.find_spec("swt3_ai")
        package = types.ModuleType("swt3_ai")
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        sys.modules["swt3_ai"] = package
    from swt3_ai.fingerprint import mint_fingerprint
    from swt3_ai.signing import sign_payload

    return mint_fingerprint, sign_payload


def double(hex_bits):
    return struct.unpack(">d", bytes.fromhex(hex_bits))[0]


def main():
    mint_fingerprint, sign_payload = load_sdk()
    mode = sys.argv[1]
    out = []
    if mode == "repr":
        for line in sys.stdin.read().split():
            v = double(line)
            out.append(f"{v!r}\t{mint_fingerprint('T', 'P', v, 1, 1, 1)}")
    elif mode == "anchor":
        for line in sys.stdin.read().splitlines():
            r = json.loads(line)
            a, b, c = (double(r[k]) for k in ("a", "b", "c"))
            fp = mint_fingerprint(r["tenant"], r["procedure"], a, b, c, r["ts"])
            out.append(f"{fp}\t{sign_payload(r['secret'], fp, r['agent'])}")
    else:
        sys.exit(f"unknown mode {mode!r}")
    sys.stdout.write("\n".join(out) + "\n")


main()
