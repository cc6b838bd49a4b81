"""Image references: docker's normalisation rules, and hocker's `--registry URI REPOSITORY TAG` form."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from .digest import parse_digest
from .errors import UsageError

DOCKER_HUB_API = "registry-1.docker.io"
#: Every host name that means Docker Hub (the API itself lives on registry-1.docker.io); nix/default.nix
#: keeps the same list for hocker-era files.
DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
DEFAULT_REGISTRY_URI = "https://registry-1.docker.io/v2/"

# The grammar from distribution/reference (docker's own parser).
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
# Go's \w is ASCII-only: without re.ASCII, Python's would let any Unicode letter into a tag.
TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[0-9a-fA-F:.]+\])(?::[0-9]{1,5})?")
_MAX_NAME = 255
_PREFIX_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


@dataclass(frozen=True)
class Reference:
    """A fully normalised image reference: where to connect, which repository, and tag and/or digest."""

    registry: str  # API host[:port], e.g. "registry-1.docker.io" or "127.0.0.1:5000"
    repository: str  # e.g. "library/debian", "a/b/c"
    tag: str | None = None
    digest: str | None = None
    scheme: str = "https"
    scheme_given: bool = field(default=False, compare=False)  # from --registry: never fall back to http
    #: where the API lives on the host, from a --registry URI with a path (`/artifactory/api/docker/<key>`):
    #: requests go to {prefix}/v2/...; "" for a registry at the root (every docker reference)
    prefix: str = ""

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.registry}{self.prefix}"

    @property
    def is_docker_hub(self) -> bool:
        return self.registry in DOCKER_HUB_HOSTS

    @property
    def host(self) -> str:
        """The host name without port or brackets (for loopback checks)."""
        host = self.registry
        if host.startswith("["):
            return host[1:].split("]", 1)[0]
        return host.rsplit(":", 1)[0] if ":" in host else host

    @property
    def reference(self) -> str:
        """What to put after /manifests/: the digest when pinned, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        """The familiar name docker prints: `debian`, `user/app`, `ghcr.io/o/i`, `127.0.0.1:5000/a/b`."""
        if self.is_docker_hub:
            if self.repository.startswith("library/"):
                return self.repository[len("library/"):]
            first = self.repository.split("/", 1)[0]
            if "." in first or ":" in first or first == "localhost":
                return f"docker.io/{self.repository}"  # else it would read as a registry host
            return self.repository
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_digest(self, digest: str) -> "Reference":
        return replace(self, digest=parse_digest(digest))


def parse_registry_base(uri: str) -> tuple[str, str, str]:
    """`https://host[:port][/PREFIX][/v2/]` (or bare `host[:port]`) -> (scheme, host[:port], /PREFIX or "").

    hocker took the registry as a URI ending in /v2/, with a path if the API lives under one (Artifactory's
    repository path `https://HOST/artifactory/api/docker/<repo-key>/v2/`); people also type it without /v2/.
    Docker Hub's aliases all mean its API host, which has no prefix.
    """
    text = uri.strip()
    if "://" not in text:
        text = "https://" + text
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise UsageError(f"invalid --registry {uri!r}: expected https://host[:port][/v2/]") from None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"invalid --registry {uri!r}: the scheme must be https:// or http://")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise UsageError(f"invalid --registry {uri!r}: expected https://host[:port][/v2/]")
    path = parts.path.rstrip("/")
    path = path[:-3].rstrip("/") if path.endswith("/v2") else path
    segments = path.split("/")[1:] if path else []
    if not all(_PREFIX_SEGMENT.fullmatch(s) and s not in (".", "..") for s in segments):
        raise UsageError(f"invalid --registry {uri!r}: a path prefix is /-separated letters, digits, '.', '_', "
                         "'~', '-' (e.g. https://host/artifactory/api/docker/KEY/v2/)")
    if segments and segments[-1] == "v1":
        raise UsageError(f"invalid --registry {uri!r}: the v1 registry API is not supported (use /v2/)")
    host = parts.netloc
    if not host or not _HOST.fullmatch(host):
        raise UsageError(f"invalid --registry {uri!r}: missing or malformed host")
    if host.lower() in DOCKER_HUB_HOSTS:
        if segments:
            raise UsageError(f"invalid --registry {uri!r}: Docker Hub's API has no path prefix")
        host = DOCKER_HUB_API
    return parts.scheme, host, "/".join([""] + segments)


