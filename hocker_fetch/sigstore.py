"""Verify one cosign (sigstore) signature the way containers/image does (signature/policy_eval_sigstore.go,
signature/internal/sigstore_payload.go): a public key's signature over the simple-signing payload, or a Fulcio
certificate proven by a Rekor SET; then the payload's digest and docker-reference, which the caller (the
policy) matches against the image. Only `cryptography` does cryptography here.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.x509.verification import VerificationError

from .sigstore_format import SignatureRejected, b64decode, exact_fields, field, loads, pem_blocks
from .sigstore_fulcio import load_certificates, require_path_building, verify_fulcio_certificate
from .sigstore_rekor import verify_rekor_set

__all__ = ["SignatureRejected", "CosignSignature", "FulcioTrust", "SigstoreRequirement", "VerifiedPayload",
           "verify_cosign", "validate_requirement_keys", "key_fingerprint",
           "SIGNATURE_ANNOTATION", "CERTIFICATE_ANNOTATION", "CHAIN_ANNOTATION", "BUNDLE_ANNOTATION",
           "PAYLOAD_MEDIA_TYPE", "SIGNATURE_TYPE"]

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CERTIFICATE_ANNOTATION = "dev.sigstore.cosign/certificate"
CHAIN_ANNOTATION = "dev.sigstore.cosign/chain"
BUNDLE_ANNOTATION = "dev.sigstore.cosign/bundle"
PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_TYPE = "cosign container image signature"

PublicKey = Union[ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey]
_CURVES = (ec.SECP224R1, ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)  # what Go's ParsePKIXPublicKey reads
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha384:[a-f0-9]{96}|sha512:[a-f0-9]{128}")


@dataclass(frozen=True)
class CosignSignature:
    """One layer of the `sha256-<hex>.sig` manifest: the payload blob (already checked against its digest)."""

    payload: bytes
    annotations: Mapping[str, str]


@dataclass(frozen=True)
class FulcioTrust:
    ca_pem: bytes  # caPath/caData contents (one or more PEM certificates)
    oidc_issuer: str
    subject_email: str


@dataclass(frozen=True)
class SigstoreRequirement:
    """One `sigstoreSigned` policy requirement, its keys already read from files or base64."""

    public_keys: Sequence[bytes] = ()  # PEM public keys; () with fulcio
    fulcio: Optional[FulcioTrust] = None
    rekor_public_keys: Sequence[bytes] = ()  # PEM; required with fulcio; optional with keys (then a SET is required)


@dataclass(frozen=True)
class VerifiedPayload:
    manifest_digest: str  # critical.image.docker-manifest-digest
    docker_reference: str  # critical.identity.docker-reference
    signer: str  # "key SHA256:<fingerprint>" or "fulcio issuer=<issuer> email=<email>", for the lock


def _public_key(pem: bytes, what: str) -> PublicKey:
    """The first PEM block, "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY" (PKCS #1), as sigstore's cryptoutils reads it."""
    blocks = pem_blocks(pem, what)
    if not blocks:
        raise SignatureRejected(f"{what}: no PEM block")
    kind, der = blocks[0]
    if kind not in ("PUBLIC KEY", "RSA PUBLIC KEY"):
        raise SignatureRejected(f"{what}: unknown public key PEM type {kind!r}")
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm) as e:
        raise SignatureRejected(f"{what}: invalid public key: {e}") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _CURVES):
            raise SignatureRejected(f"{what}: unsupported curve {key.curve.name}")
        return key
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise SignatureRejected(f"{what}: RSA key of {key.key_size} bits is too small")
        return key
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    raise SignatureRejected(f"{what}: unsupported public key type")


