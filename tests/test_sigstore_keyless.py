"""Keyless (Fulcio + Rekor) cosign signatures (issue 20): containers/image's real fixture made against the public
Fulcio and Rekor, and our own test CA (root + intermediate) and Rekor key, with variants breaking one rule each."""
from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from support.cosign import (
    BUNDLE,
    CERTIFICATE,
    CHAIN,
    SIGNATURE,
    Layer,
    RekorLog,
    TestCA,
    keyless_layer,
    new_key,
    read_dir_signature,
    sign_blob,
)

from hocker_fetch.sigstore import (
    CosignSignature,
    FulcioTrust,
    SignatureRejected,
    SigstoreRequirement,
    validate_requirement_keys,
    verify_cosign,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sigstore"
DIGEST = "sha256:" + "ab" * 32
REF = "localhost:5000/ns/app"
ISSUER, EMAIL = "https://issuer.example.com", "dev@example.com"
REAL_ISSUER, REAL_EMAIL = "https://github.com/login/oauth", "mitr@redhat.com"


def sig(layer: Layer) -> CosignSignature:
    return CosignSignature(payload=layer.payload, annotations=layer.annotations)


def fulcio(ca_pem: bytes, rekor_pem: bytes, issuer: str = ISSUER, email: str = EMAIL) -> SigstoreRequirement:
    return SigstoreRequirement(fulcio=FulcioTrust(ca_pem=ca_pem, oidc_issuer=issuer, subject_email=email),
                               rekor_public_keys=(rekor_pem,))


def rejected(layer: Layer, req: SigstoreRequirement) -> str:
    with pytest.raises(SignatureRejected) as e:
        verify_cosign(sig(layer), req)
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture(scope="module")
def log() -> RekorLog:
    return RekorLog()


# -- the real fixture --------------------------------------------------------------------------------------------

def real() -> tuple[Layer, SigstoreRequirement]:
    return (read_dir_signature(FIXTURES / "fulcio-rekor-signature-1"),
            fulcio((FIXTURES / "fulcio_v1.crt.pem").read_bytes(), (FIXTURES / "rekor.pub").read_bytes(),
                   REAL_ISSUER, REAL_EMAIL))


def test_real_keyless_signature_accepted_although_its_certificate_expired_long_ago() -> None:
    layer, req = real()
    validate_requirement_keys(req)
    got = verify_cosign(sig(layer), req)
    assert got.manifest_digest == "sha256:0489474da8ea22426ece86ace6c1c0026ab2fd3cdfbbd62b7e94650266c37d9a"
    assert got.docker_reference == "192.168.64.2:5000/cosign-signed/fulcio-rekor-1"
    assert got.signer == f"fulcio issuer={REAL_ISSUER} email={REAL_EMAIL}"


def test_real_keyless_variants_each_refused(ca: TestCA, log: RekorLog) -> None:
    layer, req = real()
    ca_pem, rekor_pem = req.fulcio.ca_pem, req.rekor_public_keys[0]  # type: ignore[union-attr]
    assert "issuer" in rejected(layer, fulcio(ca_pem, rekor_pem, "https://accounts.google.com", REAL_EMAIL))
    assert "email" in rejected(layer, fulcio(ca_pem, rekor_pem, REAL_ISSUER, "someone@redhat.com"))
    assert "Rekor SET" in rejected(layer, fulcio(ca_pem, log.public_pem, REAL_ISSUER, REAL_EMAIL))
    assert "CA" in rejected(layer, fulcio(ca.root_pem, rekor_pem, REAL_ISSUER, REAL_EMAIL))
    no_chain = Layer(layer.payload, {k: v for k, v in layer.annotations.items() if k != CHAIN})
    assert "CA" in rejected(no_chain, req)
    for missing in (BUNDLE, CERTIFICATE, SIGNATURE):
        assert f"missing {missing}" in rejected(
            Layer(layer.payload, {k: v for k, v in layer.annotations.items() if k != missing}), req)
    # the SET's integratedTime moved into the certificate's lifetime's past: the SET no longer verifies
    bundle = json.loads(layer.annotations[BUNDLE])
    bundle["Payload"]["integratedTime"] -= 3600
    moved = Layer(layer.payload, {**layer.annotations, BUNDLE: json.dumps(bundle)})
    assert "Rekor SET failed" in rejected(moved, req)
    # another payload under the same signature and SET
    assert rejected(Layer(layer.payload.replace(b"fulcio-rekor-1", b"fulcio-rekor-2"), layer.annotations), req)


# -- our own CA and log ------------------------------------------------------------------------------------------

def test_own_keyless_signature_accepted(ca: TestCA, log: RekorLog) -> None:
    got = verify_cosign(sig(keyless_layer(ca, log, DIGEST, REF)), fulcio(ca.root_pem, log.public_pem))
    assert (got.manifest_digest, got.docker_reference) == (DIGEST, REF)
    assert got.signer == f"fulcio issuer={ISSUER} email={EMAIL}"


@pytest.mark.parametrize("kind", ["p384", "ed25519", "rsa"])
def test_own_keyless_other_leaf_key_types(ca: TestCA, log: RekorLog, kind: str) -> None:
    verify_cosign(sig(keyless_layer(ca, log, DIGEST, REF, key=new_key(kind))), fulcio(ca.root_pem, log.public_pem))


def test_certificate_from_another_ca(ca: TestCA, log: RekorLog) -> None:
    other = TestCA("another-fulcio")
    assert "not from the Fulcio CA" in rejected(keyless_layer(other, log, DIGEST, REF),
                                                fulcio(ca.root_pem, log.public_pem))
    # a chain annotation carrying our intermediate does not help a leaf of another CA
    layer = keyless_layer(other, log, DIGEST, REF)
    layer.annotations[CHAIN] = ca.chain_pem
    assert "not from the Fulcio CA" in rejected(layer, fulcio(ca.root_pem, log.public_pem))


def test_another_issuer_and_another_email(ca: TestCA, log: RekorLog) -> None:
    layer = keyless_layer(ca, log, DIGEST, REF, issuer="https://token.actions.githubusercontent.com")
    assert "unexpected Fulcio OIDC issuer" in rejected(layer, fulcio(ca.root_pem, log.public_pem))
    layer = keyless_layer(ca, log, DIGEST, REF, email="intruder@example.com")
    assert "required email" in rejected(layer, fulcio(ca.root_pem, log.public_pem))


def test_validity_is_judged_at_integrated_time_not_now(ca: TestCA, log: RekorLog) -> None:
    req = fulcio(ca.root_pem, log.public_pem)
    now = int(time.time())
    key = new_key()
    # valid 10 minutes, two years ago, and logged within them: accepted today
    old = now - 2 * 365 * 86400
    cert = ca.issue(key, EMAIL, ISSUER, datetime.fromtimestamp(old - 60, tz=timezone.utc))
    verify_cosign(sig(keyless_layer(ca, log, DIGEST, REF, integrated_time=old, cert=cert, key=key)), req)
    # expired before it was logged
    late = keyless_layer(ca, log, DIGEST, REF, integrated_time=old + 3600, cert=cert, key=key)
    assert "not from the Fulcio CA" in rejected(late, req)
    # logged before it was valid
    early = keyless_layer(ca, log, DIGEST, REF, integrated_time=old - 3600, cert=cert, key=key)
    assert "not from the Fulcio CA" in rejected(early, req)


def test_set_signed_by_another_key(ca: TestCA, log: RekorLog) -> None:
    layer = keyless_layer(ca, log, DIGEST, REF)
    forged = RekorLog()
    layer.annotations[BUNDLE] = forged.bundle(layer.annotations[SIGNATURE], layer.annotations[CERTIFICATE].encode(),
                                              layer.payload, int(time.time()))
    assert "cryptographic signature verification of Rekor SET failed" in rejected(
        layer, fulcio(ca.root_pem, log.public_pem))
    # either of two Rekor keys may have signed it
    two = SigstoreRequirement(fulcio=fulcio(ca.root_pem, log.public_pem).fulcio,
                              rekor_public_keys=(log.public_pem, forged.public_pem))
    verify_cosign(sig(layer), two)


def _entry_variant(ca: TestCA, log: RekorLog, change: str) -> Layer:
    layer = keyless_layer(ca, log, DIGEST, REF)
    a = layer.annotations
    body = log.body(a[SIGNATURE], a[CERTIFICATE].encode(), layer.payload)
    spec = body["spec"]
    if change == "signature":
        spec["signature"]["content"] = base64.b64encode(sign_blob(new_key(), layer.payload)).decode()
    elif change == "payload":
        spec["data"]["hash"]["value"] = "00" * 32
    elif change == "certificate":
        other = ca.issue(new_key(), EMAIL, ISSUER, datetime.now(timezone.utc) - timedelta(minutes=1))
        spec["signature"]["publicKey"]["content"] = base64.b64encode(
            other.public_bytes(serialization.Encoding.PEM)).decode()
    elif change == "algorithm":
        spec["data"]["hash"]["algorithm"] = "sha512"
    elif change == "kind":
        body["kind"] = "rekord"
    elif change == "apiVersion":
        body["apiVersion"] = "0.0.2"
    elif change == "hex":
        spec["data"]["hash"]["value"] = "zz" * 32
    a[BUNDLE] = log.bundle(a[SIGNATURE], b"", layer.payload, int(time.time()), body=body)
    return layer


@pytest.mark.parametrize("change", ["signature", "payload", "certificate", "algorithm", "kind", "apiVersion", "hex"])
def test_entry_not_matching_this_signature(ca: TestCA, log: RekorLog, change: str) -> None:
    rejected(_entry_variant(ca, log, change), fulcio(ca.root_pem, log.public_pem))


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_either_issuer_extension_alone_is_enough(ca: TestCA, log: RekorLog, which: str) -> None:
    key = new_key()
    cert = ca.issue(key, EMAIL, ISSUER, datetime.now(timezone.utc) - timedelta(minutes=1), issuer_ext=which)
    verify_cosign(sig(keyless_layer(ca, log, DIGEST, REF, cert=cert, key=key)), fulcio(ca.root_pem, log.public_pem))


def test_missing_or_inconsistent_issuer_and_missing_email(ca: TestCA, log: RekorLog) -> None:
    from cryptography import x509
    from support.cosign import OID_ISSUER_V1, der_utf8
    req = fulcio(ca.root_pem, log.public_pem)
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    key = new_key()
    cert = ca.issue(key, EMAIL, None, start)
    assert "missing the issuer" in rejected(keyless_layer(ca, log, DIGEST, REF, cert=cert, key=key), req)
    cert = ca.issue(key, None, ISSUER, start)
    assert "required email" in rejected(keyless_layer(ca, log, DIGEST, REF, cert=cert, key=key), req)
    # v1 says one issuer, v2 another
    cert = ca.issue(key, EMAIL, "https://other.example.com", start, issuer_ext="v2")
    mixed = x509.load_pem_x509_certificate(cert.public_bytes(serialization.Encoding.PEM))
    builder = (x509.CertificateBuilder().subject_name(mixed.subject).issuer_name(mixed.issuer)
               .public_key(key.public_key()).serial_number(mixed.serial_number)
               .not_valid_before(mixed.not_valid_before_utc).not_valid_after(mixed.not_valid_after_utc))
    for ext in mixed.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    builder = builder.add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, ISSUER.encode()), False)
    from cryptography.hazmat.primitives import hashes
    cert = builder.sign(ca.intermediate_key, hashes.SHA384())
    assert "inconsistent" in rejected(keyless_layer(ca, log, DIGEST, REF, cert=cert, key=key), req)
    assert der_utf8("x") == b"\x0c\x01x"


