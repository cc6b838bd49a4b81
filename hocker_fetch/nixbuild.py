"""Builders for the non-fixed-output derivations of nix/default.nix, and the streamer behind compositeImage.sh.

Nothing here touches the network: every input is a store path already verified by its fixed-output
derivation, described by the derivation's `imageSpec` (see `load_spec`), and every byte written is a function
of those inputs only (archive.py's fixed tar headers and member order), so `nix-build --check` passes.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from typing import Any, BinaryIO, Iterator, Optional, Sequence

from .archive import BLOCK, plan_docker_archive, plan_oci_layout
from .digest import file_digest, parse_digest
from .errors import HockerError, ManifestError, UsageError
from .manifest import Descriptor, ImageManifest, Platform, parse_manifest

PROG = "hocker-nixbuild"
COPY_CHUNK = 1 << 20


def _blob(entry: dict[str, Any]) -> tuple[str, str]:
    """(digest, path) of a spec entry; the digest is computed when the spec does not know it."""
    path = entry["path"]
    digest = entry.get("digest")
    return (parse_digest(digest) if digest else file_digest(path)), path


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def load_spec(text: str) -> dict[str, Any]:
    """Parse the derivation's imageSpec:

        {"config": {"path": P, "digest": D|null}, "layers": [{"path": P, "digest": D|null}, ...],
         "repoTags": ["name:tag"], "manifest": {"path": P, "digest": D, "mediaType": T}|null,
         "tag": "tag", "image": "name:tag", "platform": "os/arch[/variant]"|null}

    A null digest (a hocker-era config fetched by tag) is computed from the file.
    """
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"imageSpec is not JSON: {exc}") from None
    if not isinstance(spec, dict) or "config" not in spec or "layers" not in spec:
        raise UsageError("imageSpec needs config and layers")
    return spec


def docker_members(spec: dict[str, Any]) -> list[tuple[str, bytes | str]]:
    """The docker-archive members in order: (name, bytes) for small files, (name, store path) for layers."""
    config_digest, config_path = _blob(spec["config"])
    config_bytes = _read(config_path)
    # the spec has no media types, and a docker-archive does not record them
    config = Descriptor("", config_digest, len(config_bytes))
    layers = [_blob(entry) for entry in spec["layers"]]
    paths = dict(layers)
    refs = [Descriptor("", digest, os.path.getsize(path)) for digest, path in layers]
    plan = plan_docker_archive(config, config_bytes, refs, list(spec.get("repoTags") or ()))
    return [(name, value if isinstance(value, bytes) else paths[value.digest]) for name, value in plan.entries]


def _platform(text: Optional[str]) -> Optional[Platform]:
    """The spec's `os/arch[/variant]`, kept as written (index.json says what the spec says)."""
    if not text:
        return None
    parts = text.split("/")
    return Platform(parts[0], parts[1], parts[2] if len(parts) > 2 else None)


def oci_members(spec: dict[str, Any]) -> list[tuple[str, bytes | str]]:
    pinned = spec.get("manifest")
    if not pinned:
        raise UsageError("an OCI layout needs the pinned manifest (imageDigest): regenerate with docker2nix")
    manifest_digest, manifest_path = _blob(pinned)
    manifest = parse_manifest(_read(manifest_path), manifest_digest, pinned.get("mediaType") or None)
    if not isinstance(manifest, ImageManifest):
        raise ManifestError(f"the pinned manifest {manifest_digest} is an index, not an image manifest")
    _, config_path = _blob(spec["config"])  # its digest is the manifest's to give
    plan = plan_oci_layout(manifest, _read(config_path), ref_name=spec.get("tag"), image_name=spec.get("image"),
                           platform=_platform(spec.get("platform")))
    paths = dict(_blob(entry) for entry in spec["layers"])
    out: list[tuple[str, bytes | str]] = []
    for name, value in plan.entries:
        if isinstance(value, bytes):
            out.append((name, value))
        elif value.digest in paths:
            out.append((name, paths[value.digest]))
        else:
            raise UsageError(f"the manifest lists layer {value.digest}, which is not among imageLayers")
    return out


def _tar_chunks(members: Sequence[tuple[str, bytes | str]]) -> Iterator[bytes]:
    """A tar stream with archive.py's deterministic headers, reading store files as it goes."""
    from .archive import tar_header

    for name, value in members:
        if isinstance(value, bytes):
            yield tar_header(name, len(value))
            yield value
            size = len(value)
        else:
            size = os.path.getsize(value)
            yield tar_header(name, size)
            written = 0
            with open(value, "rb") as f:
                for chunk in iter(lambda: f.read(COPY_CHUNK), b""):
                    written += len(chunk)
                    yield chunk
            if written != size:
                raise HockerError(f"{value} changed size while being read")
        yield b"\0" * (-size % BLOCK)
    yield b"\0" * (2 * BLOCK)


def write_tar(members: Sequence[tuple[str, bytes | str]], out: BinaryIO) -> None:
    for chunk in _tar_chunks(members):
        out.write(chunk)
    out.flush()


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise UsageError(f"${name} is not set (run this as a Nix builder)")
    return value


GZIP_MAGIC = b"\x1f\x8b"


def _uncompressed_layer(path: str, diff_id: str, scratch: str) -> str:
    """The layer as a plain tar (a file in `scratch`, or the blob itself when it is one), checked against the
    config's diff_id. A zstd layer is kept as served (loaders read it; dockerTools' fromImage cannot)."""
    import gzip
    import hashlib

    with open(path, "rb") as f:
        magic = f.read(2)
    if magic != GZIP_MAGIC:
        return path
    target = os.path.join(scratch, parse_digest(diff_id).split(":", 1)[1] + ".tar")
    h = hashlib.sha256()
    with gzip.open(path, "rb") as src, open(target, "wb") as dst:
        for chunk in iter(lambda: src.read(COPY_CHUNK), b""):
            h.update(chunk)
            dst.write(chunk)
    if "sha256:" + h.hexdigest() != diff_id:
        raise ManifestError(f"layer {path} does not decompress to the config's diff_id {diff_id}")
    return target


