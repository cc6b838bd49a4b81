"""Hostile signature artifacts (issue 20), with hypothesis: mutated or random annotations, payloads, certificates
and bundles. Nothing that differs from what was signed is ever accepted, and verify_cosign raises nothing but
SignatureRejected (one line)."""
from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from support.cosign import (
    BUNDLE,
    CERTIFICATE,
    CHAIN,
    SIGNATURE,
    Layer,
    RekorLog,
    TestCA,
    keyed_layer,
    keyless_layer,
    new_key,
    payload_json,
    public_pem,
)

from hocker_fetch.sigstore import (
    CosignSignature,
    FulcioTrust,
    SignatureRejected,
    SigstoreRequirement,
    VerifiedPayload,
    verify_cosign,
)

DIGEST = "sha256:" + "ab" * 32
REF = "localhost:5000/ns/app"
ANNOTATIONS = (SIGNATURE, CERTIFICATE, CHAIN, BUNDLE)


class World:
    """One CA, Rekor log and key for the whole module (hypothesis examples share them)."""

    def __init__(self) -> None:
        self.ca, self.log, self.key = TestCA(), RekorLog(), new_key()
        self.keyless = keyless_layer(self.ca, self.log, DIGEST, REF)
        self.keyed = keyed_layer(self.key, DIGEST, REF, rekor=self.log)
        self.fulcio = SigstoreRequirement(fulcio=FulcioTrust(self.ca.root_pem, "https://issuer.example.com",
                                                             "dev@example.com"),
                                          rekor_public_keys=(self.log.public_pem,))
        self.keys = SigstoreRequirement(public_keys=(public_pem(self.key),))
        self.keys_rekor = SigstoreRequirement(public_keys=(public_pem(self.key),),
                                              rekor_public_keys=(self.log.public_pem,))
        self.reqs = (self.fulcio, self.keys, self.keys_rekor)


@lru_cache(maxsize=1)
def world() -> World:
    return World()


def attempt(layer: Layer, req: SigstoreRequirement) -> VerifiedPayload | None:
    """verify_cosign's verdict; any exception but a one-line SignatureRejected fails the test."""
    try:
        return verify_cosign(CosignSignature(layer.payload, layer.annotations), req)
    except SignatureRejected as e:
        assert str(e) and "\n" not in str(e)
        return None


def _mutate(data: bytes, op: str, pos: int, junk: bytes) -> bytes:
    if not data:
        return junk
    i = pos % len(data)
    if op == "flip":
        return data[:i] + bytes([data[i] ^ (1 << (pos % 8))]) + data[i + 1:]
    if op == "delete":
        return data[:i] + data[i + 1 + len(junk):]
    if op == "insert":
        return data[:i] + junk + data[i:]
    if op == "truncate":
        return data[:i]
    return junk  # replace


mutations = st.tuples(st.sampled_from(("payload",) + ANNOTATIONS), st.sampled_from(
    ("flip", "delete", "insert", "truncate", "replace")), st.integers(0, 10**6), st.binary(max_size=12))


def mutated(base: Layer, muts: list[tuple[str, str, int, bytes]]) -> Layer:
    payload, ann = base.payload, dict(base.annotations)
    for target, op, pos, junk in muts:
        if target == "payload":
            payload = _mutate(payload, op, pos, junk)
        elif op == "truncate" and pos % 7 == 0:
            ann.pop(target, None)  # sometimes the annotation is simply gone
        else:
            ann[target] = _mutate(ann.get(target, "").encode(), op, pos, junk).decode("utf-8", "replace")
    return Layer(payload, ann)


def _same_meaning(layer: Layer, base: Layer) -> bool:
    """What a verified signature is about: the payload bytes and the signature bytes themselves."""
    try:
        same_sig = base64.b64decode(layer.annotations[SIGNATURE].replace("\n", "")) == \
            base64.b64decode(base.annotations[SIGNATURE])
    except ValueError:
        return False
    return layer.payload == base.payload and same_sig


@settings(max_examples=300)
@given(which=st.sampled_from(["keyless", "keyed"]), muts=st.lists(mutations, min_size=1, max_size=3))
def test_mutated_signatures_never_accepted_as_something_else(which: str, muts: list[Any]) -> None:
    w = world()
    base = w.keyless if which == "keyless" else w.keyed
    layer = mutated(base, muts)
    for req in w.reqs:
        got = attempt(layer, req)
        if got is not None:
            assert _same_meaning(layer, base), (muts, req)
            assert (got.manifest_digest, got.docker_reference) == (DIGEST, REF)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=200)
@given(doc=json_values, where=st.sampled_from(["payload", "optional", "critical", "image", "identity"]))
def test_random_payload_structures_signed_by_the_key(doc: Any, where: str) -> None:
    """Correctly signed, hostile structure: the payload parser refuses or returns strings, nothing else."""
    w = world()
    base = json.loads(payload_json(DIGEST, REF))
    if where == "payload":
        base = doc
    elif where in ("optional", "critical"):
        base[where] = doc
    else:
        base["critical"][where] = doc
    raw = json.dumps(base).encode()
    got = attempt(keyed_layer(w.key, DIGEST, REF, payload=raw), w.keys)
    if got is not None:
        assert got.manifest_digest.startswith("sha") and isinstance(got.docker_reference, str)
        assert isinstance(base, dict) and base["critical"]["type"] == "cosign container image signature"


@settings(max_examples=200)
@given(annotations=st.dictionaries(st.sampled_from(ANNOTATIONS) | st.text(max_size=8),
                                   st.text(max_size=200) | st.sampled_from(["", "{}", "null", "[]"]), max_size=5),
       payload=st.binary(max_size=200))
def test_random_annotations_and_payloads_refused(annotations: dict[str, str], payload: bytes) -> None:
    for req in world().reqs:
        assert attempt(Layer(payload, annotations), req) is None


@settings(max_examples=200)
@given(bundle=json_values, cert_blob=st.binary(max_size=300), which=st.sampled_from([BUNDLE, CERTIFICATE, CHAIN]))
def test_random_bundles_and_certificates_refused(bundle: Any, cert_blob: bytes, which: str) -> None:
    w = world()
    ann = dict(w.keyless.annotations)
    if which == BUNDLE:
        ann[BUNDLE] = json.dumps({"SignedEntryTimestamp": base64.b64encode(cert_blob).decode(), "Payload": bundle})
    else:
        pem = "-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(cert_blob).decode() + "-----END CERTIFICATE-----\n"
        ann[which] = pem if which == CERTIFICATE else pem + w.ca.chain_pem
    layer = Layer(w.keyless.payload, ann)
    got = attempt(layer, w.fulcio)
    # a random chain prefix is dropped as the chain's "root" only when it is last; ours is first, so all refused
    assert got is None
