"""Which host answers a request: the image's registry (the origin) or one of its mirrors.

mirrors.py says where a request may go, in order; this module keeps one connection (transport + auth state)
per host and walks that order: a mirror that fails in any way, or whose bytes do not match their digest, is
skipped with one line on stderr and the next source is tried; the origin comes last and its failure is the
error. A mirror gets one attempt per request, no retries (the retry budget, --retries, is the origin's) and
at most MIRROR_CONNECT_TIMEOUT to accept the connection (--timeout still bounds a silent read), and
a mirror that failed once is not asked again by this process (one line, not one per blob; a mirror without
this image's manifest will not have its blobs either). Mirrors are sent only the credentials the docker/podman config
holds for their own host; what the user gave on the command line or in the environment is for the origin.
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from typing import Callable, Mapping, Optional, TypeVar
from urllib.parse import urlsplit

from .auth import RegistryAuth
from .credentials import Credentials
from .errors import AuthError, HockerError, NotFoundError, VerificationError
from .mirrors import MirrorConfig, Source
from .transport import ClientOptions, Transport, is_loopback

T = TypeVar("T")
#: seconds to wait for a mirror to accept a connection: a mirror is meant to be near, and an unreachable one
#: (packets dropped, no refusal) would otherwise cost the origin's 30 s in every process, i.e. every Nix fetcher
MIRROR_CONNECT_TIMEOUT = 5.0


class Endpoint:
    """One host we talk to: its transport (scheme, TLS, retries) and its auth state."""

    def __init__(self, host: str, transport: Transport, auth: RegistryAuth, mirror: bool):
        self.host, self.transport, self.auth, self.mirror = host, transport, auth, mirror

    def close(self) -> None:
        self.transport.close()


class Endpoints:
    """The origin's endpoint, plus the mirrors' (made on first use); safe to share between download threads."""

    def __init__(self, origin: Endpoint, mirrors: Optional[MirrorConfig], options: ClientOptions, *,
                 log: Callable[[str], None], env: Mapping[str, str], sleep: Callable[[float], None],
                 warn: Optional[Callable[[str], None]] = None):
        """`warn` reports a skipped mirror (default `log`): a broken mirror is a configuration problem, so the
        tools say so even with -q (the Nix builders run them with -q; their log is where it must show)."""
        self.origin = origin
        self.config = mirrors
        self.options = options
        self.log, self.env, self.sleep = log, env, sleep
        self.warn = warn or log
        self._made: dict[tuple[str, bool], Endpoint] = {}
        self._dead: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        for endpoint in self._made.values():
            endpoint.close()

    def sources(self, repository: str, by_digest: bool) -> list[Source]:
        if self.config is None:
            return [Source(self.origin.host, repository, False, False)]
        return self.config.sources(self.origin.host, repository, by_digest)

    def mirrored(self, repository: str, by_digest: bool) -> bool:
        """Whether some mirror would be asked for such a request."""
        return self.config is not None and self.config.has_mirrors(self.origin.host, repository, by_digest)

    def origin_for(self, repository: str) -> tuple[Endpoint, str]:
        """The origin's endpoint and repository (a registries.conf `location` may move the origin)."""
        src = self.sources(repository, False)[-1]
        return self._endpoint(src), src.repository

    def each(self, repository: str, by_digest: bool, what: str, attempt: Callable[[Endpoint, str], T]) -> T:
        """`attempt(endpoint, repository there)` at each source in turn until one succeeds (see the module doc)."""
        sources = self.sources(repository, by_digest)
        for i, src in enumerate(sources):
            if not src.mirror:
                return attempt(self._endpoint(src), src.repository)
            if src.host in self._dead:
                continue
            try:
                return attempt(self._endpoint(src), src.repository)
            except HockerError as exc:
                with self._lock:  # parallel downloads that find the same mirror dead say so once
                    if src.host in self._dead:
                        continue
                    self._dead.add(src.host)
                nxt = sources[i + 1]
                self.warn(f"{what}: skipping mirror {src.host} ({_why(exc, what, src.host)}); trying "
                         f"{'mirror ' if nxt.mirror else ''}{nxt.host}")
        raise AssertionError("the origin is always the last source")  # pragma: no cover

    def _endpoint(self, src: Source) -> Endpoint:
        if not src.mirror and src.host == self.origin.host:
            return self.origin
        key = (src.host, src.insecure)
        with self._lock:
            endpoint = self._made.get(key)
            if endpoint is None:
                endpoint = self._made[key] = self._make(src)
            return endpoint

    def _make(self, src: Source) -> Endpoint:
        """A mirror's endpoint: no retries, its own credentials; a rewritten origin: the origin's settings."""
        # a mirror's own setting (--mirror's carries --insecure); the origin's options hold --insecure and its own
        insecure = src.insecure if src.mirror else self.options.insecure or src.insecure
        options = replace(self.options, insecure=insecure, retries=0 if src.mirror else self.options.retries,
                          connect_timeout=MIRROR_CONNECT_TIMEOUT if src.mirror else self.options.connect_timeout)
        loopback = is_loopback(urlsplit(f"//{src.host}").hostname or "")
        transport = Transport(f"https://{src.host}", options, may_fall_back=insecure or loopback,
                              log=self.log, env=self.env, sleep=self.sleep)
        creds: Optional[Credentials]
        if src.mirror:
            from .dockerconfig import from_docker_config

            creds = from_docker_config(src.host, self.env)
        else:
            creds = self.origin.auth.credentials
        return Endpoint(src.host, transport, RegistryAuth(transport.send, creds, insecure=insecure), src.mirror)


def _why(exc: HockerError, what: str, host: str) -> str:
    """Why a mirror was skipped, short: the subject and the retry count (always 0) are already known."""
    if isinstance(exc, NotFoundError):
        return "not found there"
    if isinstance(exc, AuthError):
        return f"access denied; a mirror is sent only the login the docker/podman auth file has for {host}"
    text = str(exc).split("; log in (", 1)[0]  # a RateLimitError's advice is for the origin
    text = text[len(what) + 2:] if text.startswith(what + ": ") else text
    text = _CONNECTION.sub("", text.replace(" (gave up after 0 retries)", ""))
    return f"bytes do not match: {text}" if isinstance(exc, VerificationError) else text


_CONNECTION = re.compile(r"HTTPS?Connection(?:Pool)?\([^)]*\): (?:Failed to establish a new connection: )?")
