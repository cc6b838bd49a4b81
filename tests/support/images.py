"""Deterministic OCI test images, pushed with skopeo and read back from the real registry.

Why deterministic: byte-identical layouts give the same digests on every run (and every machine with the
same zlib), so Nix hashes and expected digests are stable. Why read back: the registry (and skopeo's
conversions, e.g. OCI -> docker schema2) decide what is actually served; tests compare against that.

Push paths (documented, see PUSH_PLAN): everything goes through `skopeo copy oci:LAYOUT:REF docker://...`.
 * OCI images: `--preserve-digests`, so the served manifest is byte-for-byte the one built here;
 * `library/hello:v2s2`: `--format v2s2` (skopeo converts the manifest; layers stay the same blobs);
 * `library/multi:oci`: `--all --preserve-digests` (index with amd64, arm64/v8 and a buildkit attestation);
 * `library/multi:list`: `--all --format v2s2` from a 2-entry OCI index -> skopeo 1.9 writes a docker
   manifest list with schema2 children (if it ever does not, `push_manifest_list_via_http` is the fallback
   and `ImageInfo.pushed_with` says which one was used).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import requests

# media types
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
IN_TOTO = "application/vnd.in-toto+json"
ACCEPT_ALL = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])

FIXED_MTIME = 1_700_000_000  # inside the tar; gzip header mtime is 0
CREATED = "2023-11-14T22:13:20Z"
REF_ANNOTATION = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Fixed serialisation so the bytes (and digests) never depend on dict order or whitespace."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def seeded_bytes(seed: str, size: int) -> bytes:
    return random.Random(seed).randbytes(size)


def make_tar(files: list[tuple[str, bytes]]) -> bytes:
    """A reproducible tar: fixed order, mtime, uid/gid, owner names and modes; parent dirs added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        seen: set[str] = set()
        for path, data in files:
            parts = path.strip("/").split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in seen:
                    seen.add(d)
                    ti = tarfile.TarInfo(d + "/")
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = "root"
                    tf.addfile(ti)
            ti = tarfile.TarInfo(path.strip("/"))
            ti.size, ti.mode, ti.mtime = len(data), 0o644, FIXED_MTIME
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------
# layout builder
# ------------------------------------------------------------------------------------------------
@dataclass
class Layer:
    blob: bytes
    media_type: str
    diff_id: str  # sha256 of the uncompressed tar


def layer(files: list[tuple[str, bytes]], compressed: bool = True) -> Layer:
    tar = make_tar(files)
    if compressed:
        return Layer(gzip_bytes(tar), OCI_LAYER_GZIP, sha256_digest(tar))
    return Layer(tar, OCI_LAYER_TAR, sha256_digest(tar))


