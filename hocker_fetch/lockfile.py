"""The image lock file (`images.lock.json`): its format, strict loading, stable dumping and locked writes.

Format (version 1), read by hocker-lock and by the Nix side's `importDockerLock`:

    {
      "images": {
        "<name>": {                                  # a safe Nix attribute name
          "host": "127.0.0.1:5000",                  # API host[:port] as normalised (Reference.registry)
          "registry": "http://127.0.0.1:5000/v2/",   # hocker's URI form, what the Nix fetchers take
          "repository": "library/hello",             # the full repository path
          "tag": "latest",                           # null when the entry was added by digest only
          "platforms": ["linux/amd64"] | "all",      # what `add` asked for; update resolves the same
          "verifiedBy": "sigstoreSigned key SHA256:..."  # optional: what the signature policy accepted the
                                                     # current digest by (absent: no policy applied)
          "index": {"digest", "mediaType", "size"} | null,
          "systems": {
            "x86_64-linux": {                        # the Nix system (nixgen.nix_system of the platform)
              "platform": "linux/amd64",
              "manifest": {"digest", "mediaType", "size"},
              "config": {"digest", "mediaType", "size"},
              "layers": [{"digest", "mediaType", "size"[, "urls"]}, ...],   # manifest order
              "created": "..." | null,               # the config's `created`
              "version": "..." | null                # label org.opencontainers.image.version
            }
          }
        }
      },
      "version": 1
    }

Dumped with sorted keys, two-space indentation and a final newline and nothing that changes by itself (no
timestamps, no generator version), so a git diff of an update touches only the entries that moved. Every
read-modify-write holds an exclusive flock on the file's directory and re-reads the file under it; the new
text replaces the file atomically (a reader sees the old file or the new one, never a mix).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from typing import Any, Iterator, Optional

from .errors import HockerError, UsageError
from .manifest import Descriptor, Platform
from .nixgen import NIX_SYSTEMS, nix_system
from .reference import TAG, parse_reference

FORMAT_VERSION = 1
DEFAULT_FILE = "images.lock.json"
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
# Nix keywords cannot be attribute names without quoting: refuse them rather than surprise the reader
_NIX_KEYWORDS = frozenset({"if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"})

Entry = dict[str, Any]
Entries = dict[str, Entry]


class LockFileError(UsageError):
    """The lock file is unreadable or malformed (exit 2, one line naming the file and what is wrong)."""


def check_name(name: str) -> str:
    """`name` if it is a safe Nix attribute name (the entry's attribute in importDockerLock's result)."""
    if not NAME.fullmatch(name) or name in _NIX_KEYWORDS:
        raise UsageError(f"invalid name {name!r}: use letters, digits, '_', '-' and \"'\", starting with a "
                         "letter or '_' (it becomes a Nix attribute name)")
    return name


def default_name(repository: str) -> str:
    """The entry name `add` uses without --name: the repository's last path component."""
    return check_name(repository.rsplit("/", 1)[-1])


# -- loading ------------------------------------------------------------------------------------------------

