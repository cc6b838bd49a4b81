"""docker2nix's model and renderers: a pinned image -> a Nix expression (jinja2 templates) or a JSON lock.

Nothing here touches the network. Every Nix hash is the registry digest re-encoded (a registry digest is the
sha256 of the bytes served, a flat fixed-output derivation's hash is the sha256 of the file it stores), so
generating for a 5 GB image costs no download.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Sequence

from . import __version__
from .digest import to_nix_base32, to_sri
from .errors import UsageError, one_line
from .manifest import Descriptor, ImageManifest, Platform
from .reference import DEFAULT_REGISTRY_URI, DOCKER_HUB_API, Reference

if TYPE_CHECKING:
    import jinja2

HASH_FORMATS = ("base32", "sri")
LOCK_VERSION = 1

# Nix system <-> linux image platform (containerd names, normalised the way manifest.Platform does).
NIX_SYSTEMS: dict[Platform, str] = {
    Platform("linux", "amd64"): "x86_64-linux",
    Platform("linux", "arm64", "v8"): "aarch64-linux",
    Platform("linux", "386"): "i686-linux",
    Platform("linux", "arm", "v7"): "armv7l-linux",
    Platform("linux", "arm", "v6"): "armv6l-linux",
    Platform("linux", "arm", "v5"): "armv5tel-linux",
    Platform("linux", "ppc64le"): "powerpc64le-linux",
    Platform("linux", "s390x"): "s390x-linux",
    Platform("linux", "riscv64"): "riscv64-linux",
    Platform("linux", "mips64le"): "mips64el-linux",
    Platform("linux", "loong64"): "loongarch64-linux",
}

_STORE_NAME_BAD = re.compile(r"[^A-Za-z0-9+\-._?=]+")


def nix_system(platform: Optional[Platform]) -> Optional[str]:
    """The Nix system that runs images of `platform` natively (None when Nix has no name for it)."""
    return None if platform is None else NIX_SYSTEMS.get(platform.normalized())


def store_name(text: str) -> str:
    """Make `text` usable as a Nix store name: allowed characters only, no leading dot, at most 180 chars."""
    name = _STORE_NAME_BAD.sub("-", text).strip("-").lstrip(".") or "image"
    return name[:180]


def nix_string(value: Optional[str]) -> str:
    """A Nix double-quoted string literal (or `null`): escapes `\\`, `"` and `${` so nothing is interpolated."""
    return "null" if value is None else f'"{nix_string_body(value)}"'


def nix_string_body(value: str) -> str:
    """The inside of a Nix double-quoted string, for text spliced into a literal that the template writes."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def registry_uri(ref: Reference, base_url: Optional[str] = None) -> str:
    """The registry as hocker wrote it: `https://registry-1.docker.io/v2/`, `http://127.0.0.1:5000/v2/`.

    `base_url` is what the client actually used (it may have fallen back from https to http on loopback).
    """
    if ref.registry == DOCKER_HUB_API:
        return DEFAULT_REGISTRY_URI
    base = (base_url or ref.base_url).rstrip("/")
    return f"{base}/v2/"


def split_repository(path: str) -> tuple[str, str]:
    """hocker's (repository, imageName): `library/debian` -> (library, debian), `a/b/c` -> (a/b, c), `x` -> ("", x).

    The Nix side joins them back with a `/` (none when repository is empty), so every path round-trips.
    """
    head, sep, tail = path.rpartition("/")
    return (head, tail) if sep else ("", path)


def nix_hash(digest: str, fmt: str) -> str:
    """The Nix hash of the blob `digest` names, in `fmt` (`sri` or `base32`): the digest re-encoded."""
    return to_sri(digest) if fmt == "sri" else to_nix_base32(digest)


@dataclass(frozen=True)
class PlatformPin:
    """One single-platform manifest: what a Nix system builds."""

    platform: Optional[Platform]  # None: a single-arch image whose platform we did not download
    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @property
    def system(self) -> Optional[str]:
        return nix_system(self.platform)

    @classmethod
    def of(cls, manifest: ImageManifest, platform: Optional[Platform]) -> "PlatformPin":
        return cls(platform, manifest.descriptor, manifest.config, manifest.layers)


