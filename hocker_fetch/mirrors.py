"""Mirrors: where else a registry's bytes may come from, configured the way skopeo and podman configure it.

Reads containers-registries.conf(5) v2 (`[[registry]]` with `prefix`/`location`/`insecure`/`blocked`/
`mirror-by-digest-only` and `[[registry.mirror]]` with `location`/`insecure`/`pull-from-mirror`) from the
files containers/image reads, in its order, and applies its rule: the longest matching prefix picks the
entry, its mirrors are tried in order (those allowed for this kind of request), then the registry itself.
Everything else in those files (search registries, short-name aliases, v1 tables) is none of our business.
A mirror cannot change what we build: every byte is checked against a digest, so a mirror is only ever a
cheaper place to fetch the same bytes from.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping, NamedTuple, Optional, Sequence

from .errors import UsageError
from .reference import _HOST as _HOSTPORT
from .reference import _PATH, DOCKER_HUB_API, DOCKER_HUB_HOSTS

SYSTEM_CONF = "/etc/containers/registries.conf"
PULL_MODES = ("all", "digest-only", "tag-only")
#: pull-from-mirror of the ad hoc `--mirror` mirrors: a tag always resolves at the origin (a stale mirror
#: cannot move a pin) while every by-digest request (manifests from a pin, all blobs) uses the mirror
FLAG_PULL_MODE = "digest-only"


# NamedTuples, not dataclasses: every tool imports this module, and a dataclass costs 1-2 ms to create


class Mirror(NamedTuple):
    """One `[[registry.mirror]]` (or `--mirror`): a location `host[:port][/path]` and when it may be used."""

    location: str
    insecure: bool = False
    pull_from_mirror: str = "all"

    def serves(self, by_digest: bool) -> bool:
        """Whether this mirror may answer a by-digest (or a by-tag) request."""
        if self.pull_from_mirror == "digest-only":
            return by_digest
        if self.pull_from_mirror == "tag-only":
            return not by_digest
        return True


class RegistryEntry(NamedTuple):
    """One `[[registry]]` table, validated; `origin` names the file it came from (for messages)."""

    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()
    origin: str = ""


class Source(NamedTuple):
    """One place to send a request: `host` (host[:port]) and the `repository` there (rewritten)."""

    host: str
    repository: str
    insecure: bool
    mirror: bool


class MirrorConfig:
    """The merged configuration (entries sorted by prefix, as containers/image keeps them) plus `--mirror`s."""

    def __init__(self, entries: Sequence[RegistryEntry] = (), extra: Sequence[Mirror] = (),
                 files: Sequence[str] = ()):
        self.entries = list(entries)
        self.extra = tuple(extra)  # from --mirror, tried before the configured mirrors
        self.files = tuple(files)  # what was read, for messages

    def find(self, name: str) -> Optional[RegistryEntry]:
        """The entry with the longest prefix matching `name` (`host/repo`), as FindRegistry picks it."""
        best, best_len = None, 0
        for entry in self.entries:
            if match_prefix(name, entry.prefix) != -1 and len(entry.prefix) > best_len:
                best, best_len = entry, len(entry.prefix)
        return best

    def sources(self, registry: str, repository: str, by_digest: bool) -> list[Source]:
        """Where to ask, in order, for something in `registry/repository`: the mirrors, then the origin.

        Raises UsageError when the configuration blocks the registry.
        """
        name = image_name(registry, repository)
        entry = self.find(name)
        host = name.split("/", 1)[0]  # --mirror stands in for the whole registry
        out = [_source(_rewrite(name, host, m.location), m.insecure, True) for m in self.extra
               if m.serves(by_digest)]
        if entry is None:
            return out + [Source(registry, repository, False, False)]
        if entry.blocked:
            raise UsageError(f"{name} is blocked by {entry.origin} ([[registry]] prefix {entry.prefix!r})")
        for m in entry.mirrors:
            if m.serves(by_digest):
                out.append(_source(_rewrite(name, entry.prefix, m.location), m.insecure, True))
        if entry.location == entry.prefix or not entry.location:
            out.append(Source(registry, repository, entry.insecure, False))
        else:
            out.append(_source(_rewrite(name, entry.prefix, entry.location), entry.insecure, False))
        return out

    def has_mirrors(self, registry: str, repository: str, by_digest: bool) -> bool:
        """Whether any mirror would be asked for such a request (cheap; never raises for blocked entries)."""
        name = image_name(registry, repository)
        entry = self.find(name)
        mirrors = list(self.extra) + (list(entry.mirrors) if entry is not None else [])
        return any(m.serves(by_digest) for m in mirrors)


def origin_of(config: Optional[MirrorConfig], registry: str, repository: str) -> Source:
    """Where the image's registry really is (a `location` may move it); UsageError if it is blocked, or if a
    location rewrites the name into something that is not host/repository (found now, not mid-download)."""
    if config is None:
        return Source(registry, repository, False, False)
    config.sources(registry, repository, True)
    return config.sources(registry, repository, False)[-1]


def image_name(registry: str, repository: str) -> str:
    """The name containers/image matches prefixes against: `docker.io/library/x` for Docker Hub."""
    host = "docker.io" if registry.lower() in DOCKER_HUB_HOSTS else registry
    return f"{host}/{repository}"


def match_prefix(name: str, prefix: str) -> int:
    """Length of the part of `name` that `prefix` matches, or -1 (containers/image's refMatchingPrefix).

    A plain prefix matches at a component boundary (`/`, `:` or `@` next); `*.example.com` matches any
    subdomain of example.com in the host part only (not example.com itself).
    """
    if prefix.startswith("*."):
        suffix = prefix[1:]
        index = name.find(suffix)
        if index == -1 or "/" in name[:index]:
            return -1
        index += len(suffix)
        return index if index == len(name) or name[index] in ":/@" else -1
    if name == prefix:
        return len(prefix)
    if name.startswith(prefix) and len(name) > len(prefix) and name[len(prefix)] in ":/@":
        return len(prefix)
    return -1


def _rewrite(name: str, prefix: str, location: str) -> str:
    """`location` + what follows the matched prefix in `name` (how a mirror's repository path is derived)."""
    length = match_prefix(name, prefix)
    return name if length == -1 else location + name[length:]


def _source(rewritten: str, insecure: bool, mirror: bool) -> Source:
    host, _, repository = rewritten.partition("/")
    if not repository or not _PATH.fullmatch(repository):
        raise UsageError(f"registries.conf or --mirror rewrites the image to {rewritten!r}, which is not "
                         "host/repository: check the location")
    if host.lower() in DOCKER_HUB_HOSTS:
        host = DOCKER_HUB_API
    return Source(host, repository, insecure, mirror)


def parse_location(value: Any, where: str) -> str:
    """A `location`/`prefix` value: host[:port][/path], no scheme, trailing slashes dropped."""
    if not isinstance(value, str):
        raise UsageError(f"{where}: expected a string, not {type(value).__name__}")
    text = value.rstrip("/")
    if text.startswith(("http://", "https://")):
        raise UsageError(f"{where}: invalid location {value!r}: URI schemes are not supported")
    return text


def parse_mirror_flag(value: str, insecure: bool) -> Mirror:
    """`--mirror HOST[:PORT][/PATH]` -> a digest-only mirror (see FLAG_PULL_MODE)."""
    text = parse_location(value.strip(), "--mirror")
    host, _, path = text.partition("/")
    if not host or not _HOSTPORT.fullmatch(host) or (path and not _PATH.fullmatch(path)):
        raise UsageError(f"invalid --mirror {value!r}: expected HOST[:PORT][/PATH]")
    return Mirror(text, insecure=insecure, pull_from_mirror=FLAG_PULL_MODE)


# -- reading the files --------------------------------------------------------------------------------

def config_paths(env: Mapping[str, str]) -> tuple[str, bool, list[str]]:
    """(main file, whether it must exist, drop-in directories), as containers/image chooses them.

    $CONTAINERS_REGISTRIES_CONF, else the user's file if it exists (then only the user's drop-ins), else
    /etc/containers/registries.conf; drop-ins from /etc/containers/registries.conf.d, then the user's.
    """
    config_home = env.get("XDG_CONFIG_HOME") or os.path.join(env.get("HOME") or os.path.expanduser("~"), ".config")
    user_file = os.path.join(config_home, "containers", "registries.conf")
    user_dir = user_file + ".d"
    explicit = env.get("CONTAINERS_REGISTRIES_CONF")
    if explicit:
        return explicit, True, [SYSTEM_CONF + ".d", user_dir]
    if os.path.isfile(user_file):
        return user_file, False, [user_dir]
    return SYSTEM_CONF, False, [SYSTEM_CONF + ".d", user_dir]


def dropins(directories: Sequence[str]) -> list[str]:
    """The `*.conf` files of each directory in name order, directory by directory (no recursion)."""
    out: list[str] = []
    for directory in directories:
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise UsageError(f"cannot read {directory}: {exc.strerror}") from None
        out += [os.path.join(directory, n) for n in names
                if n.endswith(".conf") and os.path.isfile(os.path.join(directory, n))]
    return out


def load_config(env: Mapping[str, str], extra: Sequence[Mirror] = ()) -> MirrorConfig:
    """Read and merge the registries.conf files: a drop-in's entry replaces an earlier one with its prefix."""
    main, required, directories = config_paths(env)
    merged: dict[str, RegistryEntry] = {}
    files: list[str] = []
    paths = [main] if (required or os.path.exists(main)) else []
    for path in paths + dropins(directories):
        entries = parse_file(path)
        files.append(path)
        for entry in entries:
            merged[entry.prefix] = entry
    return MirrorConfig([merged[p] for p in sorted(merged)], tuple(extra), tuple(files))


_REGISTRY_TABLE = re.compile(r"^[ \t]*(?:\[\[[ \t]*[\"']?registry\b|[\"']?registry[\"']?[ \t]*=[ \t]*\[)", re.MULTILINE)


def _toml_loads(text: str, path: str) -> dict[str, Any]:
    import importlib

    try:
        toml = importlib.import_module("tomllib")  # the standard library's, Python >= 3.11
    except ImportError:  # pragma: no cover - depends on the interpreter
        try:
            toml = importlib.import_module("tomli")  # the same parser, packaged for 3.9/3.10
        except ImportError:
            raise UsageError(f"{path}: reading registries.conf needs Python >= 3.11 or the tomli package "
                             "(or pass --no-mirrors)") from None
    try:
        return toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise UsageError(f"{path}: malformed TOML: {exc}") from None


def parse_file(path: str) -> list[RegistryEntry]:
    """The `[[registry]]` entries of one file (first of a repeated prefix wins, as in containers/image)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read registries configuration {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    if not _REGISTRY_TABLE.search(text):
        # no [[registry]] table (podman's stock file, short-name aliases): nothing here for us, and every
        # tool starts faster without parsing it (a Nix build starts one process per blob)
        return []
    return parse_entries(_toml_loads(text, path), path)


def parse_entries(doc: Mapping[str, Any], path: str) -> list[RegistryEntry]:
    """Validate the `registry` array of a parsed file the way containers/image's postProcess does."""
    tables = doc.get("registry", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise UsageError(f"{path}: 'registry' must be an array of tables ([[registry]])")
    entries: dict[str, RegistryEntry] = {}
    for i, table in enumerate(tables):
        where = f"{path}: [[registry]] #{i + 1}"
        location = parse_location(table.get("location", ""), where)
        prefix = parse_location(table.get("prefix", ""), where) or location
        if not prefix:
            raise UsageError(f"{where}: both location and prefix are unset")
        if prefix.startswith("*.") and any(c in prefix for c in "/@:"):
            raise UsageError(f"{where}: a wildcard prefix must look like *.example.com, not {prefix!r}")
        if not location and not prefix.startswith("*."):
            raise UsageError(f"{where}: location is unset and prefix is not of the form *.example.com")
        if "pull-from-mirror" in table:
            raise UsageError(f"{where}: pull-from-mirror belongs in [[registry.mirror]], not [[registry]]")
        by_digest_only = _flag(table, "mirror-by-digest-only", where)
        mirrors = []
        for j, mt in enumerate(_tables(table.get("mirror", []), f"{where} mirror")):
            mwhere = f"{where} mirror #{j + 1}"
            mloc = parse_location(mt.get("location", ""), mwhere)
            if not mloc:
                raise UsageError(f"{mwhere}: location is unset")
            mode = mt.get("pull-from-mirror", "")
            if mode and by_digest_only:
                raise UsageError(f"{mwhere}: pull-from-mirror cannot be combined with the registry's "
                                 "mirror-by-digest-only")
            if mode not in ("",) + PULL_MODES:
                raise UsageError(f"{mwhere}: unsupported pull-from-mirror {mode!r} (all, digest-only or tag-only)")
            mode = "digest-only" if by_digest_only else (mode or "all")
            mirrors.append(Mirror(mloc, _flag(mt, "insecure", mwhere), mode))
        entry = RegistryEntry(prefix, location, _flag(table, "insecure", where), _flag(table, "blocked", where),
                              tuple(mirrors), path)
        entries.setdefault(prefix, entry)
    return list(entries.values())


def _flag(table: Mapping[str, Any], key: str, where: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise UsageError(f"{where}: {key} must be true or false")
    return value


def _tables(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise UsageError(f"{where}: must be an array of tables")
    return value
