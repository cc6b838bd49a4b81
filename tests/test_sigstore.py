"""Keyed cosign signatures (issue 20): containers/image's real fixtures, our own keys of every supported type,
and variants that break one rule each. No network: verify_cosign is pure."""
from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import pytest
from support.cosign import (
    BUNDLE,
    SIGNATURE,
    Layer,
    RekorLog,
    keyed_layer,
    new_key,
    payload_json,
    public_pem,
    read_dir_signature,
)

from hocker_fetch.sigstore import (
    CosignSignature,
    SignatureRejected,
    SigstoreRequirement,
    key_fingerprint,
    validate_requirement_keys,
    verify_cosign,
)

FIXTURES = Path(__file__).parent / "fixtures" / "sigstore"
DIGEST = "sha256:" + "ab" * 32
REF = "localhost:5000/ns/app"


def sig(layer: Layer) -> CosignSignature:
    return CosignSignature(payload=layer.payload, annotations=layer.annotations)


def keys(*pems: bytes, rekor: tuple[bytes, ...] = ()) -> SigstoreRequirement:
    return SigstoreRequirement(public_keys=pems, rekor_public_keys=rekor)


def rejected(layer: Layer, req: SigstoreRequirement) -> str:
    with pytest.raises(SignatureRejected) as e:
        verify_cosign(sig(layer), req)
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


# -- containers/image's fixture, made by real cosign ---------------------------------------------------------

def test_real_cosign_keyed_signature_accepted_by_its_key() -> None:
    got = verify_cosign(sig(read_dir_signature(FIXTURES / "keyed-signature-1")),
                        keys((FIXTURES / "cosign.pub").read_bytes()))
    assert got.manifest_digest == "sha256:634a8f35b5f16dcf4aaa0822adc0b1964bb786fca12f6831de8ddc45e5986a00"
    assert got.docker_reference == "192.168.64.2:5000/cosign-signed-single-sample"
    assert got.signer == "key " + key_fingerprint((FIXTURES / "cosign.pub").read_bytes())


def test_real_cosign_keyed_signature_refused_by_another_key() -> None:
    layer = read_dir_signature(FIXTURES / "keyed-signature-1")
    assert "not signed by an accepted key" in rejected(layer, keys((FIXTURES / "cosign2.pub").read_bytes()))
    # two keys of which one signed (policy_eval_sigstore_test.go's keyPaths case)
    got = verify_cosign(sig(layer), keys((FIXTURES / "cosign2.pub").read_bytes(),
                                         (FIXTURES / "cosign.pub").read_bytes()))
    assert got.signer == "key " + key_fingerprint((FIXTURES / "cosign.pub").read_bytes())


def test_real_fixture_manifest_digest_is_what_the_payload_names() -> None:
    """The copied manifest is the one the real signature covers (so pol20 can serve both)."""
    import hashlib
    layer = read_dir_signature(FIXTURES / "keyed-signature-1")
    manifest = (FIXTURES / "keyed-manifest.json").read_bytes()
    assert json.loads(layer.payload)["critical"]["image"]["docker-manifest-digest"] == \
        "sha256:" + hashlib.sha256(manifest).hexdigest()