def loads(text: str, where: str) -> Entries:
    """Parse and validate a lock file's text; LockFileError (one line, naming `where`) on anything wrong."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise LockFileError(f"{where}: duplicate key {key!r}" + (
                    f" (two entries named {key!r})" if isinstance(value, dict) and "systems" in value else ""))
            out[key] = value
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except LockFileError:
        raise
    except (ValueError, RecursionError) as exc:
        raise LockFileError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise LockFileError(f"{where}: not a lock file (a JSON object with `version` and `images` expected)")
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise LockFileError(f"{where}: no integer `version`: not an images lock file")
    if version > FORMAT_VERSION:
        raise LockFileError(f"{where}: written by a newer hocker-fetch (version {version}); upgrade")
    if version != FORMAT_VERSION:
        raise LockFileError(f"{where}: unsupported version {version} (this hocker-fetch reads {FORMAT_VERSION})")
    images = doc.get("images")
    if not isinstance(images, dict):
        raise LockFileError(f"{where}: `images` must be an object of entries")
    unknown = sorted(set(doc) - {"version", "images"})
    if unknown:
        raise LockFileError(f"{where}: unknown top-level field {unknown[0]!r}")
    for name, entry in images.items():
        try:
            check_name(name)
            _check_entry(entry)
        except HockerError as exc:
            raise LockFileError(f"{where}: entry {name!r}: {exc}") from None
    return images


def _check_entry(entry: Any) -> None:
    if not isinstance(entry, dict):
        raise LockFileError("not an object")
    for key in ("host", "registry", "repository"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise LockFileError(f"`{key}` must be a non-empty string")
    tag = entry.get("tag")
    if tag is not None and not (isinstance(tag, str) and TAG.fullmatch(tag)):
        raise LockFileError(f"`tag` must be a tag or null, not {tag!r}")
    ref = parse_reference(f"{entry['host']}/{entry['repository']}")  # UsageError names what is malformed
    if (ref.registry, ref.repository) != (entry["host"], entry["repository"]):
        raise LockFileError(f"`host` and `repository` are not in normal form (expected {ref.registry!r} and "
                            f"{ref.repository!r})")
    platforms = entry.get("platforms")
    if platforms != "all":
        if not isinstance(platforms, list) or not platforms or not all(isinstance(p, str) for p in platforms):
            raise LockFileError('`platforms` must be "all" or a non-empty list of OS/ARCH[/VARIANT]')
        for p in platforms:
            Platform.parse(p)
    if "verifiedBy" in entry and not (isinstance(entry["verifiedBy"], str) and entry["verifiedBy"]):
        raise LockFileError("`verifiedBy` must be a non-empty string")
    if entry.get("index") is not None:
        _descriptor(entry["index"], "index")
    systems = entry.get("systems")
    if not isinstance(systems, dict) or not systems:
        raise LockFileError("`systems` must be a non-empty object")
    if entry.get("tag") is None and entry.get("index") is None and len(systems) != 1:
        raise LockFileError("an entry without tag needs an index or exactly one system (what it is pinned to)")
    for system, pin in systems.items():
        if system not in NIX_SYSTEMS.values():
            raise LockFileError(f"unknown Nix system {system!r}")
        if not isinstance(pin, dict):
            raise LockFileError(f"system {system}: not an object")
        platform = pin.get("platform")
        if not isinstance(platform, str) or nix_system(Platform.parse(platform)) != system:
            raise LockFileError(f"system {system}: `platform` {platform!r} is not a platform of {system}")
        _descriptor(pin.get("manifest"), f"system {system} manifest")
        _descriptor(pin.get("config"), f"system {system} config")
        layers = pin.get("layers")
        if not isinstance(layers, list):
            raise LockFileError(f"system {system}: `layers` must be a list")
        for i, layer in enumerate(layers):
            _descriptor(layer, f"system {system} layer {i}", urls=True)
        for key in ("created", "version"):
            if pin.get(key) is not None and not isinstance(pin[key], str):
                raise LockFileError(f"system {system}: `{key}` must be a string or null")


def _descriptor(obj: Any, what: str, urls: bool = False) -> None:
    if not isinstance(obj, dict):
        raise LockFileError(f"{what}: a descriptor {{digest, mediaType, size}} expected")
    if not isinstance(obj.get("mediaType"), str) or not obj["mediaType"]:
        raise LockFileError(f"{what}: `mediaType` must be a non-empty string")
    try:
        Descriptor(obj["mediaType"], obj.get("digest"), obj.get("size"))  # type: ignore[arg-type]
    except HockerError as exc:
        raise LockFileError(f"{what}: {exc}") from None
    if "urls" in obj and not (urls and isinstance(obj["urls"], list) and all(isinstance(u, str) for u in obj["urls"])):
        raise LockFileError(f"{what}: `urls` must be a list of strings")


def read(path: str, *, missing_ok: bool = False) -> Optional[Entries]:
    """The entries of the lock file at `path`; None when it does not exist and `missing_ok`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if missing_ok:
            return None
        raise LockFileError(f"{path}: no such lock file (create it with `hocker-lock add IMAGE`)") from None
    except OSError as exc:
        raise LockFileError(f"{path}: {exc.strerror or exc.__class__.__name__}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise LockFileError(f"{path}: not UTF-8 text") from None
    return loads(text, path)


# -- writing ------------------------------------------------------------------------------------------------

def dumps(entries: Entries) -> str:
    """The file's text: stable (sorted keys, indent 2, final newline), so diffs show only what moved."""
    return json.dumps({"images": entries, "version": FORMAT_VERSION}, indent=2, sort_keys=True,
                      ensure_ascii=False) + "\n"


def write(path: str, entries: Entries) -> None:
    """Replace the file atomically (same directory, fsynced), keeping an existing file's permissions."""
    from .atomic import AtomicFile

    try:
        mode = os.stat(path).st_mode & 0o7777
    except OSError:
        mode = 0o644
    with AtomicFile(path, mode) as f:
        f.write(dumps(entries).encode())
        f.commit()


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive flock on the lock file's directory for a read-modify-write.

    The directory, not the file: the file itself is replaced by rename on every write, so a lock on it would
    protect an inode nobody reads any more; a sidecar `.lock` file would litter the repository.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as exc:
        raise UsageError(f"{directory}: {exc.strerror or 'cannot open'}") from None
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                break
            except OSError as exc:
                if exc.errno != errno.EINTR:
                    raise
        yield
    finally:
        os.close(fd)  # releases the lock
