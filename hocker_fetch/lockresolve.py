"""hocker-lock's network side: resolve many lock entries cheaply and concurrently.

Cheap on rate-limited registries: a tag becomes a digest by one HEAD (GET only when the registry refuses HEAD
or sends no Docker-Content-Digest: client.manifest_digest); manifests and configs are fetched only for entries
whose digest moved. One RegistryClient per registry host is shared by all its entries, so connections are reused
and each token (one per repository scope) is fetched once per run; entries of one repository run in one thread,
in turn, so two threads never race for the same scope's token.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, Union

from .errors import HockerError, ManifestError, UsageError
from .lockfile import Entry

if TYPE_CHECKING:
    from .client import RegistryClient
    from .credentials import Credentials
    from .manifest import Descriptor, Parsed
    from .mirrors import MirrorConfig
    from .reference import Reference
    from .signatures import Gate, ImageCheck
    from .transport import ClientOptions

VERSION_LABEL = "org.opencontainers.image.version"
Platforms = Union[str, list]  # "all" or a list of OS/ARCH[/VARIANT] strings


@dataclass(frozen=True)
class Target:
    """One entry to resolve: where its tag lives, what platforms it pins, and what the file says now."""

    name: str
    ref: "Reference"
    platforms: Platforms
    old: Optional[Entry] = None


class EntryFailed(HockerError):
    """An entry could not be resolved: the message names it, the exit code is the cause's."""

    def __init__(self, name: str, cause: HockerError):
        super().__init__(f"{name}: {cause}")
        self.exit_code = cause.exit_code


def top_digest(entry: Entry) -> str:
    """The digest the entry's tag pointed at: the index's, else its one manifest's."""
    if entry.get("index"):
        return str(entry["index"]["digest"])
    return str(next(iter(entry["systems"].values()))["manifest"]["digest"])


def entry_reference(entry: Entry) -> "Reference":
    """Where an entry's tag lives (docker form, so a loopback registry may fall back to http)."""
    from .reference import parse_reference

    ref = parse_reference(f"{entry['host']}/{entry['repository']}")
    tag = entry.get("tag")
    return replace(ref, tag=tag, digest=None if tag else top_digest(entry))


def summary(entry: Optional[Entry]) -> dict[str, Any]:
    """The facts a human wants about an entry's pin: digest, and the first system's created and version."""
    if entry is None:
        return {"digest": None, "created": None, "version": None}
    first = entry["systems"][sorted(entry["systems"])[0]]
    return {"digest": top_digest(entry), "created": first.get("created"), "version": first.get("version")}


def check_credential_scope(args: Any, hosts: Sequence[str], env: Mapping[str, str]) -> None:
    """Generic credentials (options or DOCKER_* variables) would reach every registry of the run: with entries
    on several hosts they are refused; per-registry logins (docker/podman config) are the way there."""
    from .credentials import from_environment

    if len(set(hosts)) <= 1:
        return
    given = [flag for flag, value in (("--username", args.username), ("--password", args.password),
                                      ("--password-stdin", args.password_stdin), ("--token", args.token),
                                      ("--credentials-file", args.credentials_file)) if value]
    where = ", ".join(sorted(set(hosts)))
    advice = ("log in per registry instead (docker login / podman login: the docker/podman config, "
              "$REGISTRY_AUTH_FILE), or name entries on one registry")
    if given:
        raise UsageError(f"{given[0]} would be sent to every registry of this run ({where}): {advice}")
    if from_environment(env) is not None:
        raise UsageError(f"DOCKER_TOKEN or DOCKER_USER/DOCKER_PASS are set and would be sent to every registry "
                         f"of this run ({where}): unset them and {advice}")


