"""The local reference registry and what the cases fetch from it: deterministic, incompressible images and blobs.

Bytes come from a seeded PRNG and layers are uncompressed tars pushed through the registry HTTP API
(monolithic upload), so seeding spends no time compressing random data and every run serves the same digests.
"""
from __future__ import annotations

import hashlib
import json
import random
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import requests

from .harness import MiB, log

if TYPE_CHECKING:
    from support.registry import RegistryServer

TESTS = Path(__file__).resolve().parent.parent / "tests"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
IMAGE_REPO = "bench/img"
BLOB_REPO = "bench/blobs"
LAYER_SEEDS = [f"img-layer-{i}" for i in range(4)]
FLEET_SIZE = 50  # images in the lock file of the lock case
MANY_REPO = "bench/many"
MANY_SEEDS = [f"many-layer-{i}" for i in range(40)]
SMALL = 256 << 10  # the small layers of issue 13's cases (9, 10, 11): start-up, not bytes


@dataclass(frozen=True)
class Sizes:
    layer: int        # each of the 4 layers of the image (cases 1, 3, 4, 5)
    blob: int         # the throughput blob (case 2)
    rss_small: int    # case 6
    rss_large: int    # case 6

    @staticmethod
    def full() -> Sizes:
        return Sizes(layer=64 * MiB, blob=512 * MiB, rss_small=64 * MiB, rss_large=1024 * MiB)

    @staticmethod
    def quick() -> Sizes:
        return Sizes(layer=4 * MiB, blob=32 * MiB, rss_small=4 * MiB, rss_large=64 * MiB)


def random_stream(seed: str, size: int, chunk: int = 8 * MiB) -> Iterator[bytes]:
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def write_blob_file(path: Path, seed: str, size: int, as_tar: bool) -> str:
    """Write a random blob (optionally wrapped as a one-file uncompressed tar) and return its digest."""
    h = hashlib.sha256()
    with open(path, "wb") as f:
        def put(data: bytes) -> None:
            h.update(data)
            f.write(data)
        if as_tar:
            info = tarfile.TarInfo(f"data/{seed}.bin")
            info.size, info.mode, info.mtime, info.uid, info.gid = size, 0o644, 1_700_000_000, 0, 0
            info.uname = info.gname = "root"
            put(info.tobuf(format=tarfile.USTAR_FORMAT))
        for data in random_stream(seed, size):
            put(data)
        if as_tar:
            pad = (-size) % 512
            put(b"\0" * (pad + 1024))
    return "sha256:" + h.hexdigest()


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Seeder:
    """Pushes blobs and images into one registry, skipping blobs it already has."""

    def __init__(self, reg: RegistryServer, scratch: Path) -> None:
        self.reg = reg
        self.scratch = scratch
        self.session = requests.Session()

    def has_blob(self, repo: str, digest: str) -> bool:
        return self.session.head(f"{self.reg.url}/v2/{repo}/blobs/{digest}", timeout=30).status_code == 200

    def push_file(self, repo: str, path: Path, digest: str) -> None:
        if self.has_blob(repo, digest):
            return
        r = self.session.post(f"{self.reg.url}/v2/{repo}/blobs/uploads/", timeout=30)
        r.raise_for_status()
        loc = r.headers["Location"]
        if loc.startswith("/"):
            loc = self.reg.url + loc
        with open(path, "rb") as f:
            r = self.session.put(loc, params={"digest": digest}, data=f, timeout=600,
                                 headers={"Content-Type": "application/octet-stream",
                                          "Content-Length": str(path.stat().st_size)})
        if r.status_code != 201:
            raise RuntimeError(f"blob upload failed: {r.status_code} {r.text[:300]}")

    def push_bytes(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.scratch / "small.bin"
        path.write_bytes(data)
        self.push_file(repo, path, digest)
        path.unlink()
        return digest

    def blob(self, repo: str, seed: str, size: int, as_tar: bool = False) -> tuple[str, int]:
        """Push a random blob; return its digest and size (a tar is a little larger than `size`)."""
        path = self.scratch / f"{seed}.bin"
        digest = write_blob_file(path, seed, size, as_tar)
        real = path.stat().st_size
        self.push_file(repo, path, digest)
        path.unlink()
        return digest, real

    def manifest(self, repo: str, reference: str) -> bytes:
        """The manifest bytes `reference` names, as served."""
        r = self.session.get(f"{self.reg.url}/v2/{repo}/manifests/{reference}", timeout=30,
                             headers={"Accept": OCI_MANIFEST})
        r.raise_for_status()
        return r.content

    def put_manifest(self, repo: str, tag: str, manifest: bytes) -> None:
        """Point `tag` at `manifest` (whose blobs are in `repo`): moving a tag, as a push does."""
        r = self.session.put(f"{self.reg.url}/v2/{repo}/manifests/{tag}", data=manifest, timeout=30,
                             headers={"Content-Type": OCI_MANIFEST})
        if r.status_code != 201:
            raise RuntimeError(f"manifest upload failed: {r.status_code} {r.text[:300]}")

    def image(self, repo: str, tag: str, layer_seeds: list[str], layer_size: int | list[int]) -> dict[str, Any]:
        """Push an OCI image of one random uncompressed layer per seed (all of `layer_size`, or one size per seed);
        return what the cases need of it."""
        sizes = layer_size if isinstance(layer_size, list) else [layer_size] * len(layer_seeds)
        layers = [self.blob(repo, seed, size, as_tar=True) for seed, size in zip(layer_seeds, sizes)]
        config = canonical_json({
            "architecture": "amd64", "os": "linux", "created": "2023-11-14T22:13:20Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]},  # uncompressed: diff_id = digest
            "history": [{"created": "2023-11-14T22:13:20Z", "created_by": f"bench {s}"} for s in layer_seeds],
        })
        config_digest = self.push_bytes(repo, config)
        manifest = canonical_json({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER_TAR, "digest": d, "size": n} for d, n in layers],
        })
        r = self.session.put(f"{self.reg.url}/v2/{repo}/manifests/{tag}", data=manifest, timeout=30,
                             headers={"Content-Type": OCI_MANIFEST})
        if r.status_code != 201:
            raise RuntimeError(f"manifest upload failed: {r.status_code} {r.text[:300]}")
        return {"repo": repo, "tag": tag, "manifest_digest": "sha256:" + hashlib.sha256(manifest).hexdigest(),
                "layers": layers, "config_digest": config_digest, "size": sum(n for _, n in layers) + len(config)}


