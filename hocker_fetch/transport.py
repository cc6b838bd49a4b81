"""The transport: how bytes reach a registry, whatever they mean.

One HTTP session per registry host with its TLS trust, retries with exponential backoff (429 and 503 honour
Retry-After) drawn from one budget per operation, the https -> http fallback for loopback and `--insecure`
registries, and the rule that credentials never travel in clear text to another machine. The registry client
(client.py) adds what requests mean: auth challenges, manifests, blobs; sources.py picks mirrors. A final 429
becomes a RateLimitError that quotes the registry's `ratelimit-*` headers (Docker Hub's pull allowance); a 429
that says no pulls are left is final at once (the window is hours, our retries minutes).
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import random
import re
import socket
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from . import __version__
from .errors import RateLimitError, RegistryError, UsageError

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# what a streaming body read raises underneath requests when the connection breaks or stalls
# (not OSError at large: a full disk is no reason to retry)
STREAM_ERRORS = TRANSIENT + (urllib3.exceptions.HTTPError, http.client.HTTPException, ConnectionError, TimeoutError)

Headers = Optional[Callable[[str], "dict[str, str]"]]


@dataclass(frozen=True)
class ClientOptions:
    """Knobs that come from the command line; defaults suit a build sandbox on a flaky link."""

    insecure: bool = False
    ca_file: Optional[str] = None
    timeout: float = 60.0  # seconds without a byte before a read fails
    connect_timeout: float = 30.0  # at most this long to connect (a mirror gets less: see sources.py)
    retries: int = 5
    backoff: float = 0.5  # first delay; doubles per attempt, with jitter
    max_retry_after: float = 120.0  # the longest Retry-After we obey
    pool_size: int = 8


class Budget:
    """The retries left to one operation (a manifest, a blob): every kind of failure draws on one count."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0


class Cancelled(Exception):
    """Another download failed, so this one was abandoned (never reported on its own)."""


def check_cancel(cancel: Optional[threading.Event]) -> None:
    """Raise Cancelled once another thread asked this operation to stop."""
    if cancel is not None and cancel.is_set():
        raise Cancelled()


def is_loopback(host: str) -> bool:
    """True for localhost and 127.0.0.0/8, ::1: the only places plain-HTTP credentials cannot be sniffed."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_transport(url: str, insecure: bool) -> None:
    """Refuse to send credentials in clear text to a host that is not this machine (unless --insecure)."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not insecure and not is_loopback(parts.hostname or ""):
        raise UsageError(
            f"refusing to send credentials over plain HTTP to {parts.hostname}: use https or pass --insecure")


