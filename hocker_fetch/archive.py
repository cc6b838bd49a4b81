"""docker-archive and OCI image layout outputs, planned from the manifest so no blob is copied twice.

Every blob's size is known from the manifest before a byte is downloaded, so the whole layout of the output
(`ArchivePlan`: small static members and `manifest.Descriptor`s of blobs to fetch; for a tar, `TarLayout`:
every header and offset) is computed first, the small members written, and the layers then downloaded in
parallel straight to their final place through `sinks.RegionSink`s / `sinks.FileSink`s (see `image.py`).
Member order and every header byte are fixed here, not by the Python version, so the same image always
gives the same bytes: Nix hashes of the outputs stay stable.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from .digest import verify_bytes
from .errors import UsageError
from .manifest import OCI_INDEX, Descriptor, ImageManifest, Platform
from .reference import TAG
from .sinks import FileSink, RegionSink

__all__ = [
    "BLOCK",
    "ArchivePlan",
    "TarMember",
    "TarLayout",
    "plan_docker_archive",
    "plan_oci_layout",
    "write_tar",
    "write_dir",
    "OCI_LAYOUT",
]

BLOCK = 512
OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"
CONTAINERD_NAME_ANNOTATION = "io.containerd.image.name"


def _json(obj: Any) -> bytes:
    """Deterministic compact JSON (key order as constructed, ASCII only)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _pad(n: int) -> int:
    return -n % BLOCK


# --------------------------------------------------------------------------- plans

Entry = Tuple[str, Union[bytes, Descriptor]]


@dataclass(frozen=True)
class ArchivePlan:
    """The members of an archive/layout, in order: static bytes or blobs to download.

    * `entries`: `((name, bytes | Descriptor), ...)` in archive order;
    * `static`: `{name: bytes}`; `blobs`: `{name: Descriptor}`;
    * `blob_names`: `{digest: name}` (each distinct blob appears once).
    """

    entries: Tuple[Entry, ...]

    @property
    def static(self) -> Dict[str, bytes]:
        return {n: v for n, v in self.entries if isinstance(v, bytes)}

    @property
    def blobs(self) -> Dict[str, Descriptor]:
        return {n: v for n, v in self.entries if isinstance(v, Descriptor)}

    @property
    def blob_names(self) -> Dict[str, str]:
        return {v.digest: n for n, v in self.entries if isinstance(v, Descriptor)}

    def tar_layout(self) -> "TarLayout":
        return TarLayout((n, v if isinstance(v, bytes) else v.size) for n, v in self.entries)

    @property
    def tar_size(self) -> int:
        return self.tar_layout().total_size


class _PlanBuilder:
    def __init__(self) -> None:
        self.entries: List[Entry] = []
        self.names: set = set()

    def add(self, name: str, value: Union[bytes, Descriptor]) -> bool:
        if name in self.names:
            return False
        self.names.add(name)
        self.entries.append((name, value))
        return True

    def plan(self) -> ArchivePlan:
        return ArchivePlan(tuple(self.entries))


def _split_repo_tag(repo_tag: str) -> Tuple[str, str]:
    if not isinstance(repo_tag, str) or "@" in repo_tag:
        raise UsageError(f"a docker-archive tag must be name:tag, not a digest reference: {repo_tag}")
    colon, slash = repo_tag.rfind(":"), repo_tag.rfind("/")
    name, tag = repo_tag[:colon], repo_tag[colon + 1 :]
    if colon <= slash or not name or not TAG.fullmatch(tag):
        raise UsageError(f"a docker-archive tag must be name:tag: {repo_tag!r}")
    return name, tag


def plan_docker_archive(
    config: Descriptor,
    config_bytes: bytes,
    layers: Iterable[Descriptor],
    repo_tags: Sequence[str] = (),
) -> ArchivePlan:
    """Members of a `docker load` archive, in this order (`repositories` only with tags and layers):

    * `manifest.json`: `[{"Config":..,"RepoTags":[..],"Layers":[..]}]` (a layer listed twice in the
      manifest is listed twice here, stored once);
    * `repositories`: `{name: {tag: <hex of the top layer>}}`: legacy, only read by loaders when
      manifest.json is absent; `docker save` puts the top layer's v1 ID there, we put the top layer
      member's hex;
    * `<config-hex>.json`: `config_bytes` exactly (VerificationError unless they are what `config` names),
      so the loaded image ID is the config digest;
    * `<layer-hex>.tar` per distinct layer: the blob as served (gzip, zstd or plain tar; loaders detect and
      decompress it; `docker load`, `podman load` and `skopeo` check it against the config's
      `rootfs.diff_ids`).

    `layers` are in manifest order; `repo_tags` are `name:tag` strings (UsageError otherwise).
    """
    verify_bytes(config_bytes, config.digest, config.size, "config")
    refs = list(layers)
    tags = list(repo_tags)
    parsed = [_split_repo_tag(t) for t in tags]
    config_name = config.hex + ".json"
    layer_names = [r.hex + ".tar" for r in refs]

    b = _PlanBuilder()
    b.add("manifest.json", _json([{"Config": config_name, "RepoTags": tags, "Layers": layer_names}]))
    if parsed and refs:
        repositories: Dict[str, Dict[str, str]] = {}
        for name, tag in parsed:
            repositories.setdefault(name, {})[tag] = refs[-1].hex
        b.add("repositories", _json(repositories))
    b.add(config_name, bytes(config_bytes))
    for name, ref in zip(layer_names, refs):
        b.add(name, ref)
    return b.plan()