def _spki_der(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(pem: bytes) -> str:
    """`SHA256:<unpadded base64>` of the key's SubjectPublicKeyInfo DER (ssh-keygen's style)."""
    digest = hashlib.sha256(_spki_der(_public_key(pem, "public key"))).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _rekor_keys(req: SigstoreRequirement) -> list[ec.EllipticCurvePublicKey]:
    keys = []
    for i, pem in enumerate(req.rekor_public_keys, 1):
        key = _public_key(pem, f"Rekor public key {i}")
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise SignatureRejected(f"Rekor public key {i} is not using ECDSA")
        keys.append(key)
    return keys


def validate_requirement_keys(req: SigstoreRequirement) -> None:
    """Refuse a requirement whose keys or CA cannot be used, before any network traffic (policy loading)."""
    if bool(req.public_keys) == (req.fulcio is not None):
        raise SignatureRejected("sigstoreSigned needs exactly one of public keys or fulcio")
    for i, pem in enumerate(req.public_keys, 1):
        _public_key(pem, f"public key {i}")
    _rekor_keys(req)
    if req.fulcio is not None:
        if not req.rekor_public_keys:
            raise SignatureRejected("fulcio requires a Rekor public key")
        if not req.fulcio.oidc_issuer or not req.fulcio.subject_email:
            raise SignatureRejected("fulcio requires oidcIssuer and subjectEmail")
        require_path_building()
        if not load_certificates(req.fulcio.ca_pem, "Fulcio CA"):
            raise SignatureRejected("Fulcio CA: no certificate")


def _ecdsa_der(signature: bytes) -> bytes:
    """sigstore's ECDSAVerifier also takes IEEE P1363 (r || s) when the bytes are not an ASN.1 signature."""
    try:
        decode_dss_signature(signature)
        return signature
    except ValueError:
        pass
    if not signature or len(signature) > 132 or len(signature) % 2:
        raise InvalidSignature()
    half = len(signature) // 2
    return encode_dss_signature(int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big"))


def _verify_blob(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    """sigstore's LoadVerifier(key, SHA256): ECDSA (ASN.1 or P1363) over SHA-256, RSA PKCS #1 v1.5, pure Ed25519."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(_ecdsa_der(signature), payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
        else:
            key.verify(signature, payload)
        return True
    except InvalidSignature:
        return False


def parse_payload(payload: bytes) -> tuple[str, str]:
    """(docker-manifest-digest, docker-reference) of a simple-signing payload (sigstore_payload.go's rules)."""
    top = exact_fields(loads(payload, "signature payload"), ("critical", "optional"), "signature payload")
    optional = top["optional"]
    if optional is not None:  # cosign writes "optional": null without annotations
        if not isinstance(optional, dict):
            raise SignatureRejected("signature payload: optional is not a JSON object")
        if "creator" in optional:
            field(optional, "creator", str, "optional.creator")
        if "timestamp" in optional:
            ts = field(optional, "timestamp", (int, float), "optional.timestamp")
            if isinstance(ts, float) and not ts.is_integer():
                raise SignatureRejected("field optional.timestamp is not an integer")
    critical = exact_fields(top["critical"], ("type", "image", "identity"), "signature payload critical")
    kind = field(critical, "type", str, "critical.type")
    if kind != SIGNATURE_TYPE:
        raise SignatureRejected(f"unrecognized signature type {kind!r}")
    image = exact_fields(critical["image"], ("docker-manifest-digest",), "critical.image")
    digest = field(image, "docker-manifest-digest", str, "docker-manifest-digest")
    if not _DIGEST.fullmatch(digest):
        raise SignatureRejected(f"invalid docker-manifest-digest value {digest!r}")
    identity = exact_fields(critical["identity"], ("docker-reference",), "critical.identity")
    return digest, field(identity, "docker-reference", str, "docker-reference")


def _annotation(sig: CosignSignature, key: str) -> str:
    value = sig.annotations.get(key)
    if not isinstance(value, str):
        raise SignatureRejected(f"missing {key} annotation")
    return value


def _candidates(sig: CosignSignature, req: SigstoreRequirement, b64sig: str) -> list[tuple[PublicKey, str]]:
    """The keys the payload signature may be checked with, and how each would be named in the lock."""
    rekor = _rekor_keys(req)
    if req.fulcio is not None:
        if not rekor:
            raise SignatureRejected("Fulcio CA specified without a Rekor public key")
        bundle = _annotation(sig, BUNDLE_ANNOTATION)
        cert = _annotation(sig, CERTIFICATE_ANNOTATION)
        chain = sig.annotations.get(CHAIN_ANNOTATION)
        when = verify_rekor_set(rekor, bundle, cert.encode(), b64sig, sig.payload)
        roots = load_certificates(req.fulcio.ca_pem, "Fulcio CA")
        key = verify_fulcio_certificate(roots, req.fulcio.oidc_issuer, req.fulcio.subject_email, when, cert,
                                        chain if isinstance(chain, str) else None)
        if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)):
            raise SignatureRejected("Fulcio certificate has an unsupported key type")
        return [(key, f"fulcio issuer={req.fulcio.oidc_issuer} email={req.fulcio.subject_email}")]
    if not req.public_keys:
        raise SignatureRejected("a public key or Fulcio must be specified")
    keys = [(_public_key(pem, f"public key {i}"), key_fingerprint(pem)) for i, pem in enumerate(req.public_keys, 1)]
    if not rekor:
        return [(k, f"key {fp}") for k, fp in keys]
    bundle = _annotation(sig, BUNDLE_ANNOTATION)
    failures = []
    for key, fp in keys:
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        try:
            verify_rekor_set(rekor, bundle, pem, b64sig, sig.payload)
        except SignatureRejected as e:
            failures.append(str(e))
            continue
        return [(key, f"key {fp} rekor")]  # a SET names one key
    raise SignatureRejected("no public key verified against the Rekor SET: " + "; ".join(failures))


def _verify(sig: CosignSignature, req: SigstoreRequirement) -> VerifiedPayload:
    b64sig = _annotation(sig, SIGNATURE_ANNOTATION)
    candidates = _candidates(sig, req, b64sig)
    raw = b64decode(b64sig, "signature")
    for key, signer in candidates:
        if _verify_blob(key, raw, sig.payload):
            digest, reference = parse_payload(sig.payload)
            return VerifiedPayload(manifest_digest=digest, docker_reference=reference, signer=signer)
    raise SignatureRejected("cryptographic signature verification failed: not signed by an accepted key")


def verify_cosign(sig: CosignSignature, req: SigstoreRequirement) -> VerifiedPayload:
    """Verify one signature's crypto (key, or Fulcio cert + Rekor SET) and parse its payload.

    Does NOT match the digest or the identity against the image: the policy does that with the result.
    Raises SignatureRejected for anything invalid or malformed, never another exception.
    """
    try:
        if not isinstance(sig.payload, bytes) or not isinstance(sig.annotations, Mapping):
            raise SignatureRejected("malformed signature")
        return _verify(sig, req)
    except SignatureRejected:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, RecursionError, UnicodeError,
            UnsupportedAlgorithm, VerificationError) as e:
        # A decoder fault this module did not foresee: still one line, still a refusal.
        raise SignatureRejected(f"malformed signature: {type(e).__name__}: {e}") from None