# -- our own keys ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["p256", "p384", "ed25519", "rsa"])
def test_own_keys_each_type_accepts_its_signature_and_refuses_tampering(kind: str) -> None:
    key = new_key(kind)
    layer = keyed_layer(key, DIGEST, REF)
    got = verify_cosign(sig(layer), keys(public_pem(key)))
    assert (got.manifest_digest, got.docker_reference) == (DIGEST, REF)
    assert got.signer.startswith("key SHA256:")

    raw = bytearray(base64.b64decode(layer.annotations[SIGNATURE]))
    raw[len(raw) // 2] ^= 0x01
    tampered = Layer(layer.payload, {SIGNATURE: base64.b64encode(bytes(raw)).decode()})
    assert "not signed by an accepted key" in rejected(tampered, keys(public_pem(key)))

    other_payload = Layer(payload_json("sha256:" + "cd" * 32, REF), dict(layer.annotations))
    rejected(other_payload, keys(public_pem(key)))
    assert "not signed by an accepted key" in rejected(layer, keys(public_pem(new_key(kind))))


def test_rsa_pkcs1_public_key_block_is_read_like_sigstore() -> None:
    from cryptography.hazmat.primitives import serialization
    key = new_key("rsa")
    pkcs1 = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    verify_cosign(sig(keyed_layer(key, DIGEST, REF)), keys(pkcs1))


def test_signature_over_another_digest_still_reports_that_digest() -> None:
    """verify_cosign does not match the image: it reports what was signed, the policy compares."""
    key = new_key()
    got = verify_cosign(sig(keyed_layer(key, "sha256:" + "cd" * 32, "example.com/other/repo")), keys(public_pem(key)))
    assert got.manifest_digest == "sha256:" + "cd" * 32 and got.docker_reference == "example.com/other/repo"


def test_missing_signature_annotation() -> None:
    key = new_key()
    layer = keyed_layer(key, DIGEST, REF)
    assert "missing dev.cosignproject.cosign/signature" in rejected(Layer(layer.payload, {}), keys(public_pem(key)))


# -- the payload's rules (sigstore_payload.go), each broken once, each correctly signed --------------------------

def _payload(path: str, value: object) -> bytes:
    """A valid payload with the key at path ("critical/image/docker-manifest-digest") set, or deleted (KeyError)."""
    doc = json.loads(payload_json(DIGEST, REF))
    *parents, last = path.split("/")
    node = doc
    for p in parents:
        node = node[p]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return json.dumps(doc).encode()


GOOD_OPTIONALS = [None, {}, {"creator": "cosign", "timestamp": 1674247893}, {"x": [1, {"y": None}]},
                  {"timestamp": 1.0e9}]
BAD_PAYLOADS = {
    "wrong type": _payload("critical/type", "atomic container signature"),
    "extra top key": _payload("extra", 1),
    "no optional": _payload("optional", KeyError),
    "optional not an object": _payload("optional", []),
    "creator not a string": _payload("optional", {"creator": 7}),
    "fractional timestamp": _payload("optional", {"timestamp": 1.5}),
    "extra critical key": _payload("critical/extra", "x"),
    "no identity": _payload("critical/identity", KeyError),
    "extra identity key": _payload("critical/identity/x", "y"),
    "reference not a string": _payload("critical/identity/docker-reference", None),
    "bad digest": _payload("critical/image/docker-manifest-digest", "sha256:ABC"),
    "unknown algorithm": _payload("critical/image/docker-manifest-digest", "md5:" + "0" * 32),
    "extra image key": _payload("critical/image/x", "y"),
    "duplicate key": payload_json(DIGEST, REF).replace(b'"optional"', b'"critical":{},"optional"'),
    "not JSON": b"\xff\xfe{}",
    "NaN": payload_json(DIGEST, REF).replace(b'"optional":null', b'"optional":{"timestamp":NaN}'),
    "trailing data": payload_json(DIGEST, REF) + b"{}",
    "a list": b"[]",
}


def test_payload_key_helper_spells_hyphens() -> None:
    assert json.loads(BAD_PAYLOADS["bad digest"])["critical"]["image"]["docker-manifest-digest"] == "sha256:ABC"


@pytest.mark.parametrize("optional", GOOD_OPTIONALS, ids=repr)
def test_payload_optional_section_accepted(optional: object) -> None:
    key = new_key()
    got = verify_cosign(sig(keyed_layer(key, DIGEST, REF, payload=payload_json(DIGEST, REF, optional))),
                        keys(public_pem(key)))
    assert got.manifest_digest == DIGEST


@pytest.mark.parametrize("name", sorted(BAD_PAYLOADS))
def test_payload_breaking_one_rule_refused_although_signed(name: str) -> None:
    key = new_key()
    rejected(keyed_layer(key, DIGEST, REF, payload=BAD_PAYLOADS[name]), keys(public_pem(key)))


# -- keys with a Rekor key: the SET is required and must name the key --------------------------------------------

def test_keyed_with_rekor_requires_a_set_naming_the_key() -> None:
    key, log = new_key(), RekorLog()
    req = keys(public_pem(key), rekor=(log.public_pem,))
    got = verify_cosign(sig(keyed_layer(key, DIGEST, REF, rekor=log)), req)
    assert got.signer.endswith(" rekor")
    assert "missing dev.sigstore.cosign/bundle" in rejected(keyed_layer(key, DIGEST, REF), req)
    assert "Rekor SET" in rejected(keyed_layer(key, DIGEST, REF, rekor=RekorLog()), req)
    # a SET naming another key
    other = new_key()
    layer = keyed_layer(key, DIGEST, REF)
    layer.annotations[BUNDLE] = log.bundle(layer.annotations[SIGNATURE], public_pem(other), layer.payload)
    assert "does not match" in rejected(layer, req)


# -- the requirement's own keys (policy-level faults) ------------------------------------------------------------

@pytest.mark.parametrize("bad", [b"", b"not a key", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                 b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
                                 b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_unusable_key_is_a_policy_fault(bad: bytes) -> None:
    with pytest.raises(SignatureRejected) as e:
        validate_requirement_keys(keys(bad))
    assert "public key 1" in str(e.value) and "\n" not in str(e.value)


def test_rekor_key_must_be_ecdsa_and_requirement_needs_one_source() -> None:
    with pytest.raises(SignatureRejected, match="not using ECDSA"):
        validate_requirement_keys(keys(public_pem(new_key()), rekor=(public_pem(new_key("ed25519")),)))
    with pytest.raises(SignatureRejected, match="exactly one"):
        validate_requirement_keys(SigstoreRequirement())
    validate_requirement_keys(keys(public_pem(new_key("rsa")), public_pem(new_key("ed25519"))))


def test_small_rsa_key_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(SignatureRejected, match="too small"):
        validate_requirement_keys(keys(public_pem(small)))


def test_fingerprint_is_stable_and_names_the_key() -> None:
    pem = (FIXTURES / "cosign.pub").read_bytes()
    assert key_fingerprint(pem) == key_fingerprint(pem.replace(b"\n", b"\r\n"))
    assert key_fingerprint(pem) != key_fingerprint((FIXTURES / "cosign2.pub").read_bytes())
    assert replace(keys(pem), public_keys=()).public_keys == ()


@pytest.mark.parametrize("kind,size", [("p256", 32), ("p384", 48)])
def test_ecdsa_p1363_signature_accepted_like_sigstore(kind: str, size: int) -> None:
    """sigstore's ECDSAVerifier takes r || s when the bytes are not ASN.1 (containers/image inherits it)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    key = new_key(kind)
    layer = keyed_layer(key, DIGEST, REF)
    r, s = decode_dss_signature(base64.b64decode(layer.annotations[SIGNATURE]))
    raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    p1363 = Layer(layer.payload, {SIGNATURE: base64.b64encode(raw).decode()})
    assert verify_cosign(sig(p1363), keys(public_pem(key))).manifest_digest == DIGEST
    flipped = raw[:-1] + bytes([raw[-1] ^ 1])
    rejected(Layer(layer.payload, {SIGNATURE: base64.b64encode(flipped).decode()}), keys(public_pem(key)))
    rejected(Layer(layer.payload, {SIGNATURE: base64.b64encode(raw + b"\0").decode()}), keys(public_pem(key)))