def plan_oci_layout(
    manifest: ImageManifest,
    config_bytes: bytes,
    *,
    ref_name: Optional[str] = None,
    image_name: Optional[str] = None,
    platform: Optional[Platform] = None,
) -> ArchivePlan:
    """Members of an OCI image layout holding one image manifest: `oci-layout`, `index.json`, then
    `blobs/<alg>/<hex>` for the manifest, the config and each distinct layer.

    The manifest is stored exactly as served (`manifest.raw`, checked against `manifest.digest`) under its
    own media type; docker schema2 manifests are stored as they are (skopeo reads them from an OCI layout).
    `config_bytes` must be what the manifest's config descriptor names (VerificationError).

    `index.json` gets one descriptor (mediaType, digest, size, optional `platform`) annotated with
    `org.opencontainers.image.ref.name` = `ref_name` (the tag) and `io.containerd.image.name` =
    `image_name` (the full name), each only when given.
    """
    entry = manifest.descriptor
    verify_bytes(config_bytes, manifest.config.digest, manifest.config.size, "config")
    verify_bytes(manifest.raw, entry.digest, what="manifest")

    desc: Dict[str, Any] = {"mediaType": entry.media_type, "digest": entry.digest, "size": entry.size}
    if platform:
        desc["platform"] = {"architecture": platform.architecture, "os": platform.os}
        if platform.variant is not None:
            desc["platform"]["variant"] = platform.variant
    annotations: Dict[str, str] = {}
    if image_name:
        annotations[CONTAINERD_NAME_ANNOTATION] = image_name
    if ref_name:
        annotations[REF_NAME_ANNOTATION] = ref_name
    if annotations:
        desc["annotations"] = annotations
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}

    def blob_path(d: Descriptor) -> str:
        return "blobs/" + d.digest.replace(":", "/", 1)

    b = _PlanBuilder()
    b.add("oci-layout", OCI_LAYOUT)
    b.add("index.json", _json(index))
    b.add(blob_path(entry), bytes(manifest.raw))
    b.add(blob_path(manifest.config), bytes(config_bytes))
    for layer in manifest.layers:
        b.add(blob_path(layer), layer)
    return b.plan()


# --------------------------------------------------------------------------- tar


def _octal(value: int, width: int) -> bytes:
    """`width-1` zero-padded octal digits and a NUL."""
    digits = b"%0*o" % (width - 1, value)
    if len(digits) > width - 1:
        raise ValueError(f"{value} does not fit a {width}-byte tar field")
    return digits + b"\0"


def _ustar_block(name_field: bytes, size: int, typeflag: bytes, mode: int = 0o644) -> bytes:
    h = bytearray(BLOCK)
    h[0:100] = name_field[:100].ljust(100, b"\0")
    h[100:108] = _octal(mode, 8)
    h[108:116] = _octal(0, 8)  # uid
    h[116:124] = _octal(0, 8)  # gid
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(0, 12)  # mtime
    h[148:156] = b" " * 8  # checksum placeholder
    h[156:157] = typeflag
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    # uname/gname (265..329) stay empty
    h[329:337] = _octal(0, 8)  # devmajor
    h[337:345] = _octal(0, 8)  # devminor
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def _pax_record(key: str, value: bytes) -> bytes:
    payload = b" " + key.encode("ascii") + b"=" + value + b"\n"
    length = len(payload) + 1
    while len(str(length)) + len(payload) != length:
        length = len(str(length)) + len(payload)
    return str(length).encode("ascii") + payload


_MAX_OCTAL_SIZE = 8**11 - 1


