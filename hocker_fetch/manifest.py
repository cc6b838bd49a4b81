"""Manifests, indexes and platforms: parse what registries serve, refuse what we cannot use, pick a platform."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Any, Union

from .digest import parse_digest
from .errors import ManifestError, UsageError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
# All four modern types: without the OCI ones the reference registry 404s OCI content, without schema2 it
# downgrades to signed schema1.
ACCEPT = ", ".join(INDEX_TYPES + MANIFEST_TYPES)

FOREIGN_LAYER_TYPES = frozenset({
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
})
# What an image is made of: anything else is an artifact stored in a registry (a Helm chart, a signature, an
# SBOM), which docker/podman/skopeo cannot load however faithfully it is fetched.
IMAGE_CONFIG_TYPES = frozenset({
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
})
IMAGE_LAYER_TYPES = frozenset({
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
}) | FOREIGN_LAYER_TYPES
ENCRYPTED_SUFFIX = "+encrypted"  # ocicrypt: application/vnd.oci.image.layer.v1.tar+gzip+encrypted
_PLATFORM_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the OCI spec's recommended limit
MAX_CONFIG_BYTES = 64 * 1024 * 1024
MAX_BLOB_BYTES = 1 << 44  # 16 TiB: larger "sizes" are hostile, not images


@dataclass(frozen=True)
class Platform:
    """os/architecture[/variant], kept in the normalised form used for matching."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"invalid platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/arm64/v8")
        return cls(*parts).normalized()

    def normalized(self) -> "Platform":
        """amd64 = x86_64, arm64 = aarch64 (variant v8), arm defaults to v7: the containerd conventions."""
        os_ = (self.os or "").lower()
        arch = (self.architecture or "").lower()
        variant = (self.variant or "").lower() or None
        arch, default_variant = _ARCH_ALIASES.get(arch, (arch, None))
        if arch == "arm64" and variant in (None, "8", "v8"):
            variant = "v8"
        elif arch == "arm" and variant is None:
            variant = default_variant or "v7"
        elif variant is None:
            variant = default_variant
        return Platform(os_, arch, variant)


_ARCH_ALIASES = {
    "x86_64": ("amd64", None), "x86-64": ("amd64", None), "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"), "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i386": ("386", None), "i686": ("386", None), "386": ("386", None),
    "ppc64le": ("ppc64le", None), "s390x": ("s390x", None), "riscv64": ("riscv64", None),
}


def host_platform() -> Platform:
    """The host's Linux platform: what `docker pull` would pick here."""
    import platform  # only for the default platform: a blob fetch never needs it

    return Platform("linux", platform.machine() or "amd64").normalized()


@dataclass(frozen=True)
class Descriptor:
    """What a manifest says about a blob or another manifest: media type, digest, size (and where it runs).

    Every part of the program that names a blob uses this one type, and a Descriptor cannot exist with a
    digest other than `sha256:<64 hex>` or with a size that is not a plausible byte count (ManifestError):
    its digest is safe in a file name, its size safe to plan a file with.
    """

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    urls: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        try:
            canonical = parse_digest(self.digest if isinstance(self.digest, str) else "")
        except UsageError as exc:
            raise ManifestError(str(exc)) from None
        if canonical != self.digest:
            raise ManifestError(f"malformed digest {self.digest!r}: expected {canonical}")
        size = self.size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size > MAX_BLOB_BYTES:
            raise ManifestError(f"invalid size {size!r} for {self.digest}")

    @property
    def hex(self) -> str:
        """The digest's hex part: what blob file names are made of."""
        return self.digest.split(":", 1)[1]

    @property
    def is_attestation(self) -> bool:
        return (self.annotations.get("vnd.docker.reference.type") == "attestation-manifest"
                or (self.platform is not None and self.platform.os == "unknown"))

    @property
    def is_foreign(self) -> bool:
        return self.media_type in FOREIGN_LAYER_TYPES


class _Document:
    """What manifests and indexes share: the exact bytes served, their digest and media type."""

    media_type: str
    raw: bytes
    digest: str

    @property
    def descriptor(self) -> Descriptor:
        """How an index, a layout's index.json or a lock file names this document."""
        return Descriptor(self.media_type, self.digest, len(self.raw))


