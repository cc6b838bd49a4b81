"""Manifest/index parsing and platform selection, on hand-written documents (hostile ones included)."""

import json

import pytest

from hocker_fetch.errors import ManifestError, UsageError
from hocker_fetch.manifest import (
    DOCKER_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageIndex,
    ImageManifest,
    Platform,
    parse_manifest,
    select_platform,
)

H = "sha256:" + "0" * 64
L = "sha256:" + "1" * 64


def doc(**kw):
    base = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": H, "size": 10},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": L, "size": 20}]}
    base.update(kw)
    return json.dumps(base).encode()


def index(entries, media_type=OCI_INDEX):
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": entries}).encode()


def entry(arch, os_="linux", variant=None, digest=H, annotations=None):
    p = {"os": os_, "architecture": arch}
    if variant:
        p["variant"] = variant
    e = {"mediaType": OCI_MANIFEST, "digest": digest, "size": 100, "platform": p}
    if annotations:
        e["annotations"] = annotations
    return e


def test_manifest_keeps_raw_bytes():
    raw = doc()
    m = parse_manifest(raw, H)
    assert isinstance(m, ImageManifest) and m.raw is raw and m.layers[0].digest == L


def test_oci_manifest_without_media_type_field():
    raw = json.loads(doc())
    del raw["mediaType"]
    assert isinstance(parse_manifest(json.dumps(raw).encode(), H), ImageManifest)


@pytest.mark.parametrize("raw, message", [
    (b"{not json", "not valid JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "schema1"),
    (doc(schemaVersion=3), "schemaVersion"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode(), "no config"),
    (doc(layers=[{"mediaType": "x", "digest": L, "size": -1}]), "invalid size"),
    (doc(layers=[{"mediaType": "x", "digest": L, "size": 1 << 60}]), "invalid size"),
    (doc(layers=[{"mediaType": "x", "digest": "sha256:../../etc/passwd", "size": 1}]), "malformed digest"),
    (doc(layers=[{"mediaType": "x", "digest": "sha512:" + "a" * 128, "size": 1}]), "algorithm"),
    (doc(layers=[{"mediaType": "x", "digest": L, "size": "12"}]), "invalid size"),
    (doc(layers="nope"), "no layers"),
])
def test_hostile_manifests(raw, message):
    with pytest.raises(ManifestError, match=message):
        parse_manifest(raw, H)


def test_platform_normalisation():
    assert Platform.parse("linux/x86_64") == Platform("linux", "amd64")
    assert Platform.parse("linux/aarch64") == Platform("linux", "arm64", "v8")
    assert Platform.parse("linux/arm64/v8") == Platform.parse("linux/arm64")
    assert Platform.parse("linux/arm") == Platform("linux", "arm", "v7")
    for bad in ["linux", "linux/", "a/b/c/d", ""]:
        with pytest.raises(UsageError):
            Platform.parse(bad)


def test_select_platform_skips_attestations_and_matches_variants():
    amd, arm, att = "sha256:" + "a" * 64, "sha256:" + "b" * 64, "sha256:" + "c" * 64
    idx = parse_manifest(index([
        entry("unknown", "unknown", digest=att, annotations={"vnd.docker.reference.type": "attestation-manifest"}),
        entry("amd64", digest=amd), entry("arm64", variant="v8", digest=arm)]), H)
    assert isinstance(idx, ImageIndex)
    assert select_platform(idx, Platform.parse("linux/amd64")).digest == amd
    assert select_platform(idx, Platform.parse("linux/aarch64")).digest == arm
    with pytest.raises(ManifestError, match="available: linux/amd64, linux/arm64/v8"):
        select_platform(idx, Platform.parse("linux/riscv64"))


def test_arm64_without_variant_in_index_matches_v8():
    idx = parse_manifest(index([entry("arm64")], DOCKER_LIST), H)
    assert select_platform(idx, Platform.parse("linux/arm64/v8")).platform == Platform("linux", "arm64", "v8")


def test_index_of_only_attestations_is_a_clear_error():
    idx = parse_manifest(index([entry("unknown", "unknown")]), H)
    with pytest.raises(ManifestError, match="only attestations"):
        select_platform(idx, Platform.parse("linux/amd64"))
