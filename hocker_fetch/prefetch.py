"""Prefetch: put the blobs an image's fixed-output derivations need into the Nix store, from one process.

A cold `nix-build` of a fetchdocker image starts one builder per blob (one Python start-up, one TCP+TLS
connection, one token each). Prefetching fetches them all from one process with hocker-image's parallel,
verified pipeline (client.fetch_blob into FileSinks, `jobs` at a time across every image and registry, as
image._download does for one image), then adds them with ONE `nix-store --add-fixed sha256 FILE...` call.
Each file is named as nix/default.nix names the derivation
(`docker-layer-<hex>.tar.gz`, `docker-config-<hex>.json`, `docker-manifest-<hex>.json`) and a flat
fixed-output path depends only on its name and the sha256 of its bytes, so the added paths ARE the
derivations' outputs: the following nix-build finds them valid and fetches nothing.

Nothing unverified is added: every file is checked against its digest (and size) while it streams, into a
temporary directory that is removed whatever happens; `nix-store --add-fixed` adds each path atomically.
Paths already valid are not fetched. It fills the local store only: remote builders and CI caches still run
the fetchers (docs/prefetch.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .digest import nix_base32
from .errors import HockerError, one_line
from .manifest import Descriptor

__all__ = ["Need", "NixStore", "NixStoreError", "Prefetched", "entry_needs", "image_needs", "prefetch"]


class NixStoreError(HockerError):
    """Nix is missing, or nix-store refused or failed (its own last line is quoted)."""

    exit_code = 1


@dataclass(frozen=True)
class Need:
    """One fixed-output derivation's output: its store name and the digest that is its flat sha256 hash."""

    name: str
    blob: Descriptor
    manifest: bool = False  # fetched as a manifest by digest (hocker-manifest's FOD), not as a blob

    @property
    def hex(self) -> str:
        return self.blob.hex


def image_needs(manifest: Descriptor, config: Descriptor, layers: Iterable[Descriptor]) -> list[Need]:
    """What fetchdocker's derivations of one platform fetch, named as nix/default.nix names them."""
    return ([Need(f"docker-manifest-{manifest.hex}.json", manifest, manifest=True),
             Need(f"docker-config-{config.hex}.json", config)]
            + [Need(f"docker-layer-{layer.hex}.tar.gz", layer) for layer in layers])


def _descriptor(d: Mapping[str, Any]) -> Descriptor:
    return Descriptor(d["mediaType"], d["digest"], d["size"], urls=tuple(d.get("urls") or ()))


def entry_needs(entry: Mapping[str, Any], systems: Iterable[str]) -> list[Need]:
    """The needs of a hocker-lock entry (lockfile.py's format) for the given Nix systems it records."""
    out: list[Need] = []
    for system in systems:
        pin = entry["systems"][system]
        out += image_needs(_descriptor(pin["manifest"]), _descriptor(pin["config"]),
                           [_descriptor(layer) for layer in pin["layers"]])
    return out


def host_system() -> str:
    """The Nix system whose images this machine builds (importDockerLock's default; a Mac takes Linux's)."""
    from .manifest import host_platform
    from .nixgen import nix_system

    return nix_system(host_platform()) or "x86_64-linux"


# -- the store ---------------------------------------------------------------------------------------------

def fixed_output_path(store_dir: str, name: str, hex_digest: str) -> str:
    """The store path of a flat sha256 fixed-output `name` (Nix's makeFixedOutputPath, non-recursive)."""
    inner = hashlib.sha256(f"fixed:out:sha256:{hex_digest}:".encode()).hexdigest()
    full = hashlib.sha256(f"output:out:sha256:{inner}:{store_dir}:{name}".encode()).digest()
    folded = bytearray(20)
    for i, byte in enumerate(full):
        folded[i % 20] ^= byte
    return f"{store_dir}/{nix_base32(bytes(folded))}-{name}"