def _split_name(text: str) -> tuple[str, str | None, str | None]:
    """`path[:tag][@digest]` -> its three parts (syntax checks only)."""
    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        digest = parse_digest(digest)
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not TAG.fullmatch(tag):
            raise UsageError(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-' (at most 128)")
    return name, tag, digest


def _check_path(path: str, original: str) -> None:
    if not path:
        raise UsageError(f"invalid image reference {original!r}: empty repository name")
    if len(path) > _MAX_NAME:
        raise UsageError(f"invalid image reference {original!r}: repository name longer than {_MAX_NAME}")
    if not _PATH.fullmatch(path) and _PATH.fullmatch(path.lower()):
        raise UsageError(f"invalid image reference {original!r}: repository names must be lowercase")
    if not _PATH.fullmatch(path):
        raise UsageError(
            f"invalid image reference {original!r}: repository path components are lowercase letters, digits "
            "and separators ('.', '_', '__', '-'), joined by '/'")


def parse_reference(text: str) -> Reference:
    """A docker reference with docker's default tag: no tag and no digest means `latest`."""
    ref = _parse_reference(text)
    return ref if ref.tag or ref.digest else replace(ref, tag="latest")


def _parse_reference(text: str) -> Reference:
    """Parse `[host[:port]/]path[:tag][@sha256:...]` the way docker does.

    The first component is a registry only if it has '.' or ':' or is `localhost`; Docker Hub names get
    `library/` when they have one component. The tag stays None when absent.
    """
    original = text
    text = text.strip()
    if not text or any(ch.isspace() for ch in text):
        raise UsageError(f"invalid image reference {original!r}")
    name, tag, digest = _split_name(text)
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        if not _HOST.fullmatch(first):
            raise UsageError(f"invalid image reference {original!r}: malformed registry host {first!r}")
        host, path = first, rest
    else:
        host, path = "docker.io", name
    _check_path(path, original)
    scheme = "https"
    if host.lower() in DOCKER_HUB_HOSTS:
        host = DOCKER_HUB_API
        if "/" not in path:
            path = "library/" + path
    return Reference(registry=host, repository=path, tag=tag, digest=digest, scheme=scheme)


def _refuse_full_reference(image: str, registry: str, tag: str | None) -> None:
    """hocker's form wants a repository path; a full reference there (`HOST:PORT/repo:tag`) gets both forms shown,
    not the path grammar's complaint about ':'. A first component that is a valid path (`my.org/app`) is kept."""
    first, sep, _rest = image.strip().partition("/")
    if not sep or not ("." in first or ":" in first or first == "localhost") or _PATH.fullmatch(first):
        return
    try:
        ref = _parse_reference(image)
    except UsageError:
        return
    path = ref.repository + (f":{ref.tag}" if ref.tag else "") + (f"@{ref.digest}" if ref.digest else "")
    tag_arg = f" {tag}" if tag else ""
    raise UsageError(
        f"{image!r} is a full image reference, but with --registry the image is a repository path: give either "
        f"--registry {registry} {path}{tag_arg}, or {image}{tag_arg} without --registry")


def resolve_reference(image: str, tag: str | None = None, registry: str | None = None) -> Reference:
    """The CLI's two forms: hocker's `--registry URI REPOSITORY [TAG]`, or a docker reference `IMAGE [TAG]`.

    With `--registry`, IMAGE is a repository path on that registry (it may carry `:tag` or `@digest`); TAG
    may be given as the second argument, but must not contradict one inside IMAGE.
    """
    if registry is not None:
        scheme, host, prefix = parse_registry_base(registry)
        _refuse_full_reference(image, registry, tag)
        path, own_tag, digest = _split_name(image.strip())
        _check_path(path, image)
        if host == DOCKER_HUB_API and "/" not in path:
            path = "library/" + path
        # a scheme-less --registry is found like a docker reference's host: https, then http on loopback
        ref = Reference(registry=host, repository=path, tag=own_tag, digest=digest, scheme=scheme,
                        scheme_given="://" in registry, prefix=prefix)
    else:
        ref = _parse_reference(image)
    if tag is not None:
        if not TAG.fullmatch(tag):
            raise UsageError(f"invalid tag {tag!r}: use letters, digits, '_', '.', '-' (at most 128)")
        if ref.tag is not None and ref.tag != tag:
            raise UsageError(f"tag given twice: {ref.tag!r} in the image and {tag!r} as an argument")
        ref = replace(ref, tag=tag)
    if ref.tag is None and ref.digest is None:
        ref = replace(ref, tag="latest")
    return ref
