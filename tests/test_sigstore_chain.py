"""The Fulcio chain rules that Go's x509.Verify applies for containers/image (KeyUsages: code signing), checked
on our own CA: cryptography's path building must give the same verdicts."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Optional

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ObjectIdentifier
from support.cosign import RekorLog, TestCA, keyless_layer, new_key

from hocker_fetch.sigstore import CosignSignature, FulcioTrust, SignatureRejected, SigstoreRequirement, verify_cosign

ISSUER, EMAIL = "https://issuer.example.com", "dev@example.com"
START, END = datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2040, 1, 1, tzinfo=timezone.utc)
CERT_SIGN = x509.KeyUsage(False, False, False, False, False, True, True, False, False)


def _resign(cert: x509.Certificate, key: object, signer: object, drop: tuple[type, ...] = (),
            add: Optional[list[tuple[x509.ExtensionType, bool]]] = None) -> x509.Certificate:
    b = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())  # type: ignore[attr-defined]
         .not_valid_before(cert.not_valid_before_utc).not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        if not isinstance(ext.value, drop):
            b = b.add_extension(ext.value, ext.critical)
    for value, critical in add or []:
        b = b.add_extension(value, critical)
    return b.sign(signer, hashes.SHA384())  # type: ignore[arg-type]


def verdict(ca: TestCA, leaf: Optional[x509.Certificate] = None, key: object = None) -> str:
    log = RekorLog()
    layer = keyless_layer(ca, log, "sha256:" + "ab" * 32, "localhost/app", cert=leaf, key=key,  # type: ignore[arg-type]
                          integrated_time=int(time.time()))
    req = SigstoreRequirement(fulcio=FulcioTrust(ca.root_pem, ISSUER, EMAIL), rekor_public_keys=(log.public_pem,))
    try:
        verify_cosign(CosignSignature(layer.payload, layer.annotations), req)
        return "accepted"
    except SignatureRejected as e:
        assert "\n" not in str(e)
        return "refused"


def _intermediate(ca: TestCA, bc: x509.BasicConstraints, eku: Optional[list[ObjectIdentifier]]) -> None:
    b = (x509.CertificateBuilder().subject_name(ca.intermediate.subject).issuer_name(ca.root.subject)
         .public_key(ca.intermediate_key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(START).not_valid_after(END)
         .add_extension(bc, critical=True).add_extension(CERT_SIGN, critical=True))
    if eku is not None:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    ca.intermediate = b.sign(ca.root_key, hashes.SHA384())


@pytest.mark.parametrize("bc,eku,expected", [
    (x509.BasicConstraints(ca=True, path_length=0), [ExtendedKeyUsageOID.CODE_SIGNING], "accepted"),
    (x509.BasicConstraints(ca=True, path_length=0), None, "accepted"),  # no EKU: any usage
    (x509.BasicConstraints(ca=True, path_length=0), [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], "accepted"),
    (x509.BasicConstraints(ca=True, path_length=0), [ExtendedKeyUsageOID.SERVER_AUTH], "refused"),
    (x509.BasicConstraints(ca=False, path_length=None), [ExtendedKeyUsageOID.CODE_SIGNING], "refused"),
])
def test_intermediate_rules(bc: x509.BasicConstraints, eku: Optional[list[ObjectIdentifier]], expected: str) -> None:
    ca = TestCA()
    _intermediate(ca, bc, eku)
    assert verdict(ca) == expected


def test_root_path_length_zero_forbids_the_intermediate() -> None:
    ca = TestCA()
    ca.root = _resign(ca.root, ca.root_key, ca.root_key, drop=(x509.BasicConstraints,),
                      add=[(x509.BasicConstraints(ca=True, path_length=0), True)])
    _intermediate(ca, x509.BasicConstraints(ca=True, path_length=0), None)
    assert verdict(ca) == "refused"


def test_leaf_without_eku_accepted_with_unknown_critical_extension_refused() -> None:
    ca = TestCA()
    key = new_key()
    leaf = ca.issue(key, EMAIL, ISSUER, datetime.fromtimestamp(time.time() - 60, tz=timezone.utc))
    assert verdict(ca, leaf, key) == "accepted"
    assert verdict(ca, _resign(leaf, key, ca.intermediate_key, drop=(x509.ExtendedKeyUsage,)), key) == "accepted"
    odd = _resign(leaf, key, ca.intermediate_key,
                  add=[(x509.UnrecognizedExtension(ObjectIdentifier("1.2.3.4"), b"\x05\x00"), True)])
    assert verdict(ca, odd, key) == "refused"
    # signed by the root directly, skipping the intermediate the chain annotation names: still the CA's
    direct = _resign(leaf, key, ca.root_key)
    assert verdict(ca, direct, key) == "refused"  # its issuer name is the intermediate's: the signature fails
