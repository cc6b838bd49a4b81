"""Fulcio ("keyless") certificates, as containers/image's signature/fulcio_cert.go checks them: the leaf chains
to the configured CA through the `dev.sigstore.cosign/chain` intermediates, every certificate valid at the Rekor
entry's integratedTime (Fulcio certificates live ten minutes), code-signing usage, the OIDC issuer extension
(1.3.6.1.4.1.57264.1.1 and/or .1.8) and the email SAN equal to the policy's. Path building is cryptography's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Optional, Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from .sigstore_format import SignatureRejected, pem_blocks

OID_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")  # the raw issuer URL bytes (deprecated, still issued)
OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")  # a DER UTF8String
_DER_STRING_TAGS = (0x0C, 0x13, 0x16)  # UTF8String, PrintableString, IA5String (what Go's asn1 reads as string)


def load_certificates(data: bytes | str, what: str) -> list[x509.Certificate]:
    """Every PEM block of data as a certificate; any other content is a fault."""
    try:
        return [x509.load_der_x509_certificate(der) for _, der in pem_blocks(data, what)]
    except ValueError as e:
        raise SignatureRejected(f"{what}: invalid certificate: {e}") from None


def _code_signing(policy: Policy, cert: x509.Certificate, eku: Optional[x509.ExtendedKeyUsage]) -> None:
    # Go's x509.Verify with KeyUsages=[CodeSigning]: a certificate without the extension allows any usage.
    if eku is not None and ExtendedKeyUsageOID.CODE_SIGNING not in eku \
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in eku:
        raise ValueError("certificate not valid for code signing")


def _is_ca(policy: Policy, cert: x509.Certificate, bc: x509.BasicConstraints) -> None:
    if not bc.ca:
        raise ValueError("issuer is not a CA")


def require_path_building() -> None:
    """Keyless needs cryptography's custom extension policies (45.0): say so instead of failing obscurely."""
    if not hasattr(PolicyBuilder, "extension_policies"):
        raise SignatureRejected("keyless (fulcio) verification needs the Python package cryptography >= 45")


def _verifier(roots: Sequence[x509.Certificate], when: datetime) -> ClientVerifier:
    ca = (ExtensionPolicy.permit_all()
          .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _is_ca)
          .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _code_signing))
    ee = (ExtensionPolicy.permit_all()
          .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _code_signing))
    return (PolicyBuilder().store(Store(list(roots))).time(when)
            .extension_policies(ca_policy=ca, ee_policy=ee).build_client_verifier())


def issuer_in_certificate(cert: x509.Certificate) -> str:
    """The OIDC issuer Fulcio recorded (v1 and v2 extensions must agree when both are present)."""
    v1 = v2 = None
    for ext in cert.extensions:  # cryptography refuses duplicate extensions when parsing them
        if ext.oid == OID_ISSUER_V1:
            v1 = _utf8(_raw(ext))
        elif ext.oid == OID_ISSUER_V2:
            v2 = _der_string(_raw(ext))
    if v1 is not None and v2 is not None and v1 != v2:
        raise SignatureRejected(f"inconsistent OIDC issuer extension values: v1 {v1!r}, v2 {v2!r}")
    issuer = v1 if v1 is not None else v2
    if issuer is None:
        raise SignatureRejected("Fulcio certificate is missing the issuer extension")
    return issuer


def _raw(ext: x509.Extension[x509.ExtensionType]) -> bytes:
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise SignatureRejected("unexpected OIDC issuer extension")
    return value.value


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureRejected("OIDC issuer v1 extension is not UTF-8") from None


def _der_string(raw: bytes) -> str:
    """The one DER string of the v2 extension; a tag-length-value read, no trailing data."""
    if len(raw) < 2 or raw[0] not in _DER_STRING_TAGS:
        raise SignatureRejected("invalid ASN.1 in OIDC issuer v2 extension")
    length, start = raw[1], 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or len(raw) < 2 + count or raw[2] == 0:
            raise SignatureRejected("invalid ASN.1 in OIDC issuer v2 extension")
        length, start = int.from_bytes(raw[2:2 + count], "big"), 2 + count
        if length < 0x80:
            raise SignatureRejected("invalid ASN.1 in OIDC issuer v2 extension (non-minimal length)")
    if start + length != len(raw):
        raise SignatureRejected("invalid ASN.1 in OIDC issuer v2 extension, trailing data")
    return _utf8(raw[start:])


def verify_fulcio_certificate(roots: Sequence[x509.Certificate], oidc_issuer: str, subject_email: str,
                              when: datetime, cert_pem: str, chain_pem: Optional[str]) -> CertificatePublicKeyTypes:
    """The leaf's public key, once the certificate is proven to be Fulcio's for this issuer and email at `when`."""
    intermediates: list[x509.Certificate] = []
    if chain_pem:
        # containers/image drops the chain's last certificate (the root: only the policy's CA is trusted).
        intermediates = load_certificates(chain_pem, "certificate chain")[:-1]
    leaves = load_certificates(cert_pem, "leaf certificate")
    if len(leaves) != 1:
        raise SignatureRejected(f"expected one certificate in the signature's certificate data, got {len(leaves)}")
    leaf = leaves[0]
    require_path_building()
    try:
        _verifier(roots, when).verify(leaf, intermediates)
    except VerificationError as e:
        raise SignatureRejected(f"certificate not from the Fulcio CA at {when.isoformat()}: {e}") from None

    issuer = issuer_in_certificate(leaf)
    if issuer != oidc_issuer:
        raise SignatureRejected(f"unexpected Fulcio OIDC issuer {issuer!r}")
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        emails = san.get_values_for_type(x509.RFC822Name)
    except x509.ExtensionNotFound:
        emails = []
    if subject_email not in emails:
        raise SignatureRejected(f"required email {subject_email!r} not found (got {emails!r})")
    return leaf.public_key()