def tls_verify(options: ClientOptions, env: Mapping[str, str]) -> "bool | str":
    """TLS trust: --insecure, else --ca-file, else SSL_CERT_FILE (Nix builders set it), else the default."""
    if options.insecure:
        return False
    if options.ca_file:
        if not os.path.isfile(options.ca_file):
            raise UsageError(f"--ca-file {options.ca_file}: no such file")
        return options.ca_file
    for name in ("SSL_CERT_FILE", "NIX_SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        value = env.get(name)
        if value and os.path.isfile(value):
            return value
    return True


class Transport:
    """One registry host: one session, its TLS trust, its scheme; safe to share between download threads."""

    def __init__(self, base_url: str, options: ClientOptions, *, may_fall_back: bool,
                 log: Callable[[str], None], env: Mapping[str, str], sleep: Callable[[float], None]):
        """`may_fall_back`: try https first and switch to plain http if the first contact shows no TLS."""
        self.base_url = base_url
        self.options = options
        self.log = log
        self.sleep = sleep
        self._may_fall_back = may_fall_back
        self.verify = tls_verify(options, env)
        self.session = _Session()
        self.session.headers["User-Agent"] = f"hocker-fetch/{__version__}"
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(options.pool_size, 4))
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        if options.insecure:
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self.retries_used = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.session.close()

    def budget(self) -> Budget:
        """A fresh retry budget for one operation (--retries)."""
        return Budget(self.options.retries)

    def retry_or_fail(self, budget: Budget, what: str, reason: str, *,
                      response: Optional[requests.Response] = None,
                      cancel: Optional[threading.Event] = None) -> None:
        """Spend one retry (say so on stderr, back off) or, with none left, fail with RegistryError."""
        if budget.used >= budget.limit:
            if response is not None and response.status_code == 429:
                raise RateLimitError(rate_limited(host_of(response), response.headers, budget.used))
            raise RegistryError(f"{what}: {reason} (gave up after {budget.used} retries)")
        budget.used += 1
        delay = self._delay(budget.used - 1, response)
        with self._lock:
            self.retries_used += 1
        self.log(f"{what}: {reason}; retry {budget.used}/{budget.limit} in {delay:.1f}s")
        if cancel is None:
            self.sleep(delay)
        elif cancel.wait(delay):
            raise Cancelled()

    def _delay(self, attempt: int, response: Optional[requests.Response]) -> float:
        if response is not None and response.status_code in (429, 503):
            after = retry_after(response.headers.get("Retry-After"))
            if after is not None:
                return min(after, self.options.max_retry_after)
        return self.options.backoff * (2 ** attempt) * (0.75 + random.random() / 2)

    def send(self, method: str, url: str, *, what: str, headers: "Headers | dict[str, str]" = None,
             cancel: Optional[threading.Event] = None, budget: Optional[Budget] = None,
             first_contact: bool = False, **kwargs: object) -> requests.Response:
        """One HTTP exchange, retried with backoff on connection errors, timeouts, 5xx and 429.

        No auth handling here: registry requests and token requests both go through it. `headers` may be a
        function of the URL, called before every attempt (a wait may outlive a token). With `first_contact`,
        a failure to talk TLS raises _TryPlainHttp instead (see open()). Setting `cancel` stops the retrying
        (Cancelled) as soon as the current attempt ends. Retries are drawn from `budget`, shared by everything
        one operation does (default: a fresh one).
        """
        budget = budget or self.budget()
        first = first_contact
        while True:
            check_cancel(cancel)
            try:
                # _Session: Authorization is dropped when a redirect leaves this host (S3, CDNs), ~/.netrc never read
                resp = self.session.request(method, url, verify=self.verify, allow_redirects=True,
                                            headers=headers(url) if callable(headers) else headers,
                                            timeout=(min(self.options.timeout, self.options.connect_timeout),
                                                     self.options.timeout),
                                            **kwargs)  # type: ignore[arg-type]
            except requests.exceptions.SSLError as exc:
                # a server that speaks plain HTTP fails the handshake; a bad certificate is no reason to drop TLS
                if first and "CERTIFICATE_VERIFY_FAILED" not in str(exc):
                    raise _TryPlainHttp() from None
                host = urlsplit(url).netloc
                if "WRONG_VERSION_NUMBER" in str(exc):  # it answered the handshake in plain HTTP
                    raise RegistryError(f"{host} speaks plain HTTP, not TLS: http:// is missing (--registry "
                                        f"http://{host})") from None
                raise RegistryError(f"TLS error talking to {host}: {reason(exc)} "
                                    "(trust its CA with --ca-file, or use --insecure)") from None
            except TRANSIENT as exc:
                final = unreachable(exc, url)  # no such host, or nothing listening here: retrying cannot help
                if final:
                    raise RegistryError(final) from None
                if first:
                    raise _TryPlainHttp() from None
                self.retry_or_fail(budget, what, reason(exc, url), cancel=cancel)
                continue
            finally:
                first = False
            if resp.status_code == 429 and pulls_left(resp.headers) == 0:
                discard(resp)  # none left in a window of hours: waiting out our retries cannot help
                raise RateLimitError(rate_limited(host_of(resp), resp.headers, budget.used))
            if resp.status_code in RETRY_STATUSES:
                discard(resp)  # the retry reuses the connection when the error body was short
                self.retry_or_fail(budget, what, f"HTTP {resp.status_code} from {host_of(resp)}",
                                   response=resp, cancel=cancel)
                continue
            return resp

    def open(self, method: str, path: str, *, what: str, headers: Headers = None, stream: bool = False,
             cancel: Optional[threading.Event] = None, budget: Optional[Budget] = None) -> requests.Response:
        """`send` to `base_url + path`, finding the scheme on first contact.

        With --insecure (or on loopback) a registry without TLS is found the way docker finds insecure
        registries: https first, then http, decided once at first contact; later failures are failures.
        """
        while True:
            try:
                resp = self.send(method, self.base_url + path, what=what, headers=headers, stream=stream,
                                 cancel=cancel, budget=budget, first_contact=self._may_fall_back)
            except _TryPlainHttp:
                self._may_fall_back = False
                self.base_url = urlsplit(self.base_url)._replace(scheme="http").geturl()  # a path prefix stays
                continue
            self._may_fall_back = False
            return resp