@dataclass(frozen=True)
class ImagePin:
    """Everything docker2nix writes: where the image lives and the pinned platform manifests."""

    ref: Reference
    registry: str  # hocker's URI form
    pins: tuple[PlatformPin, ...]
    index: Optional[Descriptor] = None  # the multi-platform index/list the tag pointed at
    alt_image_name: Optional[str] = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.pins:
            raise UsageError("no platform to pin")
        if len(self.pins) > 1:
            seen: dict[str, str] = {}
            for pin in self.pins:
                system = pin.system
                if system is None:
                    raise UsageError(f"platform {pin.platform} has no Nix system name; "
                                     "a multi-platform expression can only cover platforms Nix builds on")
                if system in seen:
                    raise UsageError(f"platforms {seen[system]} and {pin.platform} both map to {system}")
                seen[system] = str(pin.platform)

    @property
    def repository(self) -> str:
        return split_repository(self.ref.repository)[0]

    @property
    def image_name(self) -> str:
        return split_repository(self.ref.repository)[1]

    @property
    def tag(self) -> str:
        """The tag to write (hocker requires one): the given tag, else one derived from the digest."""
        if self.ref.tag:
            return self.ref.tag
        pinned = self.index or self.pins[0].manifest
        return "sha256-" + pinned.hex[:12]

    @property
    def name(self) -> str:
        """The `name` attribute (the derivation name): --altImageName, else the last path component."""
        return store_name(self.alt_image_name or self.image_name)

    @property
    def image(self) -> Optional[str]:
        """The loaded image's `name:tag` when --altImageName overrides the default (else the Nix side derives it)."""
        if not self.alt_image_name:
            return None
        alt = self.alt_image_name
        last = alt.rsplit("/", 1)[-1]
        return alt if ":" in last else f"{alt}:{self.tag}"

    @property
    def source(self) -> str:
        """Where this came from, for the header comment: `127.0.0.1:5000/library/hello:oci`."""
        text = f"{self.ref.registry}/{self.ref.repository}"
        if self.ref.tag:
            text += f":{self.ref.tag}"
        if self.ref.digest:
            text += f"@{self.ref.digest}"
        return text


# -- rendering ----------------------------------------------------------------------------------------------



TEMPLATES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "templates")
# templates/*.j2 compiled to Python modules (jinja2's ModuleLoader) by scripts/compile-templates, and committed:
# docker2nix then skips jinja2's lexer, parser and code generator on every run. SOURCES lists the sha256 of each
# .j2 they were compiled from; the compiled forms are used only while those match.
COMPILED = os.path.join(TEMPLATES, "compiled")
SOURCES = "SOURCES"


def template_sources() -> str:
    """`<sha256>  <name>` per template source, sorted: what SOURCES says when the compiled forms are current."""
    import hashlib

    lines = []
    for name in sorted(n for n in os.listdir(TEMPLATES) if n.endswith(".j2")):
        with open(os.path.join(TEMPLATES, name), "rb") as f:
            lines.append(f"{hashlib.sha256(f.read()).hexdigest()}  {name}\n")
    return "".join(lines)


def compiled_current() -> bool:
    try:
        with open(os.path.join(COMPILED, SOURCES)) as f:
            return f.read() == template_sources()
    except OSError:
        return False


def compile_templates(target: str = COMPILED) -> None:
    """(Re)write the compiled templates and their SOURCES (scripts/compile-templates)."""
    os.makedirs(target, exist_ok=True)
    for old in os.listdir(target):
        if old.endswith(".py") or old == SOURCES:
            os.unlink(os.path.join(target, old))
    _environment(compiled=False).compile_templates(target, zip=None, ignore_errors=False,
                                                   filter_func=lambda name: name.endswith(".j2") and "/" not in name)
    with open(os.path.join(target, SOURCES), "w") as f:
        f.write(template_sources())