class OciLayout:
    """Collects blobs and named refs in memory, then writes an OCI image layout directory."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.refs: list[dict] = []

    def add_blob(self, data: bytes, media_type: str, **extra: Any) -> dict:
        digest = sha256_digest(data)
        self.blobs[digest] = data
        desc = {"mediaType": media_type, "digest": digest, "size": len(data)}
        desc.update(extra)
        return desc

    def image(self, layers: list[Layer], arch: str = "amd64", os_: str = "linux",
              variant: Optional[str] = None, label: str = "") -> dict:
        """Add config + layers + manifest; return the manifest descriptor with its platform."""
        config: dict[str, Any] = {
            "architecture": arch,
            "os": os_,
            "created": CREATED,
            "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["/bin/sh"],
                       "Labels": {"org.hocker.test": label}},
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
            "history": [{"created": CREATED, "created_by": f"hocker test layer {i}"}
                        for i in range(len(layers))],
        }
        if variant:
            config["variant"] = variant
        cdesc = self.add_blob(canonical_json(config), OCI_CONFIG)
        ldescs = [self.add_blob(layer.blob, layer.media_type) for layer in layers]
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": ldescs}
        platform = {"architecture": arch, "os": os_}
        if variant:
            platform["variant"] = variant
        return self.add_blob(canonical_json(manifest), OCI_MANIFEST, platform=platform)

    def attestation(self, subject: dict) -> dict:
        """A buildkit-style attestation manifest for `subject` (platform unknown/unknown)."""
        statement = canonical_json({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://spdx.dev/Document",
            "subject": [{"name": "pkg:docker/library/multi@oci", "digest": {"sha256": subject["digest"][7:]}}],
            "predicate": {"spdxVersion": "SPDX-2.3", "name": "hocker-test-sbom"},
        })
        config = {"architecture": "unknown", "os": "unknown", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": [sha256_digest(statement)]}}
        cdesc = self.add_blob(canonical_json(config), OCI_CONFIG)
        ldesc = self.add_blob(statement, IN_TOTO,
                              annotations={"in-toto.io/predicate-type": "https://spdx.dev/Document"})
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": [ldesc]}
        return self.add_blob(canonical_json(manifest), OCI_MANIFEST,
                             platform={"architecture": "unknown", "os": "unknown"},
                             annotations={"vnd.docker.reference.digest": subject["digest"],
                                          "vnd.docker.reference.type": "attestation-manifest"})

    def index(self, manifests: list[dict]) -> dict:
        idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
        return self.add_blob(canonical_json(idx), OCI_INDEX)

    def tag(self, ref: str, desc: dict) -> None:
        d = {k: v for k, v in desc.items() if k != "platform"}
        d["annotations"] = {**d.get("annotations", {}), REF_ANNOTATION: ref}
        self.refs.append(d)

    def write(self, directory: Path) -> Path:
        directory = Path(directory)
        (directory / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        for digest, data in sorted(self.blobs.items()):
            (directory / "blobs" / "sha256" / digest[7:]).write_bytes(data)
        (directory / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
        (directory / "index.json").write_bytes(
            canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs}))
        return directory


def build_test_layout(directory: Path) -> dict[str, dict]:
    """Write the fixture layout; return {layout ref: descriptor}. Same bytes on every call."""
    lay = OciLayout()
    base = layer([("etc/os-release", b"NAME=hocker-test\nID=hocker\n"),
                  ("usr/lib/base.bin", seeded_bytes("base", 384 * 1024))])
    hello_top = layer([("hello/hello.txt", b"hello from hocker tests\n"),
                       ("hello/data.bin", seeded_bytes("hello", 96 * 1024))])
    hello2_top = layer([("hello2/hello.txt", b"hello2 from hocker tests\n"),
                        ("hello2/data.bin", seeded_bytes("hello2", 48 * 1024))])
    refs: dict[str, dict] = {}
    refs["hello"] = lay.image([base, hello_top], label="hello")
    refs["hello2"] = lay.image([base, hello2_top], label="hello2")
    amd = lay.image([layer([("arch/amd64.bin", seeded_bytes("amd64", 40 * 1024))]),
                     layer([("arch/name", b"amd64\n")])], arch="amd64", label="multi-amd64")
    arm = lay.image([layer([("arch/arm64.bin", seeded_bytes("arm64", 36 * 1024))]),
                     layer([("arch/name", b"arm64\n")])], arch="arm64", variant="v8", label="multi-arm64")
    refs["multi"] = lay.index([amd, arm, lay.attestation(amd)])
    refs["multi-list"] = lay.index([amd, arm])
    refs["nested"] = lay.image([layer([("nested/c.txt", b"a/b/c\n"),
                                       ("nested/c.bin", seeded_bytes("nested", 8 * 1024))])], label="nested")
    refs["plain"] = lay.image([layer([("plain/raw.bin", seeded_bytes("plain", 24 * 1024))], compressed=False)],
                              label="plain")
    refs["secret"] = lay.image([layer([("secret/s.txt", b"top secret\n"),
                                       ("secret/s.bin", seeded_bytes("secret", 12 * 1024))])], label="secret")
    for ref, desc in refs.items():
        lay.tag(ref, desc)
    lay.write(directory)
    return refs


# (layout ref, "repo:tag", extra skopeo flags, only in these registry modes or None for all)
PUSH_PLAN: list[tuple[str, str, list[str], Optional[tuple[str, ...]]]] = [
    ("hello", "library/hello:oci", ["--preserve-digests"], None),
    ("hello", "library/hello:v2s2", ["--format", "v2s2"], None),
    ("hello2", "library/hello2:oci", ["--preserve-digests"], None),
    ("multi", "library/multi:oci", ["--all", "--preserve-digests"], None),
    ("multi-list", "library/multi:list", ["--all", "--format", "v2s2"], None),
    ("nested", "a/b/c:nested", ["--preserve-digests"], None),
    ("plain", "library/plain:uncompressed", ["--preserve-digests"], None),
    ("secret", "private/secret:1", ["--preserve-digests"], ("token",)),
]


# ------------------------------------------------------------------------------------------------
# skopeo helpers
# ------------------------------------------------------------------------------------------------
def skopeo_args(registry: Any, role: str = "") -> list[str]:
    """Flags so skopeo reaches `registry`: role "" (inspect), "src" or "dest" (copy).

    TLS registries get `--cert-dir` (a folder with ca.crt), plain http ones `--tls-verify=false`;
    credentials go through a generated auth.json, never on the command line.
    """
    p = f"{role}-" if role else ""
    args = []
    if registry.cert_dir:
        args += [f"--{p}cert-dir={registry.cert_dir}", f"--{p}tls-verify=true"]
    else:
        args += [f"--{p}tls-verify=false"]
    if registry.authfile:
        args += [f"--{p}authfile={registry.authfile}"]
    return args


def run_skopeo(*args: str, timeout: float = 120) -> bytes:
    r = subprocess.run(["skopeo", *args], capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise RuntimeError(f"skopeo {' '.join(args)} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return r.stdout


def inspect_raw(registry: Any, ref: str, config: bool = False) -> bytes:
    """`skopeo inspect --raw [--config]` of `repo:tag` or `repo@digest`: the bytes as served."""
    extra = ["--config"] if config else []
    return run_skopeo("inspect", "--raw", *extra, *skopeo_args(registry), f"docker://{registry.host}/{ref}")


# ------------------------------------------------------------------------------------------------
# what the registry serves
# ------------------------------------------------------------------------------------------------
@dataclass
class PlatformImage:
    """One single-platform manifest as served."""

    platform: str                    # "linux/amd64", "linux/arm64/v8", "unknown/unknown" (attestation)
    manifest_digest: str
    manifest_bytes: bytes
    media_type: str
    config_digest: str
    config_bytes: bytes
    layers: list[tuple[str, str, int]]  # (digest, mediaType, size)


@dataclass
class ImageInfo:
    """What a tag resolves to, as served by one registry."""

    repo: str
    tag: str
    digest: str                      # sha256 of `raw` (the index/list for multi-arch)
    raw: bytes
    media_type: str
    platforms: dict[str, PlatformImage]        # real platforms only
    attestations: dict[str, PlatformImage] = field(default_factory=dict)  # keyed by manifest digest
    pushed_with: str = "skopeo"

    @property
    def ref(self) -> str:
        return f"{self.repo}:{self.tag}"

    @property
    def is_index(self) -> bool:
        return self.media_type in (OCI_INDEX, DOCKER_LIST)

    @property
    def single(self) -> PlatformImage:
        """The only platform of a single-arch image."""
        assert len(self.platforms) == 1, f"{self.ref} has {len(self.platforms)} platforms"
        return next(iter(self.platforms.values()))


def platform_string(p: dict) -> str:
    s = f"{p.get('os', '')}/{p.get('architecture', '')}"
    return s + (f"/{p['variant']}" if p.get("variant") else "")


def _platform_image(registry: Any, repo: str, manifest_bytes: bytes, platform: Optional[str]) -> PlatformImage:
    m = json.loads(manifest_bytes)
    digest = sha256_digest(manifest_bytes)
    config_bytes = inspect_raw(registry, f"{repo}@{digest}", config=True)
    assert sha256_digest(config_bytes) == m["config"]["digest"], "served config does not match its digest"
    if platform is None:
        platform = platform_string(json.loads(config_bytes))
    return PlatformImage(
        platform=platform,
        manifest_digest=digest,
        manifest_bytes=manifest_bytes,
        media_type=m.get("mediaType", ""),
        config_digest=m["config"]["digest"],
        config_bytes=config_bytes,
        layers=[(d["digest"], d["mediaType"], d["size"]) for d in m["layers"]],
    )


def read_back(registry: Any, repo: str, tag: str, pushed_with: str = "skopeo") -> ImageInfo:
    """Record what `repo:tag` actually serves (tag manifest, children, configs) via skopeo."""
    raw = inspect_raw(registry, f"{repo}:{tag}")
    doc = json.loads(raw)
    media_type = doc.get("mediaType", "")
    info = ImageInfo(repo=repo, tag=tag, digest=sha256_digest(raw), raw=raw, media_type=media_type,
                     platforms={}, pushed_with=pushed_with)
    if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in doc:
        for entry in doc["manifests"]:
            child = inspect_raw(registry, f"{repo}@{entry['digest']}")
            assert sha256_digest(child) == entry["digest"], "served child does not match its digest"
            plat = platform_string(entry.get("platform", {}))
            pi = _platform_image(registry, repo, child, plat)
            if plat == "unknown/unknown":
                info.attestations[pi.manifest_digest] = pi
            else:
                info.platforms[plat] = pi
    else:
        pi = _platform_image(registry, repo, raw, None)
        info.platforms[pi.platform] = pi
    return info


def push_ref(registry: Any, layout: Path, ref: str, target: str, flags: list[str], policy: Path) -> None:
    run_skopeo("copy", "--quiet", f"--policy={policy}", *flags, *skopeo_args(registry, "dest"),
               f"oci:{layout}:{ref}", f"docker://{registry.host}/{target}")


def write_policy(path: Path) -> Path:
    """An accept-anything signature policy, so skopeo never depends on /etc/containers/policy.json."""
    path.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return path


def seed_registry(registry: Any, layout: Path, policy: Path) -> dict[str, ImageInfo]:
    """Push the whole PUSH_PLAN into `registry` and read every image back."""
    images: dict[str, ImageInfo] = {}
    for ref, target, flags, modes in PUSH_PLAN:
        if modes is not None and registry.mode not in modes:
            continue
        push_ref(registry, layout, ref, target, flags, policy)
        repo, _, tag = target.rpartition(":")
        images[target] = read_back(registry, repo, tag)
    ml = images.get("library/multi:list")
    if ml is not None and ml.media_type != DOCKER_LIST:
        # skopeo did not make a docker list: build one from the schema2 children ourselves.
        push_manifest_list_via_http(registry, "library/multi", "list", images["library/multi:oci"], layout, policy)
        images["library/multi:list"] = read_back(registry, "library/multi", "list", pushed_with="http")
    return images


def push_manifest_list_via_http(registry: Any, repo: str, tag: str, oci_index: ImageInfo, layout: Path,
                                policy: Path) -> None:
    """Fallback: push each platform as schema2 by digest-less temp tags, then PUT a docker list."""
    entries = []
    for plat, pi in oci_index.platforms.items():
        tmp_tag = "tmp-" + plat.replace("/", "-")
        run_skopeo("copy", "--quiet", f"--policy={policy}", "--format", "v2s2",
                   *skopeo_args(registry, "src"), *skopeo_args(registry, "dest"),
                   f"docker://{registry.host}/{repo}@{pi.manifest_digest}",
                   f"docker://{registry.host}/{repo}:{tmp_tag}")
        child = inspect_raw(registry, f"{repo}:{tmp_tag}")
        os_, arch, *var = plat.split("/")
        p = {"architecture": arch, "os": os_}
        if var:
            p["variant"] = var[0]
        entries.append({"mediaType": DOCKER_MANIFEST, "digest": sha256_digest(child), "size": len(child),
                        "platform": p})
    body = canonical_json({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries})
    r = registry.http("PUT", f"/v2/{repo}/manifests/{tag}", repo=repo, actions="pull,push", data=body,
                      headers={"Content-Type": DOCKER_LIST})
    r.raise_for_status()


def blob_bytes(registry: Any, repo: str, digest: str) -> bytes:
    """A blob fetched with plain HTTP (our own auth, not the code under test); digest-verified."""
    r = registry.http("GET", f"/v2/{repo}/blobs/{digest}", repo=repo)
    r.raise_for_status()
    assert sha256_digest(r.content) == digest, f"blob {digest} from {repo} does not match its digest"
    return r.content


def manifest_http(registry: Any, repo: str, reference: str, accept: str = ACCEPT_ALL,
                  method: str = "GET") -> requests.Response:
    """GET/HEAD a manifest with our own auth and an explicit Accept header."""
    return registry.http(method, f"/v2/{repo}/manifests/{reference}", repo=repo, headers={"Accept": accept})