class _TryPlainHttp(Exception):
    """First contact over https failed in a way that means the server speaks plain http."""


# Up to this much of an unwanted body is read to keep its connection (a 401's JSON, a 503 page): closing a
# response with unread bytes makes urllib3 drop the connection, and the retry pays a new TCP (and TLS) setup.
DRAIN_LIMIT = 64 * 1024


def discard(resp: requests.Response) -> None:
    """Close a response we will not use, keeping its connection alive when the rest of its body is short.

    A body announced (or found) longer than DRAIN_LIMIT is not worth reading: the connection goes instead.
    """
    try:
        length = resp.headers.get("Content-Length", "")
        if not (length.isdigit() and int(length) > DRAIN_LIMIT):
            read = 0
            for chunk in resp.iter_content(16384):
                read += len(chunk)
                if read > DRAIN_LIMIT:
                    break
    except (STREAM_ERRORS + (requests.RequestException,)):
        pass  # a broken connection is dropped by close() below, as it would have been
    finally:
        resp.close()


class _Session(requests.Session):
    """requests.Session minus ~/.netrc: a credential goes only to the host it was given for.

    netrc is no credential source here (as in skopeo and docker; curl reads it only with --netrc): requests
    would put its entries on the first request of every host without auth, and again after every redirect
    (rebuild_auth), so a `default` entry reached every CDN and S3 host a blob redirects to. The environment
    stays trusted for proxies and CA bundles (trust_env).
    """

    def __init__(self) -> None:
        super().__init__()
        self.auth = _no_netrc  # a session auth stops prepare_request from consulting ~/.netrc

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """After a redirect: keep Authorization on the same host only, add nothing; a 307/308 to another host
        that would carry the request body (a token request's refresh token or password) is refused."""
        original = response.request.url or ""
        if not self.should_strip_auth(original, prepared_request.url or ""):
            return
        prepared_request.headers.pop("Authorization", None)
        if prepared_request.body is not None:
            response.close()
            raise RegistryError(f"{urlsplit(original).netloc} redirected a {prepared_request.method} request "
                                f"with a body to another host ({urlsplit(prepared_request.url or '').netloc}): "
                                "refused, the body may hold a credential")


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An auth hook that changes nothing (our Authorization headers are set per request)."""
    return request


def _causes(exc: BaseException) -> "list[BaseException]":
    """exc and what it wraps (requests -> urllib3 -> socket), outermost first."""
    seen: list[BaseException] = []
    todo: list[object] = [exc]
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or any(e is s for s in seen):
            continue
        seen.append(e)
        todo += [getattr(e, "reason", None), e.__cause__, e.__context__, *getattr(e, "args", ())]
    return seen


def unreachable(exc: BaseException, url: str) -> str:
    """The one-line error for a connection failure no retry can fix, or "" for one worth retrying.

    A host name that does not exist (EAI_NONAME; EAI_AGAIN is temporary) or a refused connection to this
    machine (nothing listens on that port) is a mistake in the command line, not a flaky network.
    """
    if isinstance(exc, requests.exceptions.ProxyError):
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    for e in _causes(exc):
        if isinstance(e, socket.gaierror) and e.errno == socket.EAI_NONAME:
            if host in ("registry-1.docker.io", "auth.docker.io"):
                return (f"cannot resolve {host}: the image names no registry host, so it went to Docker Hub; "
                        "forgot the host (HOST:PORT/REPOSITORY, or --registry URI REPOSITORY TAG)?")
            return f"cannot resolve {host}: no such host (a typo in the registry's name?)"
        if isinstance(e, ConnectionRefusedError) and is_loopback(host):
            return (f"nothing listens on {parts.netloc} (connection refused): is the registry running, "
                    "and is the port right?")
    return ""


def reason(exc: BaseException, url: str = "") -> str:
    """A short, secret-free reason for a network failure, without the HTTP library's text."""
    if isinstance(exc, requests.exceptions.ProxyError):
        # urllib3 would say ('Unable to connect to proxy', NewConnectionError(<object at 0x...>, ...))
        return "the proxy from the environment (https_proxy/http_proxy/all_proxy) refused or failed the connection"
    host = urlsplit(url).netloc if url else "the server"
    causes = _causes(exc)
    if any(isinstance(e, requests.exceptions.ConnectTimeout) for e in causes):
        return f"timed out connecting to {host}"
    if any(isinstance(e, (requests.exceptions.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError))
           for e in causes):
        return f"read from {host} timed out (nothing received for --timeout seconds)"
    for e in causes:
        if isinstance(e, socket.gaierror):
            return f"cannot resolve {urlsplit(url).hostname or host} ({e.strerror or 'name resolution failed'})"
        if isinstance(e, (ConnectionRefusedError, ConnectionResetError, ConnectionAbortedError)):
            return f"{e.strerror or e.__class__.__name__} ({host})"
    text = str(exc.__class__.__name__)
    inner = getattr(exc, "args", None)
    if inner and isinstance(inner[0], BaseException):
        text = inner[0].__class__.__name__
        cause = getattr(inner[0], "reason", None)
        if cause is not None:
            text = re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>:? ?", "", f"{cause}")  # no urllib3 object reprs
    return text[:200]


