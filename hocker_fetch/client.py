"""The registry client: manifests and blobs over the Docker Registry v2 / OCI distribution API.

Everything that crosses the network is verified against its digest while it streams (constant memory);
transient failures are retried with exponential backoff (429 honours Retry-After) and interrupted blobs
resume with Range when the server allows it. By-digest requests (blobs, pinned manifests) may be served by
mirrors (sources.py); a tag resolves where the configuration says, by default at the origin.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, TypeVar

import requests

from .auth import RegistryAuth
from .credentials import Credentials, nix_build_hint
from .digest import DigestVerifier, parse_digest, sha256_digest
from .errors import (
    AuthError,
    HockerError,
    ManifestError,
    NotFoundError,
    RateLimitError,
    RegistryError,
    VerificationError,
)
from .manifest import (
    ACCEPT,
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    Descriptor,
    ImageIndex,
    ImageManifest,
    Parsed,
    Platform,
    parse_manifest,
)
from .mirrors import MirrorConfig
from .pipeline import Pipeline, chunks
from .reference import Reference
from .sinks import BlobSink, BytesSink
from .sources import Endpoint, Endpoints
from .transport import (
    RATE_LIMIT_HEADERS,
    STREAM_ERRORS,
    Budget,
    Cancelled,
    ClientOptions,
    Transport,
    check_cancel,
    check_transport,
    discard,
    host_of,
    is_loopback,
    reason,
)

_T = TypeVar("_T")

__all__ = ["ClientOptions", "HeadRefused", "NoDigestHeader", "RegistryClient", "Resolved"]
HEAD_REFUSED = (405, 501)  # some Nexus and Artifactory versions: Method Not Allowed / Not Implemented


class NoDigestHeader(RegistryError):
    """A HEAD answered without a usable Docker-Content-Digest: only a GET tells the digest."""


class HeadRefused(RegistryError):
    """The registry refuses HEAD on manifests (HTTP 405/501): only a GET tells the digest."""


@dataclass(frozen=True)
class Resolved:
    """What a tag or digest resolves to: the top-level document and the selected single-platform manifest."""

    top: Parsed
    manifest: ImageManifest


class RegistryClient:
    """One registry (scheme + host), one transport, one auth state; safe to share between download threads."""

    def __init__(self, ref: Reference, credentials: Optional[Credentials] = None,
                 options: Optional[ClientOptions] = None, *, log: Callable[[str], None] = lambda _m: None,
                 env: Optional[Mapping[str, str]] = None, sleep: Callable[[float], None] = time.sleep,
                 mirrors: Optional[MirrorConfig] = None, warn: Optional[Callable[[str], None]] = None,
                 trace: Optional[Callable[[str], None]] = None):
        """`mirrors`: where else by-digest requests may go (None: the registry only); `warn`: where a skipped
        mirror is reported (default `log`); `trace`: -v's line per manifest and blob (which host, how long)."""
        self.trace = trace
        self.options = options = options or ClientOptions()
        self.host = ref.registry
        if credentials is not None:
            check_transport(ref.base_url, options.insecure)  # fail before connecting, not mid-way
        # an explicit scheme (--registry) is used as given; otherwise loopback/--insecure may fall back to http
        may_fall_back = (not ref.scheme_given and ref.scheme == "https"
                         and (options.insecure or is_loopback(ref.host)))
        env = os.environ if env is None else env
        self.transport = Transport(ref.base_url, options, may_fall_back=may_fall_back, log=log, env=env, sleep=sleep)
        self.auth = RegistryAuth(self.transport.send, credentials, insecure=options.insecure)
        self.origin = Endpoint(ref.registry, self.transport, self.auth, mirror=False)
        self.endpoints = Endpoints(self.origin, mirrors, options, log=log, env=env, sleep=sleep, warn=warn)
        self._small_blobs: dict[str, bytes] = {}  # configs already fetched (a platform check, then the tool)
        self._manifests: dict[str, tuple[bytes, str]] = {}  # repo@digest -> GET by manifest_digest (verified)
        self._head_refused = False  # the origin answered a manifest HEAD with 405/501: GET from now on

    @property
    def base_url(self) -> str:
        """The registry's URL as really used (https, or http after a loopback fallback)."""
        return self.transport.base_url

    @property
    def retries_used(self) -> int:
        return self.transport.retries_used

    def close(self) -> None:
        self.transport.close()
        self.endpoints.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, scope: str, *, headers: Optional[dict[str, str]] = None,
                stream: bool = False, what: str = "", cancel: Optional[threading.Event] = None,
                budget: Optional[Budget] = None, endpoint: Optional[Endpoint] = None) -> requests.Response:
        """A registry request with auth: challenges answered, redirects followed, transient failures retried.

        Returns any final response (the caller maps 404 etc.); raises RegistryError when retries run out.
        `endpoint`: the host to ask (default: the origin).
        """
        ep = endpoint or self.origin
        auth_rounds = 0
        what = what or f"{method} {path}"
        sent: list[Optional[str]] = [None]  # what the last attempt sent, for on_unauthorized

        def with_auth(url: str) -> dict[str, str]:
            sent[0] = ep.auth.header(url, scope)
            return {**(headers or {}), **({"Authorization": sent[0]} if sent[0] else {})}

        while True:
            resp = ep.transport.open(method, path, what=what, headers=with_auth, stream=stream,
                                     cancel=cancel, budget=budget)
            if resp.status_code == 401:
                discard(resp)  # read the short challenge body: the authorised retry reuses the connection
                if auth_rounds >= 2:
                    raise AuthError("authentication failed" if ep.mirror else self._denied_message(scope))
                auth_rounds += 1
                ep.auth.on_unauthorized(resp, scope, sent[0])
                continue
            return resp

    def _denied_message(self, scope: str) -> str:
        repo = scope.split(":")[1] if scope.count(":") >= 2 else scope
        creds = self.auth.credentials
        if creds is not None and (creds.username or creds.token):
            who = f"user {creds.username!r}" if creds.username else "the given token"
            return (f"access to {self.host}/{repo} denied for {who} "
                    f"(from {creds.source or 'the command line'}): wrong password or no pull permission")
        return (f"{self.host}/{repo} requires authentication (or does not exist): give credentials with "
                "-u/-p, -t, -f FILE, DOCKER_USER/DOCKER_PASS or docker login" + nix_build_hint())

    def _timed(self, ep: Endpoint, what: str, call: Callable[[], _T], size: Callable[[_T], Optional[int]]) -> _T:
        """call(); with -v, one line saying which host answered (mirror or origin), how much and how fast."""
        if self.trace is None:
            return call()
        start = time.monotonic()
        try:
            result = call()
        except BaseException as exc:
            if not isinstance(exc, Cancelled):
                self.trace(f"{what}: {ep.host} ({'mirror' if ep.mirror else 'origin'}) failed after "
                           f"{time.monotonic() - start:.2f}s")
            raise
        n = size(result)
        self.trace(f"{what} from {ep.host} ({'mirror' if ep.mirror else 'origin'})"
                   + (f", {n} bytes" if n is not None else "") + f" in {time.monotonic() - start:.2f}s")
        return result

    # -- manifests ---------------------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """GET a manifest: (raw bytes as served, content type, digest); verified when fetched by digest.

        A tag whose registry has only by-digest mirrors is resolved with a HEAD at the origin (which Docker
        Hub does not count as a pull) and the manifest then fetched by digest, from the mirrors first.
        """
        by_digest = reference.startswith("sha256:")
        if by_digest:
            reference = parse_digest(reference)
            known = self._manifests.get(f"{repository}@{reference}")
            if known is not None:
                return known[0], known[1], reference
        elif self.endpoints.mirrored(repository, True) and not self.endpoints.mirrored(repository, False):
            try:
                digest: Optional[str] = self.head_manifest(repository, reference)[0]
            except RateLimitError:
                raise
            except RegistryError:
                digest = None  # no usable Docker-Content-Digest: ask for the tag itself
            if digest is not None:
                try:
                    return self.get_manifest(repository, digest)
                except (NotFoundError, VerificationError):
                    pass  # the HEAD named something nobody serves by digest: ask for the tag itself
        what = f"manifest {repository}@{reference}" if by_digest else f"manifest {repository}:{reference}"
        try:
            return self.endpoints.each(repository, by_digest, what, lambda ep, repo: self._timed(
                ep, what, lambda: self._get_manifest_at(ep, repo, reference, what), lambda r: len(r[0])))
        except NotFoundError as exc:
            if by_digest:
                raise
            raise self._tag_not_found(exc, repository, reference) from None

    def _get_manifest_at(self, ep: Endpoint, repository: str, reference: str, what: str) -> tuple[bytes, str, str]:
        raw, content_type, digest = self._get_manifest_from(ep, repository, reference, what)
        if ep.mirror and not reference.startswith("sha256:"):
            # a tag's answer has no digest to check: at least refuse a mirror's garbage (see docs/mirrors.md)
            parse_manifest(raw, digest, content_type)
        return raw, content_type, digest

    def _get_manifest_from(self, ep: Endpoint, repository: str, reference: str, what: str) -> tuple[bytes, str, str]:
        by_digest = reference.startswith("sha256:")
        budget = ep.transport.budget()
        while True:
            resp = self.request("GET", f"/v2/{repository}/manifests/{reference}", _scope(repository),
                                headers={"Accept": ACCEPT}, stream=True, what=what, budget=budget, endpoint=ep)
            with resp:
                _raise_for_status(resp, what, ep.host)
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
                    raise ManifestError(f"{what} is {length} bytes, more than the {MAX_MANIFEST_BYTES} allowed")
                try:
                    raw = _read_bounded(resp, MAX_MANIFEST_BYTES, what)
                except STREAM_ERRORS as exc:
                    ep.transport.retry_or_fail(budget, what, f"connection broke while reading ({reason(exc)})")
                    continue
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            break
        actual = sha256_digest(raw)
        if by_digest and actual != reference:
            raise VerificationError(f"{what}: content has digest {actual}")
        # For a tag, the digest is what we computed: some registries send a Docker-Content-Digest that
        # belongs to something else (the list, a conversion), so the header is never trusted.
        return raw, content_type, actual

    def manifest_digest(self, repository: str, reference: str) -> tuple[str, str]:
        """The digest a tag names now, and its content type: the one rule of every tool (hocker-manifest
        --digest, hocker-lock). A HEAD's Docker-Content-Digest (Docker Hub does not count a HEAD as a pull);
        where the HEAD is refused (405/501) or names no digest, the sha256 of the bytes a GET serves (kept, so
        fetching that digest next costs nothing)."""
        try:
            digest, content_type, _size = self.head_manifest(repository, reference)
            return digest, content_type
        except (NoDigestHeader, HeadRefused):
            pass
        raw, content_type, digest = self.get_manifest(repository, reference)
        self._manifests[f"{repository}@{digest}"] = (raw, content_type)
        return digest, content_type

    def head_manifest(self, repository: str, reference: str) -> tuple[str, str, int]:
        """HEAD a manifest: (digest, content type, size). Docker Hub does not count HEADs against rate limits.

        HeadRefused once the registry refused a HEAD (405/501): asked once per client, so once per registry
        per run (threads that ask at the same moment may each ask once)."""
        what = f"manifest {repository}:{reference}"
        if self._head_refused:
            raise HeadRefused(f"{what}: {self.host} refuses HEAD requests for manifests")
        with self._head_manifest(repository, reference, what) as resp:
            digest = resp.headers.get("Docker-Content-Digest", "")
            try:
                digest = parse_digest(digest)
            except HockerError:
                raise NoDigestHeader(f"{what}: the registry sent no usable Docker-Content-Digest") from None
            size = resp.headers.get("Content-Length", "")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return digest, content_type, int(size) if size.isdigit() else -1

    def rate_limit(self, repository: str, reference: str) -> dict[str, str]:
        """The registry's ratelimit-* headers on a HEAD of a manifest (a HEAD spends no Docker Hub pull)."""
        with self._head_manifest(repository, reference, budget=Budget(0)) as resp:
            return {name: resp.headers[name] for name in RATE_LIMIT_HEADERS if name in resp.headers}

    def _head_manifest(self, repository: str, reference: str, what: Optional[str] = None,
                       budget: Optional[Budget] = None) -> requests.Response:
        """A successful HEAD of a manifest at the origin (a registries.conf location may have moved it);
        `what` names it in errors (default: the repository where it is asked)."""
        ep, repository = self.endpoints.origin_for(repository)
        what = what or f"manifest {repository}:{reference}"
        resp = self._timed(ep, f"HEAD {what}", lambda: self.request(
            "HEAD", f"/v2/{repository}/manifests/{reference}", _scope(repository), headers={"Accept": ACCEPT},
            what=what, endpoint=ep, budget=budget), lambda r: None)
        if resp.status_code in HEAD_REFUSED:
            resp.close()
            self._head_refused = True
            raise HeadRefused(f"{what}: {ep.host} refuses HEAD requests for manifests (HTTP {resp.status_code})")
        try:
            _raise_for_status(resp, what, ep.host)
        except NotFoundError as exc:
            resp.close()
            if reference.startswith("sha256:"):
                raise
            raise self._tag_not_found(exc, repository, reference) from None
        except BaseException:
            resp.close()
            raise
        return resp

    def _tag_not_found(self, exc: NotFoundError, repository: str, tag: str) -> NotFoundError:
        """A missing tag's error with the closest existing tags, when the registry lets us list them."""
        from .tags import not_found_hint

        return NotFoundError(f"{exc}{not_found_hint(self, repository, tag)}")

    def get_parsed(self, repository: str, reference: str) -> Parsed:
        """The manifest or index a tag or digest names, parsed (schema1 and garbage refused)."""
        raw, content_type, digest = self.get_manifest(repository, reference)
        return parse_manifest(raw, digest, content_type)

    def resolve(self, ref: Reference, platform: Optional[Platform], *, explicit: bool = False) -> Resolved:
        """Fetch what `ref` names and, for an index, the manifest of `platform` (verified by digest).

        `explicit`: the user asked for `platform` (not a default), so an image whose platform no index states
        has its config fetched and must be for `platform` (see resolve_platforms).
        """
        from .platforms import resolve_platforms  # not needed to fetch a blob (fetchblob.py)

        top = self.get_parsed(ref.repository, ref.reference)
        if platform is None and isinstance(top, ImageIndex):
            raise ManifestError(f"{ref} is a multi-platform index; choose one with --platform")
        [(manifest, _)] = resolve_platforms(
            top, None if platform is None else [platform], lambda entry: self.get_entry(ref.repository, entry),
            fetch_config=self.config_fetcher(ref.repository) if explicit else None)
        return Resolved(top, manifest)

    def config_fetcher(self, repository: str) -> Callable[[ImageManifest], bytes]:
        """What resolve_platforms calls to check an image's platform against its config."""
        return lambda manifest: self.get_blob_bytes(repository, manifest.config)

    def get_entry(self, repository: str, entry: Descriptor) -> Parsed:
        """The manifest or index an index entry points at, verified by its digest."""
        raw, content_type, digest = self.get_manifest(repository, entry.digest)
        return parse_manifest(raw, digest, content_type or entry.media_type)

    # -- blobs -------------------------------------------------------------------------------------------

    def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the registry serves this blob (one HEAD request; redirects followed): 404 is False."""
        digest = parse_digest(digest)
        what = f"blob {digest}"
        ep, repository = self.endpoints.origin_for(repository)
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", _scope(repository), what=what, endpoint=ep)
        with resp:
            if resp.status_code == 404:
                return False
            _raise_for_status(resp, what, ep.host)
            return True

    def check_foreign_served(self, ref: Reference, layers: Iterable[Descriptor]) -> None:
        """ManifestError unless the registry serves each foreign (non-distributable) layer among `layers`.

        The Nix fetchers get every blob from the registry: a foreign layer it does not serve would fail the
        build with "blob not found", so pinning tools find out now (one HEAD per foreign layer, no download).
        """
        for d in layers:
            if d.is_foreign and not self.has_blob(ref.repository, d.digest):
                raise ManifestError(
                    f"{ref} has a foreign (non-distributable) layer {d.digest} that {self.host} does not "
                    f"serve (its urls: {', '.join(d.urls) or 'none'}); the Nix fetchers fetch blobs only from the "
                    "registry: push the layer to it first")

    def get_blob_bytes(self, repository: str, descriptor: Descriptor, limit: int = MAX_CONFIG_BYTES) -> bytes:
        """A small blob (the config) in memory, verified."""
        if descriptor.size > limit:
            raise ManifestError(f"blob {descriptor.digest} is {descriptor.size} bytes, more than {limit} allowed")
        key = f"{repository}@{descriptor.digest}"
        if key not in self._small_blobs:
            sink = BytesSink()
            self.fetch_blob(repository, descriptor.digest, descriptor.size, sink)
            self._small_blobs[key] = bytes(sink.buffer)
        return self._small_blobs[key]

    def fetch_blob(self, repository: str, digest: str, size: Optional[int], sink: BlobSink,
                   progress: Optional[Callable[[int], None]] = None,
                   cancel: Optional[threading.Event] = None) -> None:
        """Stream a blob into `sink`, hashing as it goes; resume with Range after a broken connection.

        On return every byte in the sink has been checked against `digest` (and `size` when known).
        `cancel` (set by another thread) makes it stop early with Cancelled. A mirror's failed attempt is
        discarded (sink restarted, progress taken back) before the next source starts over.
        """
        digest = parse_digest(digest)
        shown = [0]  # bytes this attempt reported to `progress`

        def counted(n: int) -> None:
            shown[0] += n
            if progress:
                progress(n)

        def attempt(ep: Endpoint, repo: str) -> None:
            if shown[0]:
                counted(-shown[0])
            self._timed(ep, f"blob {digest}",
                        lambda: self._fetch_blob_at(ep, repo, digest, size, sink, counted, cancel),
                        lambda _r: shown[0])

        self.endpoints.each(repository, True, f"blob {digest}", attempt)

    def _fetch_blob_at(self, ep: Endpoint, repository: str, digest: str, size: Optional[int], sink: BlobSink,
                       progress: Callable[[int], None], cancel: Optional[threading.Event]) -> None:
        verifier = DigestVerifier(digest, size)
        what = f"blob {digest}"
        path = f"/v2/{repository}/blobs/{digest}"
        budget = ep.transport.budget()  # one count for everything that goes wrong with this blob
        sink.restart()
        while True:
            offset = sink.tell()
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            resp = self.request("GET", path, _scope(repository), headers=headers, stream=True, what=what,
                                cancel=cancel, budget=budget, endpoint=ep)
            try:
                if offset and resp.status_code == 206:
                    if _range_start(resp) != offset:
                        raise RegistryError(f"{what}: the server resumed at the wrong offset")
                elif resp.status_code == 200:
                    if offset:
                        progress(-offset)
                        ep.transport.log(f"{what}: the server ignored Range, starting over")
                        sink.restart()
                        verifier.reset()
                else:
                    _raise_for_status(resp, what, ep.host)
                with Pipeline(verifier, sink, progress) as push:
                    for chunk in chunks(resp.raw):
                        check_cancel(cancel)
                        push(chunk)
            except STREAM_ERRORS as exc:
                ep.transport.retry_or_fail(budget, what, f"{reason(exc)} after {sink.tell()} bytes", cancel=cancel)
                continue
            finally:
                resp.close()
            if size is not None and verifier.count < size and budget.used < budget.limit:
                # a body shorter than the blob: fetch the rest (with no retry left, check() says what is missing)
                ep.transport.retry_or_fail(budget, what, f"short body ({verifier.count} of {size} bytes)",
                                           cancel=cancel)
                continue
            break
        verifier.check()


def _scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _range_start(resp: requests.Response) -> Optional[int]:
    value = resp.headers.get("Content-Range", "")
    if value.startswith("bytes ") and "-" in value:
        start = value[6:].split("-", 1)[0].strip()
        if start.isdigit():
            return int(start)
    return None


def _read_bounded(resp: requests.Response, limit: int, what: str) -> bytes:
    data = bytearray()
    for chunk in resp.raw.stream(65536, decode_content=True):
        data += chunk
        if len(data) > limit:
            raise ManifestError(f"{what} is larger than the {limit} bytes allowed")
    return bytes(data)


def _registry_message(resp: requests.Response) -> str:
    """The first error code/message of a registry error body, kept short."""
    try:
        errors = resp.json().get("errors") or []
        first = errors[0]
        text = f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, TypeError, RecursionError):
        return ""
    return text[:200]


def _raise_for_status(resp: requests.Response, what: str, host: str) -> None:
    if resp.status_code == 200:
        return
    detail = _registry_message(resp) if resp.request.method != "HEAD" else ""
    suffix = f" ({detail})" if detail else ""
    if resp.status_code == 404:
        raise NotFoundError(f"{what} not found on {host}{suffix}")
    if resp.status_code == 403:
        raise AuthError(f"access to {what} on {host} is forbidden{suffix}")
    raise RegistryError(f"{what}: unexpected HTTP {resp.status_code} from {host_of(resp)}{suffix}")