@dataclass(frozen=True)
class ImageManifest(_Document):
    """A single-platform manifest (OCI or docker schema2) with the exact bytes it was parsed from."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    raw: bytes
    digest: str
    artifact_type: str | None = None

    def unusable_as_image(self) -> str | None:
        """Why this registry object cannot be loaded as a container image (None: it can).

        hocker-manifest/-config/-layer fetch such objects exactly; only the tools that build an image
        (hocker-image, docker2nix) refuse them, before writing anything.
        """
        encrypted = sorted({d.media_type for d in self.layers if d.media_type.endswith(ENCRYPTED_SUFFIX)})
        if encrypted:
            return (f"has encrypted layers ({', '.join(encrypted)}): decrypt it first "
                    "(skopeo copy --decryption-key), then fetch the decrypted image")
        if self.artifact_type is not None:
            return (f"is an OCI artifact of type {self.artifact_type} (config type {self.config.media_type}), "
                    "not a container image")
        if self.config.media_type not in IMAGE_CONFIG_TYPES:
            return f"is an OCI artifact (config type {self.config.media_type}), not a container image"
        unknown = sorted({d.media_type for d in self.layers if d.media_type not in IMAGE_LAYER_TYPES})
        if unknown:
            return f"is an OCI artifact (layer type {', '.join(unknown)}), not a container image"
        return None


@dataclass(frozen=True)
class ImageIndex(_Document):
    """An OCI index or docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    raw: bytes
    digest: str

    def candidates(self) -> list[Descriptor]:
        """The entries a platform can be chosen from: manifests and nested indexes, attestations skipped.

        An entry without `platform` is one (OCI makes the field optional; skopeo and containerd accept it).
        """
        return [m for m in self.manifests if not m.is_attestation and m.media_type in MANIFEST_TYPES + INDEX_TYPES]

    def platforms(self) -> list[Descriptor]:
        """The candidates that say which platform they are for."""
        return [m for m in self.candidates() if m.platform is not None]

    def describe(self) -> str:
        """What the index really offers, for messages: its platforms, entries without one, attestations."""
        cands = self.candidates()
        listed = [str(d.platform) for d in cands if d.platform is not None]
        bare = len(cands) - len(listed)
        parts = [", ".join(listed)] if listed else []
        if bare:
            parts.append(f"{bare} entr{'y' if bare == 1 else 'ies'} without platform")
        attestations = sum(1 for m in self.manifests if m.is_attestation)
        others = len(self.manifests) - len(cands) - attestations
        if others:
            parts.append(f"{others} entr{'y' if others == 1 else 'ies'} of another media type")
        text = "; ".join(parts) or "none"
        if attestations:
            text += (f" ({attestations} attestation(s) skipped)" if parts
                     else f" (only attestations: {attestations})")
        return text


Parsed = Union[ImageManifest, ImageIndex]


def _descriptor(obj: Any, where: str, *, with_platform: bool = False) -> Descriptor:
    if not isinstance(obj, dict):
        raise ManifestError(f"{where} is not a JSON object")
    media_type = obj.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestError(f"{where} has no mediaType")
    annotations: dict[str, str] = obj["annotations"] if isinstance(obj.get("annotations"), dict) else {}
    urls = tuple(u for u in obj.get("urls", ()) if isinstance(u, str)) if isinstance(obj.get("urls"), list) else ()
    try:
        # parse_digest, unlike a Descriptor, also takes a bare hex or stray blanks, as manifests may hold
        digest = parse_digest(obj["digest"] if isinstance(obj.get("digest"), str) else "")
        size: Any = obj.get("size")  # checked by Descriptor
        desc = Descriptor(media_type, digest, size, None, annotations, urls)
    except (UsageError, ManifestError) as exc:
        raise ManifestError(f"{where}: {exc}") from None
    if with_platform and isinstance(obj.get("platform"), dict):
        p = obj["platform"]
        # platform names end up in file names, Nix files and messages: only plain tokens are accepted
        if not all(isinstance(p.get(k, ""), str) and _PLATFORM_WORD.fullmatch(p.get(k) or "x")
                   for k in ("os", "architecture", "variant")):
            raise ManifestError(f"{where} has a malformed platform")
        plat = Platform(p.get("os", ""), p.get("architecture", ""), p.get("variant")).normalized()
        desc = replace(desc, platform=plat)
    return desc


def schema1_error(digest: str) -> ManifestError:
    """The one refusal of docker schema1, whether seen in a manifest's bytes or in a HEAD's content type."""
    return ManifestError(
        f"manifest {digest} is docker schema1 (deprecated, unsigned-digest format); it is not supported: "
        "push the image again with a current docker/skopeo to get schema2 or OCI")