def host_of(resp: requests.Response) -> str:
    """host[:port] that really answered (after redirects)."""
    return urlsplit(resp.url).netloc


def retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


RATE_LIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "docker-ratelimit-source")


def _quota(value: Optional[str]) -> Optional[tuple[int, Optional[int]]]:
    """`100;w=21600` -> (100, 21600): a count and its window in seconds (RateLimit header draft, Docker Hub)."""
    if not value:
        return None
    count, *params = [part.strip() for part in value.split(";")]
    if not count.isdigit():
        return None
    window = next((int(p[2:]) for p in params if p.startswith("w=") and p[2:].isdigit()), None)
    return int(count), window


def _window(seconds: int) -> str:
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} seconds"


def pulls_left(headers: Mapping[str, str]) -> Optional[int]:
    """The count of ratelimit-remaining, when the registry sends one."""
    remaining = _quota(headers.get("ratelimit-remaining"))
    return None if remaining is None else remaining[0]


def describe_rate_limit(headers: Mapping[str, str]) -> Optional[str]:
    """`76 of 100 pulls left per 6 hours` from a response's ratelimit-* headers; None when it has none."""
    limit = _quota(headers.get("ratelimit-limit"))
    remaining = _quota(headers.get("ratelimit-remaining"))
    if limit is None and remaining is None:
        return None
    window = (limit or remaining or (0, None))[1]
    per = f" per {_window(window)}" if window else ""
    if limit is not None and remaining is not None:
        return f"{remaining[0]} of {limit[0]} pulls left{per}"
    if limit is not None:
        return f"a limit of {limit[0]} pulls{per}"
    assert remaining is not None
    return f"{remaining[0]} pulls left{per}"


def rate_limited(host: str, headers: Mapping[str, str], retries: int) -> str:
    """The message of a final 429: the registry's numbers when it sends them, and what to do about it."""
    numbers = describe_rate_limit(headers)
    detail = f": {numbers}" if numbers else " (HTTP 429; it sent no ratelimit headers)"
    tried = f" (gave up after {retries} retries)" if retries else ""
    return (f"rate limited by {host}{detail}{tried}; log in (docker login, -u/-p or DOCKER_USER/DOCKER_PASS) for "
            "a higher limit, or fetch through a mirror (--mirror or registries.conf)")