def docker_archive_members(spec: dict[str, Any], scratch: str) -> list[tuple[str, bytes | str]]:
    """The `.dockerArchive` file: the layout of `docker save` (and of pullImage, i.e. skopeo's docker-archive),
    which dockerTools.buildImage/buildLayeredImage read as `fromImage`: `manifest.json`, `repositories`, the
    config as `<hex>.json`, and each layer UNCOMPRESSED as `<diff_id hex>/layer.tar` (they list
    `image/*/layer.tar` and take each member's sha256 as its diff_id)."""
    config_digest, config_path = _blob(spec["config"])
    config_bytes = _read(config_path)
    try:
        diff_ids = json.loads(config_bytes)["rootfs"]["diff_ids"]
    except (ValueError, KeyError, TypeError):
        raise ManifestError(f"the config {config_digest} has no rootfs.diff_ids") from None
    layers = [_blob(entry)[1] for entry in spec["layers"]]
    if len(diff_ids) != len(layers):
        raise ManifestError(f"the config lists {len(diff_ids)} diff_ids for {len(layers)} layers")
    config_name = parse_digest(config_digest).split(":", 1)[1] + ".json"
    names = [parse_digest(d).split(":", 1)[1] + "/layer.tar" for d in diff_ids]
    tags = list(spec.get("repoTags") or ())
    members: list[tuple[str, bytes | str]] = [
        ("manifest.json", json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": names}],
                                     separators=(",", ":")).encode())]
    if tags and names:
        repositories: dict[str, dict[str, str]] = {}
        for t in tags:
            name, _, tag = t.rpartition(":")
            repositories.setdefault(name, {})[tag] = names[-1].split("/", 1)[0]
        members.append(("repositories", json.dumps(repositories, separators=(",", ":")).encode()))
    members.append((config_name, config_bytes))
    seen = set()
    for name, path, diff_id in zip(names, layers, diff_ids):
        if name not in seen:  # a layer listed twice is stored once, as docker save does
            seen.add(name)
            members.append((name, _uncompressed_layer(path, diff_id, scratch)))
    return members


def build_docker_archive(spec: dict[str, Any], out: str) -> None:
    import tempfile

    # the build's own temporary directory (TMPDIR in a Nix build), never beside $out in the store
    with tempfile.TemporaryDirectory(prefix="hocker-layers-") as scratch, open(out, "wb") as f:
        write_tar(docker_archive_members(spec, scratch), f)


def build_oci_layout(spec: dict[str, Any], out: str) -> None:
    for name, value in oci_members(spec):
        target = os.path.join(out, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if isinstance(value, bytes):
            with open(target, "wb") as f:
                f.write(value)
        else:
            shutil.copyfile(value, target)


def composite_script(python: str, shell: str, spec_path: str, image: str) -> str:
    """compositeImage.sh: stream the docker-load archive to stdout from the store paths (nothing copied)."""
    return (f"#!{shell}\n"
            f"# Streams a `docker load` archive of {image} to standard output, assembled on the fly from the\n"
            "# config and layer store paths (hocker's compositeImage.sh). Use:\n"
            f"#   {os.path.dirname(spec_path)}/compositeImage.sh | docker load      (or: podman load)\n"
            f"exec {shlex.quote(python)} -m hocker_fetch.nixbuild stream {shlex.quote(spec_path)}\n")


def build_composite(spec: dict[str, Any], out: str, python: str, shell: str) -> None:
    os.makedirs(out)
    spec_path = os.path.join(out, "image.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f, sort_keys=True, indent=1)
        f.write("\n")
    script = os.path.join(out, "compositeImage.sh")
    tags = spec.get("repoTags") or ["(untagged)"]
    with open(script, "w") as f:
        f.write(composite_script(python, shell, spec_path, ", ".join(tags)))
    os.chmod(script, 0o555)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The builders read the derivation's attributes from the environment (Nix exports each one):
    `imageSpec`, `out`, and for `composite` `python`/`shell`.

        python -m hocker_fetch.nixbuild composite        # $out/compositeImage.sh + $out/image.json
        python -m hocker_fetch.nixbuild docker-archive   # $out = a `docker load` tar file
        python -m hocker_fetch.nixbuild oci-layout       # $out = an OCI image layout directory
        python -m hocker_fetch.nixbuild stream SPEC.json # the docker-load tar to stdout (compositeImage.sh)
    """
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        if not argv:
            raise UsageError("usage: python -m hocker_fetch.nixbuild composite|docker-archive|oci-layout|stream SPEC")
        cmd = argv[0]
        if cmd == "stream":
            if len(argv) != 2:
                raise UsageError("usage: python -m hocker_fetch.nixbuild stream SPEC.json")
            with open(argv[1]) as f:
                spec = load_spec(f.read())
            if sys.stdout.isatty():
                raise UsageError("refusing to write a tar archive to a terminal: pipe it into `docker load`")
            write_tar(docker_members(spec), sys.stdout.buffer)
            return
        spec = load_spec(_env("imageSpec"))
        out = _env("out")
        if cmd == "composite":
            build_composite(spec, out, _env("python"), _env("shell"))
        elif cmd == "docker-archive":
            build_docker_archive(spec, out)
        elif cmd == "oci-layout":
            build_oci_layout(spec, out)
        else:
            raise UsageError(f"unknown command {cmd!r}")

    from .command import run_command

    return run_command(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