def parse_manifest(raw: bytes, digest: str, content_type: str | None = None) -> Parsed:
    """Parse manifest bytes (already verified against `digest`) into a manifest or an index.

    The bytes are kept untouched: digests are of raw bytes, never of re-serialised JSON.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ManifestError(f"manifest {digest} is not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise ManifestError(f"manifest {digest} is not a JSON object")
    media_type = doc.get("mediaType") or (content_type or "").split(";")[0].strip()
    version = doc.get("schemaVersion")
    if version == 1 or media_type in DOCKER_SCHEMA1:
        raise schema1_error(digest)
    if version != 2:
        raise ManifestError(f"manifest {digest} has unsupported schemaVersion {version!r}")
    if media_type not in INDEX_TYPES + MANIFEST_TYPES:
        # OCI allows the mediaType field to be absent; the shape tells us what it is.
        if "manifests" in doc:
            media_type = OCI_INDEX
        elif "config" in doc:
            media_type = OCI_MANIFEST
        else:
            raise ManifestError(f"manifest {digest} has unknown media type {media_type!r}")
    if media_type in INDEX_TYPES:
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise ManifestError(f"index {digest} has no manifests list")
        manifests = tuple(_descriptor(m, f"index {digest} entry {i}", with_platform=True)
                          for i, m in enumerate(items))
        return ImageIndex(media_type, manifests, raw, digest)
    if "config" not in doc:
        raise ManifestError(f"manifest {digest} has no config")
    config = _descriptor(doc["config"], f"manifest {digest} config")
    if config.size > MAX_CONFIG_BYTES:
        raise ManifestError(f"manifest {digest} config size {config.size} is implausibly large")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise ManifestError(f"manifest {digest} has no layers list")
    layers = tuple(_descriptor(layer, f"manifest {digest} layer {i}") for i, layer in enumerate(layers_doc))
    artifact_type = doc.get("artifactType")
    if artifact_type is not None and (not isinstance(artifact_type, str) or not artifact_type):
        raise ManifestError(f"manifest {digest} has a malformed artifactType")
    return ImageManifest(media_type, config, layers, raw, digest, artifact_type)


def check_is_image(manifest: ImageManifest, name: str) -> ImageManifest:
    """`manifest` if it can be loaded as a container image; else ManifestError naming what it is instead."""
    why = manifest.unusable_as_image()
    if why is not None:
        raise ManifestError(f"{name} {why}")
    return manifest


def platform_matches(have: Platform, wanted: Platform) -> bool:
    """`have` is `wanted` once both are normalised; a `wanted` without variant takes any variant."""
    have, wanted = have.normalized(), wanted.normalized()
    return have == wanted or (wanted.variant is None
                              and (have.os, have.architecture) == (wanted.os, wanted.architecture))


def select_platform(index: ImageIndex, wanted: Platform) -> Descriptor:
    """Pick the entry for `wanted`, skipping attestations; variants must match once defaults are applied.

    Several entries for one platform (e.g. gzip and zstd instances): the first exact match, else the first
    variant-less match. An entry without `platform` is taken only when it is the index's one candidate
    (its platform is then unknown: callers check the config when the platform was asked for explicitly);
    two or more such entries are ambiguous and refused.
    """
    wanted = wanted.normalized()
    candidates = index.candidates()
    for d in candidates:
        if d.platform == wanted:
            return d
    for d in candidates:
        if d.platform is not None and platform_matches(d.platform, wanted):
            return d
    if len(candidates) == 1 and candidates[0].platform is None:
        return candidates[0]
    raise ManifestError(f"no manifest for platform {wanted} in index {index.digest}; available: {index.describe()}")


def config_platform(config: bytes) -> Platform | None:
    """The platform an image config declares (`os`, `architecture`, `variant`), or None if it names none."""
    try:
        doc = json.loads(config)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ManifestError("the image config is not valid JSON") from None
    if not isinstance(doc, dict):
        raise ManifestError("the image config is not a JSON object")
    fields = [doc.get(k) for k in ("os", "architecture", "variant")]
    if not all(v is None or (isinstance(v, str) and (not v or _PLATFORM_WORD.fullmatch(v))) for v in fields):
        raise ManifestError("the image config has a malformed platform")
    os_, arch, variant = fields
    if not os_ or not arch:
        return None
    return Platform(os_, arch, variant or None).normalized()


def check_config_platform(manifest: ImageManifest, config: bytes, wanted: Platform) -> Platform | None:
    """Refuse an image whose config declares another platform than the one explicitly asked for.

    Returns the declared platform. A config that declares no os/architecture is accepted (nothing
    contradicts the request), and None returned.
    """
    have = config_platform(config)
    if have is not None and not platform_matches(have, wanted):
        raise ManifestError(f"image {manifest.digest} is for {have} (its config {manifest.config.digest}), "
                            f"not the platform {wanted.normalized()} asked for")
    return have