def test_code_signing_usage(ca: TestCA, log: RekorLog) -> None:
    req = fulcio(ca.root_pem, log.public_pem)
    start = datetime.now(timezone.utc) - timedelta(minutes=1)
    key = new_key()
    server = ca.issue(key, EMAIL, ISSUER, start, eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    assert "not from the Fulcio CA" in rejected(keyless_layer(ca, log, DIGEST, REF, cert=server, key=key), req)


def test_certificate_annotation_holds_one_certificate(ca: TestCA, log: RekorLog) -> None:
    layer = keyless_layer(ca, log, DIGEST, REF)
    layer.annotations[CERTIFICATE] += ca.chain_pem
    rejected(layer, fulcio(ca.root_pem, log.public_pem))


def test_fulcio_requirement_faults() -> None:
    ca, log = TestCA(), RekorLog()
    with pytest.raises(SignatureRejected, match="Rekor public key"):
        validate_requirement_keys(SigstoreRequirement(fulcio=FulcioTrust(ca.root_pem, ISSUER, EMAIL)))
    with pytest.raises(SignatureRejected, match="Fulcio CA"):
        validate_requirement_keys(fulcio(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                         log.public_pem))
    with pytest.raises(SignatureRejected, match="oidcIssuer"):
        validate_requirement_keys(fulcio(ca.root_pem, log.public_pem, issuer=""))
    with pytest.raises(SignatureRejected, match="Rekor"):
        verify_cosign(sig(keyless_layer(ca, log, DIGEST, REF)),
                      SigstoreRequirement(fulcio=FulcioTrust(ca.root_pem, ISSUER, EMAIL)))


def test_old_cryptography_is_named_not_crashed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """A nixpkgs with cryptography < 45 lacks PolicyBuilder.extension_policies: one line at policy load."""
    from cryptography.x509 import verification

    from hocker_fetch import sigstore_fulcio
    ca, log = TestCA(), RekorLog()
    monkeypatch.delattr(verification.PolicyBuilder, "extension_policies", raising=False)
    if hasattr(sigstore_fulcio.PolicyBuilder, "extension_policies"):
        pytest.skip("the Rust class attribute cannot be removed here")
    with pytest.raises(SignatureRejected, match="cryptography >= 45"):
        validate_requirement_keys(fulcio(ca.root_pem, log.public_pem))
    with pytest.raises(SignatureRejected, match="cryptography >= 45"):
        verify_cosign(sig(keyless_layer(ca, log, DIGEST, REF)), fulcio(ca.root_pem, log.public_pem))