class Resolver:
    """The clients of one run (one per registry host) and the resolution of entries with them."""

    def __init__(self, credentials: "dict[str, Optional[Credentials]]", options: "ClientOptions",
                 log: Callable[[str], None], mirrors: "Optional[MirrorConfig]" = None, gate: "Optional[Gate]" = None,
                 trace: Optional[Callable[[str], None]] = None):
        """`gate`: the signature policy (None: accept everything); `trace`: -v's lines (which host served what,
        how fast), None without -v."""
        self.credentials = credentials
        self.gate = gate
        self.checks: dict[str, ImageCheck] = {}
        self.trace = trace
        self.options = options
        self.log = log
        self.mirrors = mirrors  # by-digest fetches (moved manifests, configs) may come from mirrors
        self.clients: dict[str, RegistryClient] = {}

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()  # client() may open them again (hocker-lock --prefetch after resolving)

    def client(self, ref: "Reference") -> "RegistryClient":
        """The shared client of ref's host (created in the main thread, before any worker starts)."""
        from .client import RegistryClient

        if ref.registry not in self.clients:
            self.clients[ref.registry] = RegistryClient(ref, self.credentials.get(ref.registry), self.options,
                                                        log=self.log, mirrors=self.mirrors, trace=self.trace)
        return self.clients[ref.registry]

    def resolve_all(self, targets: Sequence[Target], jobs: int) -> dict[str, Optional[Entry]]:
        """name -> the new entry, or None where the digest did not move. All or nothing: the first failing
        entry (in name order) is raised as EntryFailed after every worker has finished."""
        for t in targets:
            self.client(t.ref)
            if self.gate is not None:  # keys are read now, before any network
                self.checks[t.name] = self.gate.for_image(t.ref)
        groups: dict[tuple[str, str], list[Target]] = {}
        for t in targets:
            groups.setdefault((t.ref.registry, t.ref.repository), []).append(t)
        results: dict[str, Optional[Entry]] = {}
        failures: dict[str, HockerError] = {}

        def work(group: list[Target]) -> None:
            for t in group:
                try:
                    results[t.name] = self.resolve(t)
                except HockerError as exc:
                    failures[t.name] = exc
                    return  # the run fails anyway; spare the registry the rest

        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(groups) or 1))) as pool:
            for future in [pool.submit(work, g) for g in groups.values()]:
                future.result()
        if failures:
            name = sorted(failures)[0]
            raise EntryFailed(name, failures[name])
        return results

    def resolve(self, target: Target) -> Optional[Entry]:
        """The entry as the registry has it now, or None when its tag still names the same digest."""
        client = self.client(target.ref)
        ref = target.ref
        digest = ref.digest or client.manifest_digest(ref.repository, ref.reference)[0]
        if target.old is not None and top_digest(target.old) == digest:
            return None
        # after a GET (no HEAD, or no digest in it) the client still has these bytes: no second request
        entry = build_entry(client, ref, target.platforms, client.get_parsed(ref.repository, digest))
        check = self.checks.get(target.name)
        if check is not None:
            verified = check.verify(client, ref.repository, digest,
                                    [s["manifest"]["digest"] for s in entry["systems"].values()])
            if verified is not None:
                entry["verifiedBy"] = verified
        return entry


def build_entry(client: "RegistryClient", ref: "Reference", platforms: Platforms, top: "Parsed") -> Entry:
    """A lock entry from the top-level document a tag names: one system per platform, configs fetched."""
    from .manifest import ImageIndex, Platform, check_is_image, config_platform
    from .nixgen import nix_system, registry_uri
    from .platforms import resolve_platforms

    repo = ref.repository
    wanted = None if platforms == "all" else [Platform.parse(p) for p in platforms]
    index = top.descriptor if isinstance(top, ImageIndex) else None
    manifests = resolve_platforms(
        top, wanted, lambda e: client.get_entry(repo, e),
        fetch_config=None if wanted is None else client.config_fetcher(repo),
        accept=lambda p: nix_system(p) is not None, skipped=[])
    systems: dict[str, Any] = {}
    for manifest, platform in manifests:
        name = f"{ref} manifest {manifest.digest}" if index is not None else str(ref)
        check_is_image(manifest, name)
        client.check_foreign_served(ref, manifest.layers)
        config = client.get_blob_bytes(repo, manifest.config)
        platform = platform or config_platform(config)
        if platform is None:
            raise ManifestError(f"{name}: neither an index nor its config names its platform")
        system = nix_system(platform)
        if system is None:
            raise ManifestError(f"{name} is for {platform}, which has no Nix system")
        if system in systems:
            raise ManifestError(f"{name}: platforms {systems[system]['platform']} and {platform} both map to {system}")
        created, version = _config_facts(config)
        systems[system] = {
            "platform": str(platform.normalized()),
            "manifest": _descriptor(manifest.descriptor),
            "config": _descriptor(manifest.config),
            "layers": [_descriptor(d) for d in manifest.layers],
            "created": created,
            "version": version,
        }
    return {
        "host": ref.registry,
        "registry": registry_uri(ref, client.base_url),
        "repository": repo,
        "tag": ref.tag,
        "platforms": platforms,
        "index": None if index is None else _descriptor(index),
        "systems": systems,
    }


def _descriptor(d: "Descriptor") -> dict[str, Any]:
    out: dict[str, Any] = {"digest": d.digest, "mediaType": d.media_type, "size": d.size}
    if d.urls:
        out["urls"] = list(d.urls)
    return out


def _config_facts(config: bytes) -> tuple[Optional[str], Optional[str]]:
    """The config's `created` and its version label, for humans (None where absent or not a string)."""
    doc = json.loads(config)  # config_platform has checked it is a JSON object
    created = doc.get("created")
    inner = doc.get("config")
    labels = inner.get("Labels") if isinstance(inner, dict) else None
    version = labels.get(VERSION_LABEL) if isinstance(labels, dict) else None
    return (created if isinstance(created, str) else None, version if isinstance(version, str) else None)