def tar_header(name: str, size: int) -> bytes:
    """The header block(s) of a regular-file member.

    POSIX ustar with a PAX extended header (named `././@PaxHeader`) only where needed: names longer than
    100 bytes or not ASCII, sizes of 8 GiB or more. Every member is a regular file, mode 0644, uid/gid 0,
    empty uname/gname, mtime 0. A tar ends with two zero blocks (no padding to a 10 KiB record).
    """
    if not name or "\0" in name:
        raise ValueError(f"bad tar member name: {name!r}")
    raw = name.encode("utf-8")
    records = b""
    if len(raw) > 100 or not name.isascii():
        records += _pax_record("path", raw)
        name_field = name.encode("ascii", "replace")[:100]
    else:
        name_field = raw
    header_size = size
    if size > _MAX_OCTAL_SIZE:
        records += _pax_record("size", str(size).encode("ascii"))
        header_size = 0
    out = b""
    if records:
        out = _ustar_block(b"././@PaxHeader", len(records), b"x") + records + b"\0" * _pad(len(records))
    return out + _ustar_block(name_field, header_size, b"0")


@dataclass(frozen=True)
class TarMember:
    name: str
    size: int
    header_offset: int
    data_offset: int
    data: Optional[bytes]  # None: filled later through a RegionSink
    header: bytes


class TarLayout:
    """The byte layout of a tar file, computed before any member's data exists.

    `members` is an ordered iterable of `(name, size)` for regions filled later and `(name, bytes)` for
    small in-memory members. Attributes: `members` (list of `TarMember`), `total_size`.

    `write_skeleton` writes headers, in-memory data, padding and the two end-of-archive zero blocks, and
    sizes the file; each remaining region `[data_offset(name), +size)` is then filled by a `RegionSink`
    (`region_sink`), in any order and from any thread.
    """

    def __init__(self, members: Iterable[Tuple[str, Union[int, bytes]]]) -> None:
        self.members: List[TarMember] = []
        self._by_name: Dict[str, TarMember] = {}
        offset = 0
        for name, spec in members:
            if isinstance(spec, (bytes, bytearray, memoryview)):
                blob = bytes(spec)
                data: Optional[bytes] = blob
                size = len(blob)
            elif isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
                data, size = None, spec
            else:
                raise ValueError(f"member {name!r}: size or bytes expected, got {spec!r}")
            if name in self._by_name:
                raise ValueError(f"duplicate tar member {name!r}")
            header = tar_header(name, size)
            m = TarMember(name, size, offset, offset + len(header), data, header)
            self.members.append(m)
            self._by_name[name] = m
            offset = m.data_offset + size + _pad(size)
        self.total_size = offset + 2 * BLOCK

    def member(self, name: str) -> TarMember:
        return self._by_name[name]

    def data_offset(self, name: str) -> int:
        return self._by_name[name].data_offset

    def write_skeleton(self, fd: int) -> None:
        """Write everything but the regions; the file is truncated and sized to `total_size`.

        Sizing with `ftruncate` makes all padding and the end blocks zeros
        (and the unfilled regions holes, until their sinks fill them).
        """
        os.ftruncate(fd, 0)
        os.ftruncate(fd, self.total_size)
        for m in self.members:
            chunk = m.header + (m.data or b"")
            _pwrite_all(fd, chunk, m.header_offset)

    def region_sink(self, fd: int, name: str, digest: Optional[str] = None) -> RegionSink:
        m = self._by_name[name]
        if m.data is not None:
            raise ValueError(f"member {name!r} is in-memory, it has no region to fill")
        return RegionSink(fd, m.data_offset, m.size, digest=digest)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _fileno(out: Any) -> int:
    return out if isinstance(out, int) else out.fileno()


def write_tar(plan: ArchivePlan, out: Any) -> Dict[str, RegionSink]:
    """Lay `plan` out as a tar in `out` (an AtomicFile, file object or fd).

    Writes the skeleton and returns `{digest: RegionSink}` for every blob
    still to be fetched; fill each, call `verify_complete()` on each, then
    commit the AtomicFile.
    """
    fd = _fileno(out)
    layout = plan.tar_layout()
    layout.write_skeleton(fd)
    return {ref.digest: layout.region_sink(fd, name, ref.digest) for name, ref in plan.blobs.items()}


def write_dir(plan: ArchivePlan, out: Any) -> Dict[str, FileSink]:
    """Write `plan` as a directory tree into `out` (an `atomic.AtomicDir`).

    Static members are written now; returns `{digest: FileSink}` over
    freshly created blob files (closed and fsynced by the AtomicDir's commit).
    """
    for name, value in plan.entries:
        if isinstance(value, bytes):
            out.write_file(name, value)
    return {
        ref.digest: FileSink(out.create_file(name), size=ref.size, digest=ref.digest)
        for name, ref in plan.blobs.items()
    }
