"""The Rekor SignedEntryTimestamp (the `dev.sigstore.cosign/bundle` annotation), as containers/image's
signature/internal/rekor_set.go checks it: a Rekor key's ECDSA signature over the canonical JSON of
{body, integratedTime, logIndex, logID}, and a hashedrekord body naming this very signature, payload hash and
key or certificate. Its integratedTime is when the log saw the signature: the time a Fulcio cert is checked at.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from typing import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .sigstore_format import (
    SignatureRejected,
    b64decode,
    canonical_json,
    exact_fields,
    field,
    loads,
    single_pem,
)

HASHEDREKORD_API_VERSION = "0.0.1"


def verify_rekor_set(rekor_keys: Sequence[ec.EllipticCurvePublicKey], untrusted_set: str,
                     key_or_cert_pem: bytes, base64_signature: str, payload: bytes) -> datetime:
    """Check the SET and that its entry matches; return its integratedTime (UTC)."""
    outer = exact_fields(loads(untrusted_set, "Rekor SET"), ("SignedEntryTimestamp", "Payload"), "Rekor SET")
    set_sig = b64decode(field(outer, "SignedEntryTimestamp", str, "SignedEntryTimestamp"), "SignedEntryTimestamp")
    canonical = canonical_json(outer["Payload"])
    if not any(_ecdsa_ok(k, set_sig, canonical) for k in rekor_keys):
        raise SignatureRejected("cryptographic signature verification of Rekor SET failed")

    # Parse the verified canonical bytes, not what was delivered (as containers/image does).
    entry = exact_fields(loads(canonical, "Rekor SET payload"), ("body", "integratedTime", "logIndex", "logID"),
                         "Rekor SET payload")
    integrated = field(entry, "integratedTime", int, "integratedTime")
    field(entry, "logIndex", int, "logIndex")
    field(entry, "logID", str, "logID")
    body = loads(b64decode(field(entry, "body", str, "body"), "Rekor SET body"), "Rekor SET body")
    if not isinstance(body, dict) or body.get("kind") != "hashedrekord":
        raise SignatureRejected("Rekor SET body is not a hashedrekord entry")
    if "apiVersion" not in body:
        raise SignatureRejected("missing Rekor SET Payload API version")
    if body["apiVersion"] != HASHEDREKORD_API_VERSION:
        raise SignatureRejected(f"unsupported Rekor SET Payload hashedrekord version {body['apiVersion']!r}")
    spec = field(body, "spec", dict, "spec")

    # == the key or certificate
    signature = field(spec, "signature", dict, "signature")
    public_key = field(signature, "publicKey", dict, "signature.publicKey")
    rekor_pem = b64decode(field(public_key, "content", str, "signature.publicKey.content"),
                          "signature.publicKey.content")
    _, rekor_der = single_pem(rekor_pem, "publicKey in Rekor SET")
    _, ours_der = single_pem(key_or_cert_pem, "public key or certificate of the signature")
    if rekor_der != ours_der:
        raise SignatureRejected("publicKey in Rekor SET does not match")

    # == the signature
    rekor_sig = b64decode(field(signature, "content", str, "signature.content"), "signature.content")
    if rekor_sig != b64decode(base64_signature, "signature"):
        raise SignatureRejected("signature in Rekor SET does not match")

    # == the payload
    digest = field(field(spec, "data", dict, "data"), "hash", dict, "data.hash")
    algorithm = field(digest, "algorithm", str, "data.hash.algorithm")
    if algorithm != "sha256":
        raise SignatureRejected(f"unexpected data.hash.algorithm value {algorithm!r}")
    hex_value = field(digest, "value", str, "data.hash.value")
    if not re.fullmatch(r"(?:[0-9a-fA-F]{2})*", hex_value):
        raise SignatureRejected("invalid data.hash.value field in hashedrekord")
    if bytes.fromhex(hex_value) != hashlib.sha256(payload).digest():
        raise SignatureRejected("payload in Rekor SET does not match")

    try:
        return datetime.fromtimestamp(integrated, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise SignatureRejected(f"integratedTime {integrated} out of range") from None


def _ecdsa_ok(key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except InvalidSignature:
        return False
