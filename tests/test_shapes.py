"""Registry objects that are not loadable images (issue 10, items 1, 6 and 7), against real registries.

* OCI artifacts (a Helm chart, an OCI 1.1 artifact with `artifactType` and the empty config, a cosign `.sig`
  manifest), written by hand and pushed through the registry API, and an image whose layers skopeo encrypted
  (`--encryption-key jwe:...`): hocker-image (every --format) and docker2nix refuse them with exit 7 and one line
  naming what they are, writing nothing; hocker-manifest, hocker-config and hocker-layer still fetch them byte
  for byte, since they are registry objects like any other.
* `hocker-manifest --digest` refuses a schema1 tag like every other mode (the dumb registry of test_hostile).
* A foreign (non-distributable) layer the registry does not serve: docker2nix fails up front naming the layer
  and its urls, instead of writing a file whose Nix build fails with "blob not found"; when the registry does
  serve it, docker2nix pins as before.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
from support.clitools import registry_args, run
from support.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    blob_bytes,
    canonical_json,
    inspect_raw,
    run_skopeo,
    skopeo_args,
    write_policy,
)
from support.registry import RegistryServer

from hocker_fetch.errors import ManifestError
from hocker_fetch.manifest import ImageManifest, check_is_image, parse_manifest

HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM = "application/vnd.example.sbom.v1+json"
COSIGN = "application/vnd.dev.cosign.simplesigning.v1+json"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
FOREIGN_URL = "https://example.invalid/windows/base-layer.tar.gz"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def desc(media_type: str, data: bytes, **extra: Any) -> dict:
    return {"mediaType": media_type, "digest": sha(data), "size": len(data), **extra}


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def push_blob(reg: RegistryServer, repo: str, data: bytes) -> str:
    r = reg.http("POST", f"/v2/{repo}/blobs/uploads/", repo=repo, actions="pull,push")
    assert r.status_code == 202, (r.status_code, r.text)
    loc = r.headers["Location"]
    loc = reg.url + loc if loc.startswith("/") else loc
    sep = "&" if "?" in loc else "?"
    r = requests.put(f"{loc}{sep}digest={sha(data)}", data=data, timeout=30,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, (r.status_code, r.text)
    return sha(data)


def push_manifest(reg: RegistryServer, repo: str, tag: str, doc: dict, media_type: str) -> bytes:
    raw = canonical_json(doc)
    r = reg.http("PUT", f"/v2/{repo}/manifests/{tag}", repo=repo, actions="pull,push", data=raw,
                 headers={"Content-Type": media_type})
    assert r.status_code == 201, (r.status_code, r.text)
    return raw


class Shape:
    """One object pushed to the registry: its name, manifest bytes, config bytes and layer blobs."""

    def __init__(self, repo: str, tag: str, raw: bytes, config: bytes, layers: list[bytes], kind: str) -> None:
        self.repo, self.tag, self.raw, self.config, self.layers, self.kind = repo, tag, raw, config, layers, kind


def _artifacts(reg: RegistryServer) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}

    # a Helm chart as `helm push` stores it: its own config type, the chart as a tar.gz layer
    repo = "charts/x"
    config = canonical_json({"name": "x", "version": "1.0.0", "apiVersion": "v2"})
    chart = tar_gz({"x/Chart.yaml": b"apiVersion: v2\nname: x\nversion: 1.0.0\n"})
    push_blob(reg, repo, config)
    push_blob(reg, repo, chart)
    raw = push_manifest(reg, repo, "1", {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                         "config": desc(HELM_CONFIG, config), "layers": [desc(HELM_CHART, chart)]},
                        OCI_MANIFEST)
    shapes["helm"] = Shape(repo, "1", raw, config, [chart],
                           re.escape(f"is an OCI artifact (config type {HELM_CONFIG}), not a container image"))

    # an OCI 1.1 artifact: artifactType, the empty config `{}`
    repo = "sbom/app"
    empty = b"{}"
    sbom = canonical_json({"spdxVersion": "SPDX-2.3", "name": "app"})
    push_blob(reg, repo, empty)
    push_blob(reg, repo, sbom)
    raw = push_manifest(reg, repo, "v1", {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": SBOM,
                                          "config": desc(EMPTY, empty), "layers": [desc(SBOM, sbom)]},
                        OCI_MANIFEST)
    shapes["oci11"] = Shape(repo, "v1", raw, empty, [sbom],
                            re.escape(f"is an OCI artifact of type {SBOM} (config type {EMPTY}), not a container"))

    # a cosign signature: an ordinary image config type, but a simplesigning payload as its only layer
    repo = "signed/app"
    sig_config = canonical_json({"architecture": "", "os": "", "config": {},
                                 "rootfs": {"type": "layers", "diff_ids": []}})
    payload = canonical_json({"critical": {"identity": {"docker-reference": "127.0.0.1/signed/app"},
                                           "image": {"docker-manifest-digest": "sha256:" + "a" * 64},
                                           "type": "cosign container image signature"}, "optional": None})
    push_blob(reg, repo, sig_config)
    push_blob(reg, repo, payload)
    tag = "sha256-" + "a" * 64 + ".sig"
    raw = push_manifest(reg, repo, tag, {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, sig_config),
        "layers": [desc(COSIGN, payload, annotations={"dev.cosignproject.cosign/signature": "MEUCIQ=="})]},
        OCI_MANIFEST)
    shapes["cosign"] = Shape(repo, tag, raw, sig_config, [payload],
                             re.escape(f"is an OCI artifact (layer type {COSIGN}), not a"))
    return shapes


def _encrypted(reg: RegistryServer, work: Path) -> Shape:
    """A real image, its layers encrypted by skopeo (ocicrypt JWE) on the way to the registry."""
    layer = tar_gz({"hello.txt": b"encrypted hello\n"})
    config = canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [sha(gzip.decompress(layer))]}})
    layout = work / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    manifest = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(OCI_CONFIG, config),
                               "layers": [desc(OCI_LAYER_GZIP, layer)]})
    for blob in (layer, config, manifest):
        (layout / "blobs" / "sha256" / sha(blob).split(":")[1]).write_bytes(blob)
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_bytes(canonical_json({"schemaVersion": 2, "manifests": [
        desc(OCI_MANIFEST, manifest, annotations={"org.opencontainers.image.ref.name": "enc"})]}))
    key, pub = work / "key.pem", work / "pub.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
    subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True, capture_output=True)
    policy = write_policy(work / "policy.json")
    run_skopeo("copy", "--quiet", f"--policy={policy}", "--encryption-key", f"jwe:{pub}",
               *skopeo_args(reg, "dest"), f"oci:{layout}:enc", f"docker://{reg.host}/secret/enc:1")
    raw = inspect_raw(reg, "secret/enc:1")
    doc = json.loads(raw)
    assert all(d["mediaType"].endswith("+encrypted") for d in doc["layers"]), doc  # skopeo really encrypted
    served_config = blob_bytes(reg, "secret/enc", doc["config"]["digest"])
    layers = [blob_bytes(reg, "secret/enc", d["digest"]) for d in doc["layers"]]
    return Shape("secret/enc", "1", raw, served_config, layers,
                 re.escape("has encrypted layers (application/vnd.oci.image.layer.v1.tar+gzip+encrypted)"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory,
           test_pki: Any) -> Iterator[tuple[RegistryServer, dict[str, Shape]]]:
    root = tmp_path_factory.mktemp("shapes")
    reg = RegistryServer(root / "registry", "plain", test_pki).start()
    try:
        found = _artifacts(reg)
        found["encrypted"] = _encrypted(reg, root)
        yield reg, found
    finally:
        reg.stop()


SHAPES = ["helm", "oci11", "cosign", "encrypted"]


def snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def one_line_error(r: subprocess.CompletedProcess, prog: str, code: int, pattern: str) -> str:
    err = r.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert r.returncode == code, (r.returncode, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert r.stdout == b""
    return lines[0]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci", "oci-archive"])
@pytest.mark.parametrize("name", SHAPES)
def test_image_tools_refuse_what_is_not_an_image(shapes, tmp_path: Path, name: str, fmt: str) -> None:
    reg, found = shapes
    shape = found[name]
    out = tmp_path / "out"
    out.mkdir()
    r = run("hocker-image", *registry_args(reg), "-q", "--format", fmt, "--out", str(out / "img"),
            shape.repo, shape.tag)
    line = one_line_error(r, "hocker-image", 7, shape.kind)
    assert f"{reg.host}/{shape.repo}:{shape.tag}" in line
    assert snapshot(out) == []  # nothing at --out, no temporary file beside it


@pytest.mark.parametrize("name", SHAPES)
def test_docker2nix_refuses_what_is_not_an_image(shapes, tmp_path: Path, name: str) -> None:
    reg, found = shapes
    shape = found[name]
    out = tmp_path / "out"
    out.mkdir()
    r = run("docker2nix", *registry_args(reg), "-q", "--out", str(out / "image.nix"), shape.repo, shape.tag)
    one_line_error(r, "docker2nix", 7, shape.kind)
    assert snapshot(out) == []
    # the same refusal for a manifest given on the command line (hocker's pipeline)
    (tmp_path / "m.json").write_bytes(shape.raw)
    r = run("docker2nix", *registry_args(reg), "-q", "--json", "--manifest", str(tmp_path / "m.json"),
            shape.repo, shape.tag)
    one_line_error(r, "docker2nix", 7, shape.kind)


@pytest.mark.parametrize("name", SHAPES)
def test_registry_object_tools_still_fetch_them_exactly(shapes, tmp_path: Path, name: str) -> None:
    reg, found = shapes
    shape = found[name]
    r = run("hocker-manifest", *registry_args(reg), "-q", shape.repo, shape.tag)
    assert r.returncode == 0, r.stderr
    assert r.stdout == shape.raw
    r = run("hocker-manifest", *registry_args(reg), "-q", "--digest", shape.repo, shape.tag)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == sha(shape.raw)
    r = run("hocker-config", *registry_args(reg), "-q", shape.repo, shape.tag)
    assert r.returncode == 0, r.stderr
    assert r.stdout == shape.config
    for i, blob in enumerate(shape.layers):
        out = tmp_path / f"layer{i}"
        r = run("hocker-layer", *registry_args(reg), "-q", "--layer", sha(blob), "--out", str(out),
                shape.repo, shape.tag)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == blob


# -- the rule itself, on documents (every branch, and what must stay accepted) ------------------------------

def _manifest(config_type: str = OCI_CONFIG, layer_types: tuple[str, ...] = (OCI_LAYER_GZIP,),
              **top: Any) -> ImageManifest:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": desc(config_type, b"c"),
           "layers": [desc(t, bytes([i])) for i, t in enumerate(layer_types)], **top}
    raw = json.dumps(doc).encode()
    parsed = parse_manifest(raw, sha(raw))
    assert isinstance(parsed, ImageManifest)
    return parsed


@pytest.mark.parametrize("config_type,layer_types", [
    (OCI_CONFIG, ("application/vnd.oci.image.layer.v1.tar", OCI_LAYER_GZIP,
                  "application/vnd.oci.image.layer.v1.tar+zstd")),
    (DOCKER_CONFIG, (DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.diff.tar", FOREIGN)),
    (OCI_CONFIG, ("application/vnd.oci.image.layer.nondistributable.v1.tar",
                  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")),
    (OCI_CONFIG, ()),
])
def test_images_are_accepted(config_type: str, layer_types: tuple[str, ...]) -> None:
    m = _manifest(config_type, layer_types)
    assert m.unusable_as_image() is None
    assert check_is_image(m, "x") is m


@pytest.mark.parametrize("kw,pattern", [
    ({"config_type": HELM_CONFIG}, f"x is an OCI artifact (config type {HELM_CONFIG}), not a container image"),
    ({"config_type": EMPTY, "artifactType": SBOM}, f"x is an OCI artifact of type {SBOM} (config type {EMPTY})"),
    ({"artifactType": SBOM}, f"of type {SBOM}"),  # artifactType wins even with an image config type
    ({"layer_types": (OCI_LAYER_GZIP, COSIGN)}, f"(layer type {COSIGN})"),
    ({"layer_types": ("application/vnd.oci.image.layer.v1.tar+zstd+encrypted",)}, "has encrypted layers"),
    ({"config_type": DOCKER_CONFIG, "layer_types": (DOCKER_LAYER_GZIP + "+encrypted",)}, "decrypt it first"),
])
def test_what_is_refused_and_why(kw: dict, pattern: str) -> None:
    m = _manifest(**kw)
    with pytest.raises(ManifestError) as exc:
        check_is_image(m, "x")
    assert pattern in str(exc.value)
    assert exc.value.exit_code == 7


def test_malformed_artifact_type_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="artifactType"):
        _manifest(artifactType=["not", "a", "string"])


# -- item 6: --digest on a schema1 tag ------------------------------------------------------------------

@pytest.fixture(scope="module")
def dumb_registry():
    from test_hostile import HostileRegistry
    s = HostileRegistry().start()
    yield s
    s.stop()


@pytest.mark.parametrize("content_type", ["application/vnd.docker.distribution.manifest.v1+json",
                                          "application/vnd.docker.distribution.manifest.v1+prettyjws"])
@pytest.mark.parametrize("flags", [["--digest"], ["--index", "--digest"]])
def test_digest_refuses_schema1_like_every_other_mode(dumb_registry, content_type: str, flags: list[str]) -> None:
    from test_hostile import MANIFEST_PATH, REPO, SCHEMA1_SIGNED, TAG, Answer
    body = json.dumps(SCHEMA1_SIGNED).encode()
    dumb_registry.routes = {MANIFEST_PATH: Answer(body, content_type, headers={"Docker-Content-Digest": sha(body)})}
    common = ["--registry", dumb_registry.url, "--retries", "0", "-q"]
    plain = run("hocker-manifest", *common, REPO, TAG)
    expected = one_line_error(plain, "hocker-manifest", 7, "schema1")
    r = run("hocker-manifest", *common, *flags, REPO, TAG)
    assert one_line_error(r, "hocker-manifest", 7, "schema1") == expected  # the same message, by HEAD alone
    assert dumb_registry.asked[-1] == MANIFEST_PATH


# -- item 7: a foreign layer the registry does not serve -----------------------------------------------

def _foreign_image(reg: RegistryServer, repo: str) -> tuple[bytes, bytes]:
    """A schema2 image whose base layer is foreign (with urls) and not pushed: the registry answers 404 for it,
    as Docker Hub does for the Windows base layers it does not distribute."""
    base = tar_gz({"Files/base.txt": b"foreign base\n"})
    top = tar_gz({"app.txt": b"app\n"})
    config = canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers",
                                        "diff_ids": [sha(gzip.decompress(base)), sha(gzip.decompress(top))]}})
    for blob in (config, top):
        push_blob(reg, repo, blob)
    raw = push_manifest(reg, repo, "1", {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST, "config": desc(DOCKER_CONFIG, config),
        "layers": [desc(FOREIGN, base, urls=[FOREIGN_URL]), desc(DOCKER_LAYER_GZIP, top)]}, DOCKER_MANIFEST)
    assert reg.http("HEAD", f"/v2/{repo}/blobs/{sha(base)}", repo=repo).status_code == 404
    return raw, base


class ForeignUrlsRegistry(RegistryServer):
    """The reference registry refuses manifests with `urls` unless told which are allowed (then it accepts a
    foreign layer without its blob, as Docker Hub does)."""

    def _write_files(self) -> None:
        super()._write_files()
        with open(self.config_file, "a") as f:
            f.write("validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n")


@pytest.fixture
def foreign_registry(tmp_path: Path, test_pki: Any) -> Iterator[RegistryServer]:
    reg = ForeignUrlsRegistry(tmp_path / "registry", "plain", test_pki).start()
    try:
        yield reg
    finally:
        reg.stop()


def test_docker2nix_refuses_a_foreign_layer_the_registry_does_not_serve(foreign_registry, tmp_path: Path) -> None:
    reg = foreign_registry
    raw, base = _foreign_image(reg, "win/app")
    out = tmp_path / "out"
    out.mkdir()
    r = run("docker2nix", *registry_args(reg), "-q", "--out", str(out / "app.nix"), "win/app", "1")
    line = one_line_error(r, "docker2nix", 7, "foreign")
    assert sha(base) in line and FOREIGN_URL in line
    assert snapshot(out) == []
    (tmp_path / "m.json").write_bytes(raw)  # a manifest given on the command line is checked the same way
    r = run("docker2nix", *registry_args(reg), "-q", "--json", "--manifest", str(tmp_path / "m.json"), "win/app", "1")
    assert sha(base) in one_line_error(r, "docker2nix", 7, "foreign")

    # the builder of a file pinned earlier (the Nix fetchers pass --foreign for foreign layers) says why
    args = [*registry_args(reg), "-q", "--layer", sha(base), "--out", str(out / "layer"), "win/app"]
    line = one_line_error(run("hocker-layer", "--foreign", *args), "hocker-layer", 4, "not found")
    assert "foreign (non-distributable)" in line
    assert "foreign" not in one_line_error(run("hocker-layer", *args), "hocker-layer", 4, "not found")
    assert snapshot(out) == []

    push_blob(reg, "win/app", base)  # once the registry serves it, the image pins as before
    r = run("docker2nix", *registry_args(reg), "-q", "--json", "win/app", "1")
    assert r.returncode == 0, r.stderr
    lock = json.loads(r.stdout)
    assert sha(base) in json.dumps(lock) and sha(raw) in json.dumps(lock)
    r = run("docker2nix", *registry_args(reg), "-q", "--out", str(out / "app.nix"), "win/app", "1")
    assert r.returncode == 0, r.stderr
    assert os.listdir(out) == ["app.nix"]
    assert (out / "app.nix").read_text().count("foreign = true;") == 1  # the base layer only