@functools.lru_cache(maxsize=2)
def _environment(compiled: bool = True) -> "jinja2.Environment":
    """The templates' environment: from the compiled modules when they are current, else from the .j2 sources
    (also when this jinja2 cannot import modules compiled by another version: ChoiceLoader falls through)."""
    import jinja2

    loader: jinja2.BaseLoader = jinja2.FileSystemLoader(TEMPLATES)
    if compiled and compiled_current():
        loader = jinja2.ChoiceLoader([jinja2.ModuleLoader(COMPILED), loader])
    env = jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["nix"] = nix_string
    env.filters["nix_body"] = nix_string_body
    # for values in comments: a newline from a registry must not be able to start a line of Nix code
    env.filters["comment"] = lambda value: one_line(str(value))
    return env


def render_nix(pin: ImagePin, hash_format: str = "base32") -> str:
    """The Nix expression: hocker's `{ fetchDockerConfig, fetchDockerLayer, fetchdocker }: fetchdocker { ... }`."""
    if hash_format not in HASH_FORMATS:
        raise UsageError(f"unknown hash format {hash_format!r}: use base32 or sri")
    template = "image.nix.j2" if len(pin.pins) == 1 else "multi.nix.j2"
    hash_attr = "hash" if hash_format == "sri" else "sha256"
    pins = [{
        "platform": str(p.platform) if p.platform else None,
        "system": p.system,
        "image_digest": p.manifest.digest,
        "config_digest": p.config.digest,
        "config_hash": nix_hash(p.config.digest, hash_format),
        "layers": [{"hex": b.hex, "hash": nix_hash(b.digest, hash_format), "foreign": b.is_foreign}
                   for b in p.layers],
    } for p in pin.pins]
    return _environment().get_template(template).render(
        version=__version__,
        source=pin.source,
        name=pin.name,
        registry=pin.registry,
        repository=pin.repository,
        image_name=pin.image_name,
        tag=pin.tag,
        image=pin.image,
        index_digest=pin.index.digest if pin.index else None,
        hash_attr=hash_attr,
        pins=pins,
        pin=pins[0],
        systems=", ".join(p.system or "?" for p in pin.pins),
        notes=pin.notes,
    )


def _blob_json(blob: Descriptor) -> dict[str, Any]:
    return {"digest": blob.digest, "size": blob.size, "mediaType": blob.media_type,
            "sha256": to_nix_base32(blob.digest), "hash": to_sri(blob.digest)}


def lock_data(pin: ImagePin) -> dict[str, Any]:
    """The lock file: the same facts as the Nix expression, for tools (digests, sizes, media types, hashes)."""
    return {
        "lockVersion": LOCK_VERSION,
        "generator": f"docker2nix (hocker-fetch {__version__})",
        "registry": pin.registry,
        "host": pin.ref.registry,
        "repositoryPath": pin.ref.repository,
        "repository": pin.repository,
        "imageName": pin.image_name,
        "tag": pin.tag,
        "name": pin.name,
        "image": pin.image,
        "index": None if pin.index is None else {"digest": pin.index.digest, "size": pin.index.size,
                                                  "mediaType": pin.index.media_type},
        "platforms": [{
            "platform": str(p.platform) if p.platform else None,
            "system": p.system,
            "manifest": _blob_json(p.manifest),
            "config": _blob_json(p.config),
            "layers": [_blob_json(b) for b in p.layers],
        } for p in pin.pins],
    }


def render_json(pin: ImagePin) -> str:
    return json.dumps(lock_data(pin), indent=2) + "\n"


def pin_from_parts(ref: Reference, registry: str, manifests: Sequence[tuple[ImageManifest, Optional[Platform]]],
                   index: Optional[Descriptor] = None, alt_image_name: Optional[str] = None,
                   notes: Sequence[str] = ()) -> ImagePin:
    return ImagePin(ref, registry, tuple(PlatformPin.of(m, p) for m, p in manifests), index, alt_image_name,
                    tuple(notes))