def fleet(seeder: Seeder, count: int) -> list[dict[str, Any]]:
    """`count` small repositories (bench/fleet-NN), each with two images (tags `a` and `b`, one 4 KiB layer
    each) and the tag `current` on `a`: the lock case moves `current` between them (Seeder.put_manifest)."""
    repos = []
    for i in range(count):
        repo = f"bench/fleet-{i:02d}"
        a = seeder.image(repo, "a", [f"fleet-{i}-a"], 4096)
        b = seeder.image(repo, "b", [f"fleet-{i}-b"], 4096)
        repos.append({"repo": repo, "a": a, "b": b, "manifests": {"a": seeder.manifest(repo, "a"),
                                                                  "b": seeder.manifest(repo, "b")}})
        seeder.put_manifest(repo, "current", repos[-1]["manifests"]["a"])
    return repos


def start_registry(root: Path) -> RegistryServer:
    """A plain-http registry with the runner the tests use (a real /usr/bin/docker-registry process)."""
    sys.path.insert(0, str(TESTS))
    from support.registry import RegistryServer

    reg = RegistryServer(root, "plain").start()
    log(f"registry at {reg.url} (storage {reg.storage})")
    return reg


def seed(reg: RegistryServer, scratch: Path, sizes: Sizes, needs: set[str],
         ) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, int]]]:
    """Push what the chosen cases need (names from their `needs`); return the images and blobs by name.

    Images: v1 (4 layers), v2 (v1 with its last layer changed), fleet (FLEET_SIZE small repositories with a
    movable tag `current`), many40/many10 (40/10 layers of 256 KiB).
    Blobs: throughput, rss_small, rss_large, small (256 KiB).
    """
    seeder = Seeder(reg, scratch)
    images: dict[str, dict[str, Any]] = {}
    blobs: dict[str, tuple[str, int]] = {}
    t0 = time.perf_counter()
    if "v1" in needs:
        images["v1"] = seeder.image(IMAGE_REPO, "v1", LAYER_SEEDS, sizes.layer)
    if "v2" in needs:
        images["v2"] = seeder.image(IMAGE_REPO, "v2", LAYER_SEEDS[:3] + ["img-layer-3-changed"], sizes.layer)
    for key, n in (("many40", 40), ("many10", 10)):
        if key in needs:
            images[key] = seeder.image(MANY_REPO, f"l{n}", MANY_SEEDS[:n], SMALL)
    if "small" in needs:
        blobs["small"] = seeder.blob(BLOB_REPO, "blob-small", SMALL)
    if "throughput" in needs:
        blobs["throughput"] = seeder.blob(BLOB_REPO, "blob-throughput", sizes.blob)
    if "rss_small" in needs:
        blobs["rss_small"] = seeder.blob(BLOB_REPO, "blob-rss-small", sizes.rss_small)
    if "rss_large" in needs:
        blobs["rss_large"] = seeder.blob(BLOB_REPO, "blob-rss-large", sizes.rss_large)
    if "fleet" in needs:
        images["fleet"] = {"repos": fleet(seeder, FLEET_SIZE)}
    log(f"seeded in {time.perf_counter() - t0:.1f}s")
    return images, blobs
