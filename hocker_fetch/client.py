"""The registry client: manifests and blobs over the Docker Registry v2 / OCI distribution API.

Everything that crosses the network is verified against its digest while it streams (constant memory);
transient failures are retried with exponential backoff (429 honours Retry-After) and interrupted blobs
resume with Range when the server allows it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, Optional

import requests
import urllib3

from .auth import RegistryAuth
from .credentials import Credentials, nix_build_hint
from .digest import DigestVerifier, parse_digest, sha256_digest
from .errors import AuthError, HockerError, ManifestError, NotFoundError, RegistryError, VerificationError
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
from .reference import Reference
from .sinks import BlobSink, BytesSink
from .transport import (
    STREAM_ERRORS,
    Budget,
    ClientOptions,
    Transport,
    check_cancel,
    check_transport,
    host_of,
    is_loopback,
    reason,
)

__all__ = ["ClientOptions", "NoDigestHeader", "RegistryClient", "Resolved"]

CHUNK = 1 << 20


class NoDigestHeader(RegistryError):
    """A HEAD answered without a usable Docker-Content-Digest: only a GET tells the digest."""


@dataclass(frozen=True)
class Resolved:
    """What a tag or digest resolves to: the top-level document and the selected single-platform manifest."""

    top: Parsed
    manifest: ImageManifest


class RegistryClient:
    """One registry (scheme + host), one transport, one auth state; safe to share between download threads."""

    def __init__(self, ref: Reference, credentials: Optional[Credentials] = None,
                 options: Optional[ClientOptions] = None, *, log: Callable[[str], None] = lambda _m: None,
                 env: Optional[Mapping[str, str]] = None, sleep: Callable[[float], None] = time.sleep):
        self.options = options = options or ClientOptions()
        self.host = ref.registry
        if credentials is not None:
            check_transport(ref.base_url, options.insecure)  # fail before connecting, not mid-way
        # an explicit scheme (--registry) is used as given; otherwise loopback/--insecure may fall back to http
        may_fall_back = (not ref.scheme_given and ref.scheme == "https"
                         and (options.insecure or is_loopback(ref.host)))
        self.transport = Transport(ref.base_url, options, may_fall_back=may_fall_back, log=log,
                                   env=os.environ if env is None else env, sleep=sleep)
        self.auth = RegistryAuth(self.transport.send, credentials, insecure=options.insecure)
        self._small_blobs: dict[str, bytes] = {}  # configs already fetched (a platform check, then the tool)

    @property
    def base_url(self) -> str:
        """The registry's URL as really used (https, or http after a loopback fallback)."""
        return self.transport.base_url

    @property
    def retries_used(self) -> int:
        return self.transport.retries_used

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, scope: str, *, headers: Optional[dict[str, str]] = None,
                stream: bool = False, what: str = "", cancel: Optional[threading.Event] = None,
                budget: Optional[Budget] = None) -> requests.Response:
        """A registry request with auth: challenges answered, redirects followed, transient failures retried.

        Returns any final response (the caller maps 404 etc.); raises RegistryError when retries run out.
        """
        auth_rounds = 0
        what = what or f"{method} {path}"
        sent: list[Optional[str]] = [None]  # what the last attempt sent, for on_unauthorized

        def with_auth(url: str) -> dict[str, str]:
            sent[0] = self.auth.header(url, scope)
            return {**(headers or {}), **({"Authorization": sent[0]} if sent[0] else {})}

        while True:
            resp = self.transport.open(method, path, what=what, headers=with_auth, stream=stream,
                                       cancel=cancel, budget=budget)
            if resp.status_code == 401:
                resp.close()
                if auth_rounds >= 2:
                    raise AuthError(self._denied_message(scope))
                auth_rounds += 1
                self.auth.on_unauthorized(resp, scope, sent[0])
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

    # -- manifests ---------------------------------------------------------------------------------------

    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str]:
        """GET a manifest: (raw bytes as served, content type, digest); verified when fetched by digest."""
        by_digest = reference.startswith("sha256:")
        if by_digest:
            reference = parse_digest(reference)
        what = f"manifest {repository}@{reference}" if by_digest else f"manifest {repository}:{reference}"
        budget = self.transport.budget()
        while True:
            resp = self.request("GET", f"/v2/{repository}/manifests/{reference}", _scope(repository),
                                headers={"Accept": ACCEPT}, stream=True, what=what, budget=budget)
            with resp:
                _raise_for_status(resp, what, self.host)
                length = resp.headers.get("Content-Length")
                if length and length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
                    raise ManifestError(f"{what} is {length} bytes, more than the {MAX_MANIFEST_BYTES} allowed")
                try:
                    raw = _read_bounded(resp, MAX_MANIFEST_BYTES, what)
                except STREAM_ERRORS as exc:
                    self.transport.retry_or_fail(budget, what, f"connection broke while reading ({reason(exc)})")
                    continue
                content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            break
        actual = sha256_digest(raw)
        if by_digest and actual != reference:
            raise VerificationError(f"{what}: content has digest {actual}")
        # For a tag, the digest is what we computed: some registries send a Docker-Content-Digest that
        # belongs to something else (the list, a conversion), so the header is never trusted.
        return raw, content_type, actual

    def head_manifest(self, repository: str, reference: str) -> tuple[str, str, int]:
        """HEAD a manifest: (digest, content type, size). Docker Hub does not count HEADs against rate limits."""
        what = f"manifest {repository}:{reference}"
        resp = self.request("HEAD", f"/v2/{repository}/manifests/{reference}", _scope(repository),
                            headers={"Accept": ACCEPT}, what=what)
        with resp:
            _raise_for_status(resp, what, self.host)
            digest = resp.headers.get("Docker-Content-Digest", "")
            try:
                digest = parse_digest(digest)
            except HockerError:
                raise NoDigestHeader(f"{what}: the registry sent no usable Docker-Content-Digest") from None
            size = resp.headers.get("Content-Length", "")
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            return digest, content_type, int(size) if size.isdigit() else -1

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
        resp = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", _scope(repository), what=what)
        with resp:
            if resp.status_code == 404:
                return False
            _raise_for_status(resp, what, self.host)
            return True

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
        `cancel` (set by another thread) makes it stop early with Cancelled.
        """
        digest = parse_digest(digest)
        verifier = DigestVerifier(digest, size)
        what = f"blob {digest}"
        path = f"/v2/{repository}/blobs/{digest}"
        budget = self.transport.budget()  # one count for everything that goes wrong with this blob
        sink.restart()
        while True:
            offset = sink.tell()
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            resp = self.request("GET", path, _scope(repository), headers=headers, stream=True, what=what,
                                cancel=cancel, budget=budget)
            try:
                if offset and resp.status_code == 206:
                    if _range_start(resp) != offset:
                        raise RegistryError(f"{what}: the server resumed at the wrong offset")
                elif resp.status_code == 200:
                    if offset:
                        if progress:
                            progress(-offset)
                        self.transport.log(f"{what}: the server ignored Range, starting over")
                        sink.restart()
                        verifier.reset()
                else:
                    _raise_for_status(resp, what, self.host)
                with _Pipeline(verifier, sink, progress) as push:
                    for chunk in _chunks(resp.raw):
                        check_cancel(cancel)
                        push(chunk)
            except STREAM_ERRORS as exc:
                self.transport.retry_or_fail(budget, what, f"{reason(exc)} after {sink.tell()} bytes", cancel=cancel)
                continue
            finally:
                resp.close()
            if size is not None and verifier.count < size and budget.used < budget.limit:
                # a body shorter than the blob: fetch the rest (with no retry left, check() says what is missing)
                self.transport.retry_or_fail(budget, what, f"short body ({verifier.count} of {size} bytes)",
                                             cancel=cancel)
                continue
            break
        verifier.check()


class _Pipeline:
    """Hash and write in a second thread while this one reads the socket (all three release the GIL).

    Measured on a 512 MB blob: about 1.5x the throughput of doing them in turn. Chunks pass through a
    bounded queue (constant memory); a worker error is re-raised in the reading thread, and the worker is
    always joined before the caller looks at sink.tell() again, so resume offsets stay exact.
    """

    DEPTH = 8

    def __init__(self, verifier: DigestVerifier, sink: BlobSink, progress: Optional[Callable[[int], None]]):
        self.queue: "queue.Queue[Optional[bytes]]" = queue.Queue(self.DEPTH)
        self.verifier, self.sink, self.progress = verifier, sink, progress
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return
            if self.error is not None:
                continue  # keep draining so the reader never blocks on a full queue
            try:
                self.verifier.update(chunk)
                self.sink.write(chunk)
                if self.progress:
                    self.progress(len(chunk))
            except BaseException as exc:  # handed to the reading thread
                self.error = exc

    def __enter__(self) -> Callable[[bytes], None]:
        self.thread.start()
        return self.push

    def push(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


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


def _chunks(raw: urllib3.response.HTTPResponse) -> Iterator[bytes]:
    """The body as it arrives (read1: whatever is there, up to CHUNK), never decoded.

    Unlike read(CHUNK), nothing received is held back when the connection stalls or breaks, so a resumed
    download continues from the last byte that really arrived.
    """
    read = getattr(raw, "read1", None)
    if read is None:  # urllib3 < 2.3: small reads lose little on a stall
        yield from raw.stream(65536, decode_content=False)
        return
    while True:
        chunk = read(CHUNK, decode_content=False)
        if not chunk:
            return
        yield chunk


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