class NixStore:
    """The nix-store commands prefetching needs, run with the caller's environment (NIX_REMOTE etc.)."""

    def __init__(self, nix_store: str):
        self.nix_store = nix_store
        self._store_dir: Optional[str] = None

    @classmethod
    def find(cls) -> "NixStore":
        path = shutil.which("nix-store")
        if path is None:
            raise NixStoreError("nix-store not found on PATH: prefetching needs Nix installed (single-user, or "
                                "a nix-daemon this user can reach)")
        return cls(path)

    def _run(self, *args: str) -> str:
        proc = subprocess.run([self.nix_store, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            lines = [line for line in proc.stderr.splitlines() if line.strip()]
            last = lines[-1] if lines else f"exit {proc.returncode}"
            hint = ""
            if "cannot open connection to remote store" in last:  # Nix 2.8 says no more when refused
                hint = (" (is the nix-daemon running, and does its nix.conf let this user in? allowed-users; "
                        "see docs/prefetch.md)")
            raise NixStoreError(f"nix-store {args[0]} failed: {one_line(last)}{hint}")
        return proc.stdout

    def path(self, need: Need) -> str:
        """Where `need` lives in this store. Nix is asked once (for the store directory, and to check our
        computation); every other path is computed here, not by a process per blob."""
        if self._store_dir is None:
            asked = self._run("--print-fixed-path", "sha256", need.hex, need.name).strip()
            store_dir = os.path.dirname(asked)
            if fixed_output_path(store_dir, need.name, need.hex) != asked:
                raise NixStoreError(f"this Nix computes {asked} for {need.name}, not the expected path")
            self._store_dir = store_dir
        return fixed_output_path(self._store_dir, need.name, need.hex)

    def invalid(self, paths: Sequence[str]) -> set[str]:
        """The paths among `paths` that are not (yet) valid in the store."""
        if not paths:
            return set()
        return set(self._run("--check-validity", "--print-invalid", *paths).split())

    def add_fixed(self, files: Sequence[str]) -> list[str]:
        """Add verified files as flat sha256 fixed-output paths named by their basenames; the paths added."""
        return self._run("--add-fixed", "sha256", *files).split()


# -- prefetching -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prefetched:
    added: list[str]   # store paths fetched and added now
    present: int       # needs whose paths were already valid
    bytes: int         # bytes fetched


Group = tuple[Any, Sequence[Need]]  # (a Reference naming registry and repository, its needs)


def prefetch(groups: Sequence[Group], client_for: Callable[[Any], Any], *, jobs: int = 4,
             log: Callable[[str], None] = lambda _m: None, store: Optional[NixStore] = None) -> Prefetched:
    """Fetch every need whose path is not valid yet (per group: `client_for(ref)`, the group's repository),
    verified, into a temporary directory; then add them all with one `nix-store --add-fixed`."""
    store = store or NixStore.find()
    seen: dict[str, str] = {}  # store name -> path: one blob of several entries is fetched once
    wanted: list[tuple[Any, Need, str]] = []
    for ref, needs in groups:
        for need in needs:
            if need.name not in seen:
                seen[need.name] = store.path(need)
                wanted.append((ref, need, seen[need.name]))
    invalid = store.invalid([path for _, _, path in wanted])
    todo = [(ref, need) for ref, need, path in wanted if path in invalid]
    total = sum(need.blob.size for _, need in todo)
    log(f"{len(todo)} of {len(wanted)} blobs to fetch ({total / 1e6:.1f} MB), "
        f"{len(wanted) - len(todo)} already in the store")
    if not todo:
        return Prefetched([], len(wanted), 0)
    clients = {id(ref): client_for(ref) for ref, _ in todo}  # in this thread, before any worker starts
    # manifests first (small), then the largest blobs: the last worker to finish has the least left
    todo.sort(key=lambda item: (not item[1].manifest, -item[1].blob.size))
    with tempfile.TemporaryDirectory(prefix="hocker-prefetch-") as tmp:
        _fetch_all([(clients[id(ref)], ref.repository, need, os.path.join(tmp, need.name)) for ref, need in todo],
                   jobs)
        files = [os.path.join(tmp, need.name) for _, need in todo]
        added = store.add_fixed(files)
    expected = [seen[need.name] for _, need in todo]
    if sorted(added) != sorted(expected):  # cannot happen for verified bytes; never claim what is not there
        raise NixStoreError(f"nix-store added {', '.join(sorted(set(added) - set(expected)))}, not the expected paths")
    return Prefetched(added, len(wanted) - len(todo), total)


def _fetch_all(items: Sequence[tuple[Any, str, Need, str]], jobs: int) -> None:
    """(client, repository, need, file) each fetched and verified into its file, `jobs` at a time, across
    registries and repositories; the first failure stops the others (as image._download does for one image)."""
    from .errors import NotFoundError, foreign_not_served
    from .pipeline import run_parallel
    from .sinks import FileSink

    stop = threading.Event()

    def one(client: Any, repository: str, need: Need, path: str) -> None:
        if need.manifest:
            raw, _, _ = client.get_manifest(repository, need.blob.digest)  # verified by its digest
            with open(path, "wb") as f:
                f.write(raw)
            return
        with open(path, "wb") as f:
            sink = FileSink(f, need.blob.size, need.blob.digest)
            try:
                client.fetch_blob(repository, need.blob.digest, need.blob.size, sink, cancel=stop)
            except NotFoundError as exc:
                raise foreign_not_served(exc) if need.blob.is_foreign else exc from None
            sink.verify_complete()

    run_parallel(items, lambda item: one(*item), jobs, stop)


# -- what the tools prefetch -------------------------------------------------------------------------------

def report(result: Prefetched) -> str:
    """The one line the tools print on stderr afterwards."""
    return (f"prefetched {len(result.added)} blobs ({result.bytes / 1e6:.1f} MB) into the Nix store, "
            f"{result.present} already there")


def prefetch_entries(entries: Mapping[str, dict[str, Any]], names: Sequence[str], client_for: Callable[[Any], Any],
                     *, all_platforms: bool = False, jobs: int = 4, log: Callable[[str], None] = lambda _m: None,
                     warn: Callable[[str], None] = lambda _m: None) -> Prefetched:
    """hocker-lock's prefetch: the named entries' blobs for this host's Nix system (importDockerLock's
    choice), or for every system an entry records (`all_platforms`). An entry not locked for this host is
    skipped with a warning: importDockerLock would refuse to build it here."""
    from .lockresolve import entry_reference

    host = host_system()
    linux = host.replace("-darwin", "-linux")
    groups: list[Group] = []
    for name in names:
        entry = entries[name]
        systems = sorted(entry["systems"]) if all_platforms else [s for s in (host, linux) if s in entry["systems"]][:1]
        if not systems:
            warn(f"{name} is locked for {', '.join(sorted(entry['systems']))} only, not for {host}: nothing "
                 "prefetched for it (--all-platforms prefetches every system it records)")
            continue
        groups.append((entry_reference(entry), entry_needs(entry, systems)))
    return prefetch(groups, client_for, jobs=jobs, log=log)


def prefetch_pin(pin: Any, client: Any, *, all_platforms: bool = False, jobs: int = 4,
                 log: Callable[[str], None] = lambda _m: None,
                 warn: Callable[[str], None] = lambda _m: None) -> Prefetched:
    """docker2nix's prefetch: the blobs of the file it writes (nixgen.ImagePin). A one-platform file builds
    that platform anywhere; a multi-platform one the host system's (every pinned one with `all_platforms`)."""
    pins = list(pin.pins)
    if len(pins) > 1 and not all_platforms:
        host = host_system()
        pins = [p for p in pins if p.system in (host, host.replace("-darwin", "-linux"))][:1]
        if not pins:
            warn(f"the file pins no platform for {host}: nothing prefetched (--all-platforms prefetches them all)")
    needs = [n for p in pins for n in image_needs(p.manifest, p.config, p.layers)]
    return prefetch([(pin.ref, needs)] if needs else [], lambda _ref: client, jobs=jobs, log=log)
