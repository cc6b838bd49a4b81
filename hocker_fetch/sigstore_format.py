"""Strict decoders for the untrusted parts of a cosign signature: JSON, base64, PEM, RFC 8785 canonical JSON.

Every fault is a SignatureRejected with one line: signatures come from the registry, so they are hostile input.
The rules follow containers/image (signature/internal/json.go: no duplicate keys, exact field sets), stricter
where Go's encoding/json is lax (see docs/signatures-crypto.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any, Mapping, Sequence, Union

from .errors import one_line


class SignatureRejected(Exception):
    """One signature does not verify; str() is a one-line reason (no traceback, no secret)."""

    def __init__(self, reason: str) -> None:
        super().__init__(one_line(reason)[:500])


def _pairs(items: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            raise SignatureRejected(f"duplicate key {key!r} in JSON")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise SignatureRejected(f"invalid JSON value {name}")


def loads(data: bytes | str, what: str) -> Any:
    """Parse JSON (UTF-8 only, no duplicate keys, no NaN/Infinity)."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)
    except SignatureRejected as e:
        raise SignatureRejected(f"{what}: {e}") from None
    except (ValueError, RecursionError) as e:
        raise SignatureRejected(f"{what} is not valid JSON: {e}") from None


def exact_fields(value: Any, fields: Sequence[str], what: str) -> Mapping[str, Any]:
    """An object with exactly these keys (containers/image's ParanoidUnmarshalJSONObjectExactFields)."""
    if not isinstance(value, dict):
        raise SignatureRejected(f"{what}: JSON object expected")
    for key in value:
        if key not in fields:
            raise SignatureRejected(f"{what}: unknown key {key!r}")
    for key in fields:
        if key not in value:
            raise SignatureRejected(f"{what}: key {key!r} missing")
    return value


def field(obj: Any, key: str, kind: Union[type, tuple[type, ...]], what: str) -> Any:
    """obj[key], which must be present and of this JSON type (bool is not an int)."""
    if not isinstance(obj, dict) or key not in obj:
        raise SignatureRejected(f"missing {what!r} field")
    value = obj[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise SignatureRejected(f"{what!r} has the wrong JSON type")
    return value


def b64decode(text: str, what: str) -> bytes:
    """Standard base64 with padding; like Go's StdEncoding, CR and LF are ignored."""
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError) as e:
        raise SignatureRejected(f"{what} is not valid base64: {e}") from None


_PEM_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]*?)-----END \1-----(?:\r?\n|\Z)")


def pem_blocks(data: bytes | str, what: str) -> list[tuple[str, bytes]]:
    """All PEM blocks of data, which must hold nothing else but whitespace between them (no headers)."""
    try:
        text = data.decode("ascii") if isinstance(data, bytes) else data
    except UnicodeDecodeError:
        raise SignatureRejected(f"{what} is not PEM") from None
    text = text.strip()
    blocks: list[tuple[str, bytes]] = []
    pos = 0
    while pos < len(text):
        m = _PEM_BLOCK.match(text, pos)
        if m is None:
            raise SignatureRejected(f"{what} is not PEM" if not blocks else f"{what} has trailing data")
        blocks.append((m.group(1), b64decode(m.group(2), what)))
        pos = m.end()
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
    return blocks


def single_pem(data: bytes | str, what: str) -> tuple[str, bytes]:
    """Exactly one PEM block and nothing after it (containers/image: pem.Decode with an empty rest)."""
    blocks = pem_blocks(data, what)
    if len(blocks) != 1:
        raise SignatureRejected(f"{what}: expected one PEM block, got {len(blocks)}")
    return blocks[0]


# RFC 8785 (JSON Canonicalization Scheme), as github.com/cyberphone/json-canonicalization does it for the Rekor
# SET. Numbers: only integers a float64 holds exactly (Rekor's integratedTime and logIndex); anything else is
# refused rather than risk formatting it differently from ECMAScript.
_MAX_SAFE = 2**53


def canonical_json(value: Any) -> bytes:
    return _canon(value).encode("utf-8")


def _canon(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        if abs(value) >= _MAX_SAFE:
            raise SignatureRejected("Rekor SET payload: number out of the canonical JSON range")
        return str(int(value))
    if isinstance(value, float):
        raise SignatureRejected("Rekor SET payload: fractional numbers are not supported")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise SignatureRejected("Rekor SET payload: invalid Unicode string") from None
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_canon(v) for v in value) + "]"
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: k.encode("utf-16-be", "surrogatepass"))
        return "{" + ",".join(_canon(k) + ":" + _canon(value[k]) for k in keys) + "}"
    raise SignatureRejected("Rekor SET payload: unexpected JSON value")
