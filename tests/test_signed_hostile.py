"""Hostile signature attachments (hypothesis): whatever a registry serves under `sha256-<hex>.sig`, the policy
never accepts an image its key did not sign, and nothing but a one-line refusal (PolicyRefused) comes out.

The registry side here is an in-process stand-in for RegistryClient's two calls (get_manifest, get_blob_bytes):
hypothesis needs thousands of documents, which a real registry would store only if they were valid manifests.
The real-registry path is covered by test_signed.py.
"""
from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from support.cosign import SIGNATURE, keyed_layer, new_key, public_pem, sig_manifest

from hocker_fetch.errors import HockerError, NotFoundError, PolicyRefused
from hocker_fetch.policy import parse_policy
from hocker_fetch.reference import parse_reference
from hocker_fetch.registriesd import RegistriesD
from hocker_fetch.signatures import Gate

DIGEST = "sha256:" + "ab" * 32
REF = "127.0.0.1:5000/library/hello:1"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
KEY = new_key()
OTHER = new_key()


class StandIn:
    """What the registry serves: one manifest under the attachment tag, blobs by digest."""

    def __init__(self, manifest: bytes, media_type: str, blobs: dict[str, bytes]) -> None:
        self.manifest, self.media_type, self.blobs = manifest, media_type, blobs

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        return self.manifest, self.media_type, "sha256:" + "0" * 64

    def get_blob_bytes(self, repository: str, descriptor, limit: int = 0) -> bytes:
        if descriptor.digest not in self.blobs:
            raise NotFoundError(f"blob {descriptor.digest} not found")
        return self.blobs[descriptor.digest]


def check(tmp: Path):
    key_file = tmp / "key.pub"
    key_file.write_bytes(public_pem(KEY))
    policy = parse_policy(json.dumps({"default": [{"type": "sigstoreSigned", "keyPath": str(key_file)}]}).encode(),
                          str(tmp / "policy.json"))
    return Gate(policy, RegistriesD(default=True)).for_image(parse_reference(REF))


def verdict(tmp: Path, served: StandIn) -> str:
    try:
        check(tmp).verify(served, "library/hello", DIGEST)  # type: ignore[arg-type]
    except PolicyRefused as exc:
        assert "\n" not in str(exc)
        return "refused"
    except HockerError as exc:  # a transport-level fault of the stand-in: never an accept
        assert isinstance(exc, NotFoundError), exc
        return "error"
    return "accepted"


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                                       max_size=4), max_leaves=20)


@settings(max_examples=150)
@given(doc=json_values, media_type=st.sampled_from(["application/vnd.oci.image.manifest.v1+json",
                                                    "application/json", ""]))
def test_any_manifest_is_refused_never_a_crash(tmp_path_factory, doc, media_type):
    tmp = tmp_path_factory.mktemp("h")
    assert verdict(tmp, StandIn(json.dumps(doc).encode(), media_type, {})) == "refused"


layer_fields = st.fixed_dictionaries({}, optional={
    "mediaType": st.sampled_from([SIMPLESIGNING, "application/octet-stream"]) | st.text(max_size=5),
    "digest": st.sampled_from(["sha256:" + "1" * 64, "md5:x", ""]) | st.integers(),
    "size": st.integers(-5, 10**12) | st.text(max_size=3),
    "annotations": st.dictionaries(st.sampled_from([SIGNATURE, "x"]), st.text(max_size=30) | st.integers(),
                                   max_size=2) | st.text(max_size=3),
})


@settings(max_examples=150)
@given(layers=st.lists(layer_fields, max_size=4), payload=st.binary(max_size=300))
def test_any_layers_and_payloads_are_refused(tmp_path_factory, layers, payload):
    tmp = tmp_path_factory.mktemp("h")
    blobs = {"sha256:" + "1" * 64: payload}
    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": layers}
    assert verdict(tmp, StandIn(json.dumps(doc).encode(), "application/vnd.oci.image.manifest.v1+json",
                                blobs)) == "refused"


@settings(max_examples=100)
@given(flip=st.integers(0, 10**6), by_other=st.booleans(), reference=st.sampled_from([REF, "other/repo:1", ""]))
def test_mutated_real_signatures(tmp_path_factory, flip, by_other, reference):
    """A genuine signature by the wrong key, or with one payload byte flipped, or naming another image."""
    tmp = tmp_path_factory.mktemp("h")
    layer = keyed_layer(OTHER if by_other else KEY, DIGEST, reference)
    payload = bytearray(layer.payload)
    mutated = reference == REF and not by_other
    if mutated:
        payload[flip % len(payload)] ^= 1 << (flip % 8)
    layer = type(layer)(bytes(payload), layer.annotations)
    manifest, blobs = sig_manifest([layer])
    assert verdict(tmp, StandIn(manifest, "application/vnd.oci.image.manifest.v1+json", blobs)) == "refused"


def test_the_genuine_signature_is_accepted(tmp_path):
    """The control: the same path accepts the unmodified signature (so the refusals above mean something)."""
    manifest, blobs = sig_manifest([keyed_layer(KEY, DIGEST, REF)])
    assert verdict(tmp_path, StandIn(manifest, "application/vnd.oci.image.manifest.v1+json", blobs)) == "accepted"
