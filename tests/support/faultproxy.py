"""A fault-injecting reverse proxy in front of a REAL registry (stdlib only), plus a tiny "object store".

Why: the client's promises (retries with backoff, Retry-After, Range resume, restart when Range is ignored,
never an unverified byte at --out, no Authorization on a cross-host redirect) only mean something when the
network misbehaves. The proxy forwards everything to the real registry and breaks exactly the requests a
test names, so every other byte, header and auth flow is the registry's own.

Usage::

    with FaultProxy(registry.url) as proxy:               # or proxy.start() ... proxy.stop()
        proxy.on("GET", BLOB, times=2).status(503)         # the first 2 matching requests get 503
        proxy.on("GET", BLOB, times=1).cut(after=100_000)  # then one is cut after 100000 body bytes
        run("hocker-layer", "--registry", proxy.url, ...)
        proxy.requests("GET", BLOB)                         # what arrived, in order (see `Logged`)

Rules (`proxy.on(method=None, path=".*", times=None, auth=None)` returns a `Rule`; chain actions on it):
  * matching: `method` (None = any), `path` a regex searched in the request path (no query string),
    `times` = only the first N matching requests (None = every one), `auth` True/False = only requests
    with/without an Authorization header (None = either). Rules are tried in the order added; the first
    one that matches and has budget left is used (and counts the hit in `rule.hits`); a request no rule
    takes is forwarded untouched.
  * answers without asking upstream: `.status(code, retry_after=None, headers=None, body=None)` (500, 502,
    503, 429 + Retry-After ...), `.stall(seconds)` (read the request, send nothing, close after `seconds`
    or at `stop()`), `.redirect()` (fetch the blob upstream with the client's own headers, park the bytes
    in the object store on 127.0.0.2 and answer 307 to it; an upstream non-200, e.g. the 401 challenge,
    is relayed unchanged).
  * forward, then damage the response: `.cut(after=N)` (close after N body bytes, Content-Length kept),
    `.stall(seconds, after=N)` (send N body bytes, then nothing), `.flip(offset=K)` (xor one byte of the
    body), `.short(missing=K)` (Content-Length kept, K bytes fewer sent, close) and
    `.short(missing=K, consistent=True)` (Content-Length lowered to match: a "complete" but truncated
    reply), `.extra(data)` (append bytes, Content-Length raised to match), `.header(name, value)` (set or,
    with None, remove a response header, e.g. a wrong Docker-Content-Digest), `.ignore_range()` (strip
    Range/If-Range before forwarding: upstream answers 200 with the whole body). Actions combine.

Every response carries `Connection: close` (one request per connection: no keep-alive state to get wrong).
`Location` and the `realm` of `WWW-Authenticate` are rewritten only where they point at the upstream (or at
a URL given in `rewrite=`, e.g. a token server that sits behind a second FaultProxy).

The object store (`proxy.store`, started on first use on 127.0.0.2) serves the parked bytes with Range
support and records every request's headers (`StoreRequest.headers`, `.authorization`), so a test can
prove the Authorization header never reached it.
"""
from __future__ import annotations

import http.client
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from urllib.parse import urlsplit

from .background import BackgroundServer

BLOB = r"/v2/.+/blobs/sha256:[0-9a-f]{64}$"


def blob_path(digest: str, repo: str = "library/hello") -> str:
    """A rule path matching exactly one blob of one repository."""
    return rf"/v2/{repo}/blobs/{digest}$"

MANIFEST = r"/v2/.+/manifests/[^/]+$"

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                        "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"})
STORE_HOST = "127.0.0.2"
_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout", 307: "Temporary Redirect"}


@dataclass
class Logged:
    """One request as the proxy saw it, and what it answered."""

    method: str
    path: str                       # without the query string
    query: str
    range: Optional[str]            # the Range header the CLIENT sent (before any ignore_range)
    authorization: bool             # an Authorization header was present
    auth_scheme: Optional[str]      # "Bearer", "Basic" ... (never the secret itself)
    started: float                  # time.monotonic()
    status: int = 0                 # status sent to the client; 0 = nothing sent (stall / closed)
    rule: Optional[str] = None      # which rule handled it (None: forwarded untouched)
    body_sent: int = 0              # body bytes sent to the client
    finished: float = 0.0


@dataclass
class StoreRequest:
    """One request as the object store saw it."""

    method: str
    path: str
    headers: dict[str, str]         # lower-cased names
    status: int = 0

    @property
    def authorization(self) -> bool:
        return "authorization" in self.headers

    @property
    def range(self) -> Optional[str]:
        return self.headers.get("range")


class Rule:
    """What to do with the first `times` requests matching method/path/auth (chain the actions)."""

    def __init__(self, method: Optional[str], path: str, times: Optional[int], auth: Optional[bool]) -> None:
        self.method = method.upper() if method else None
        self.pattern = re.compile(path)
        self.times = times
        self.auth = auth
        self.hits = 0
        self.status_code: Optional[int] = None
        self.status_headers: dict[str, str] = {}
        self.status_body: Optional[bytes] = None
        self.stall_seconds: Optional[float] = None
        self.stall_after: Optional[int] = None
        self.cut_after: Optional[int] = None
        self.flip_offset: Optional[int] = None
        self.short_missing: Optional[int] = None
        self.short_consistent = False
        self.extra_data = b""
        self.set_headers: dict[str, Optional[str]] = {}
        self.strip_range = False
        self.redirecting = False
        self._names: list[str] = []

    # -- actions -------------------------------------------------------------------------------------
    def status(self, code: int, retry_after: "Optional[int | str]" = None, headers: Optional[dict[str, str]] = None,
               body: Optional[bytes] = None) -> "Rule":
        self.status_code = code
        self.status_headers = dict(headers or {})
        if retry_after is not None:
            self.status_headers["Retry-After"] = str(retry_after)
        self.status_body = body
        self._names.append(f"status {code}" + (f" Retry-After {retry_after}" if retry_after is not None else ""))
        return self

    def stall(self, seconds: float, after: Optional[int] = None) -> "Rule":
        self.stall_seconds = seconds
        self.stall_after = after
        self._names.append(f"stall {seconds}s" + (f" after {after} bytes" if after is not None else ""))
        return self

    def cut(self, after: int) -> "Rule":
        self.cut_after = after
        self._names.append(f"cut after {after}")
        return self

    def flip(self, offset: int = 0) -> "Rule":
        self.flip_offset = offset
        self._names.append(f"flip byte {offset}")
        return self

    def short(self, missing: int, consistent: bool = False) -> "Rule":
        self.short_missing = missing
        self.short_consistent = consistent
        self._names.append(f"short by {missing}" + (" (consistent length)" if consistent else ""))
        return self

    def extra(self, data: bytes) -> "Rule":
        self.extra_data = bytes(data)
        self._names.append(f"extra {len(data)} bytes")
        return self

    def header(self, name: str, value: Optional[str]) -> "Rule":
        self.set_headers[name] = value
        self._names.append(f"header {name}: {value}")
        return self

    def ignore_range(self) -> "Rule":
        self.strip_range = True
        self._names.append("ignore Range")
        return self

    def redirect(self) -> "Rule":
        self.redirecting = True
        self._names.append(f"redirect to {STORE_HOST}")
        return self

    # -- matching ------------------------------------------------------------------------------------
    def matches(self, method: str, path: str, has_auth: bool) -> bool:
        if self.method is not None and method != self.method:
            return False
        if self.auth is not None and has_auth != self.auth:
            return False
        return self.pattern.search(path) is not None

    @property
    def exhausted(self) -> bool:
        return self.times is not None and self.hits >= self.times

    @property
    def name(self) -> str:
        return ", ".join(self._names) or "forward"

    def __repr__(self) -> str:
        return (f"Rule({self.method or '*'} {self.pattern.pattern!r} times={self.times} hits={self.hits}: "
                f"{self.name})")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], handler: type, owner: object) -> None:
        self.owner = owner
        super().__init__(addr, handler)

    def handle_error(self, request: object, client_address: object) -> None:  # quiet on client hang-ups
        import sys

        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, socket.timeout, OSError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _dispatch(self) -> None:
        self.close_connection = True
        self.server.owner._handle(self)  # type: ignore[attr-defined]

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def log_message(self, format: str, *args: object) -> None:
        pass


def _read_request_body(h: BaseHTTPRequestHandler) -> Optional[bytes]:
    length = h.headers.get("Content-Length")
    if length is not None:
        return h.rfile.read(int(length))
    if "chunked" in h.headers.get("Transfer-Encoding", "").lower():
        out = bytearray()
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while h.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return bytes(out)
            out += h.rfile.read(size)
            h.rfile.readline()
    return None


def _range_start(value: Optional[str]) -> int:
    m = re.fullmatch(r"bytes=(\d+)-\d*", (value or "").strip())
    return int(m.group(1)) if m else 0


class ObjectStore(BackgroundServer):
    """A stand-in for S3/GCS on 127.0.0.2: serves parked bytes (Range-aware) and records every request."""

    def __init__(self, host: str = STORE_HOST) -> None:
        self.host = host
        self.objects: dict[str, tuple[bytes, str]] = {}
        self.log: list[StoreRequest] = []
        self._lock = threading.Lock()
        BackgroundServer.__init__(self)
        # pending faults: each entry N cuts the next GET reply longer than N bytes after N body bytes
        self.cut_next: list[int] = []

    def start(self) -> "ObjectStore":
        self._start_serving(_Server((self.host, 0), _Handler, self), "objstore")
        return self

    def stop(self) -> None:
        self._stop_serving()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self._bound_port('object store')}"

    def put(self, data: bytes, content_type: str = "application/octet-stream") -> str:
        key = secrets.token_hex(8)
        with self._lock:
            self.objects[key] = (data, content_type)
        return f"{self.url}/objects/{key}?X-Amz-Expires=300&X-Amz-Signature={secrets.token_hex(16)}"

    def requests(self) -> list[StoreRequest]:
        with self._lock:
            return list(self.log)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        rec = StoreRequest(h.command, parts.path, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.log.append(rec)
            key = parts.path.rsplit("/", 1)[-1] if parts.path.startswith("/objects/") else ""
            obj = self.objects.get(key)
            cut = None
            if h.command == "GET" and obj is not None:
                # the first pending cut that falls inside this reply (a small config GET does not use it up)
                remaining = len(obj[0]) - _range_start(rec.range)
                for i, n in enumerate(self.cut_next):
                    if n < remaining:
                        cut = self.cut_next.pop(i)
                        break
        if h.command not in ("GET", "HEAD") or obj is None:
            rec.status = 404 if obj is None else 405
            h.send_response_only(rec.status)
            h.send_header("Content-Length", "0")
            h.send_header("Connection", "close")
            h.end_headers()
            return
        data, ctype = obj
        start, end = 0, len(data)
        status = 200
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", (rec.range or "").strip())
        if m:
            start = int(m.group(1))
            end = min(len(data), int(m.group(2)) + 1) if m.group(2) else len(data)
            if start >= len(data):
                rec.status = 416
                h.send_response_only(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.send_header("Connection", "close")
                h.end_headers()
                return
            status = 206
        rec.status = status
        h.send_response_only(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(end - start))
        h.send_header("Accept-Ranges", "bytes")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        h.send_header("Connection", "close")
        h.end_headers()
        if h.command == "HEAD":
            return
        body = data[start:end]
        if cut is not None:
            body = body[:cut]
        try:
            h.wfile.write(body)
        except OSError:
            pass


class FaultProxy(BackgroundServer):
    """Reverse proxy on 127.0.0.1 in front of `upstream` (http or https URL) that injects faults by rule."""

    def __init__(self, upstream: str, *, ca_file: Optional[str] = None,
                 rewrite: Optional[dict[str, str]] = None, upstream_timeout: float = 60.0) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"upstream must be an http(s) URL, not {upstream!r}")
        self.upstream = f"{parts.scheme}://{parts.netloc}"
        self.upstream_scheme = parts.scheme
        self.upstream_netloc = parts.netloc
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ca_file = ca_file
        self.extra_rewrite = dict(rewrite or {})
        self.upstream_timeout = upstream_timeout
        self.rules: list[Rule] = []
        self._log: list[Logged] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        BackgroundServer.__init__(self)
        self._store: Optional[ObjectStore] = None

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> "FaultProxy":
        self._stop.clear()
        self._start_serving(_Server(("127.0.0.1", 0), _Handler, self), "faultproxy")
        return self

    def stop(self) -> None:
        self._stop.set()  # ends stalls at once
        self._stop_serving()
        if self._store is not None:
            self._store.stop()
            self._store = None

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._bound_port("proxy")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def store(self) -> ObjectStore:
        """The object store on 127.0.0.2 that `.redirect()` sends blob GETs to (started on first use)."""
        with self._lock:
            if self._store is None:
                self._store = ObjectStore().start()
            return self._store

    # -- rules and log -------------------------------------------------------------------------------
    def on(self, method: Optional[str] = None, path: str = ".*", times: Optional[int] = None,
           auth: Optional[bool] = None) -> Rule:
        rule = Rule(method, path, times, auth)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        """Forget all rules and the log."""
        with self._lock:
            self.rules.clear()
            self._log.clear()

    @property
    def log(self) -> list[Logged]:
        with self._lock:
            return list(self._log)

    def requests(self, method: Optional[str] = None, path: str = ".*") -> list[Logged]:
        """Logged requests with this method (None: any) whose path matches the regex, in arrival order."""
        rx = re.compile(path)
        return [e for e in self.log if (method is None or e.method == method.upper()) and rx.search(e.path)]

    def _claim(self, method: str, path: str, has_auth: bool) -> Optional[Rule]:
        with self._lock:
            for rule in self.rules:
                if not rule.exhausted and rule.matches(method, path, has_auth):
                    rule.hits += 1
                    return rule
        return None

    # -- the work ------------------------------------------------------------------------------------
    def _rewrite(self, value: str) -> str:
        mapping = {self.upstream: self.url, **self.extra_rewrite}
        for old, new in mapping.items():  # whole host:port only (":5000" must not match ":50001")
            value = re.sub(re.escape(old.rstrip("/")) + r"(?![0-9])", new.rstrip("/"), value)
        return value

    def _connect(self) -> http.client.HTTPConnection:
        if self.upstream_scheme == "https":
            ctx = ssl.create_default_context(cafile=self.ca_file)
            return http.client.HTTPSConnection(self.upstream_host, self.upstream_port, context=ctx,
                                               timeout=self.upstream_timeout)
        return http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=self.upstream_timeout)

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        auth_value = h.headers.get("Authorization")
        entry = Logged(method=h.command, path=parts.path, query=parts.query, range=h.headers.get("Range"),
                       authorization=auth_value is not None,
                       auth_scheme=auth_value.split(" ", 1)[0] if auth_value else None,
                       started=time.monotonic())
        with self._lock:
            self._log.append(entry)
        try:
            body = _read_request_body(h)
            rule = self._claim(h.command, parts.path, auth_value is not None)
            entry.rule = rule.name if rule else None
            self._serve(h, rule, body, entry)
        except OSError:
            pass  # the client went away (e.g. it timed out first): nothing to report to it
        finally:
            entry.finished = time.monotonic()

    def _serve(self, h: BaseHTTPRequestHandler, rule: Optional[Rule], body: Optional[bytes], entry: Logged) -> None:
        if rule is not None and rule.stall_seconds is not None and rule.stall_after is None:
            self._stop.wait(rule.stall_seconds)
            return  # close without a byte
        if rule is not None and rule.status_code is not None:
            code = rule.status_code
            data = rule.status_body
            if data is None:
                data = (b'{"errors":[{"code":"UNAVAILABLE","message":"injected by faultproxy: HTTP %d"}]}' % code)
            h.send_response_only(code, _REASONS.get(code))
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in rule.status_headers.items():
                h.send_header(k, v)
            h.send_header("Connection", "close")
            h.end_headers()
            entry.status = code
            if h.command != "HEAD":
                h.wfile.write(data)
                entry.body_sent = len(data)
            return
        drop = {"host"}
        if rule is not None and (rule.strip_range or rule.redirecting):
            drop |= {"range", "if-range"}
        conn = self._connect()
        try:
            conn.putrequest(h.command, h.path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.upstream_netloc)
            for k, v in h.headers.items():
                kl = k.lower()
                if kl in HOP_BY_HOP or kl in drop or kl == "content-length":
                    continue
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.putheader("Connection", "close")
            conn.endheaders(body)
            resp = conn.getresponse()
            if rule is not None and rule.redirecting and h.command == "GET" and resp.status == 200:
                data = resp.read()
                location = self.store.put(data, resp.getheader("Content-Type") or "application/octet-stream")
                h.send_response_only(307, _REASONS[307])
                h.send_header("Location", location)
                h.send_header("Content-Length", "0")
                h.send_header("Connection", "close")
                h.end_headers()
                entry.status = 307
                return
            self._relay(h, resp, rule, entry)
        finally:
            conn.close()

    def _relay(self, h: BaseHTTPRequestHandler, resp: http.client.HTTPResponse, rule: Optional[Rule],
               entry: Logged) -> None:
        headers = [(k, v) for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP]
        length_text = resp.getheader("Content-Length")
        length = int(length_text) if length_text and length_text.isdigit() else None
        no_body = h.command == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200
        limit: Optional[int] = None  # body bytes of the upstream body we pass on
        declared = length
        extra = b""
        if rule is not None and not no_body:
            if rule.short_missing is not None and length is not None:
                limit = max(0, length - rule.short_missing)
                if rule.short_consistent:
                    declared = limit
            if rule.cut_after is not None:
                limit = rule.cut_after if limit is None else min(limit, rule.cut_after)
            if rule.stall_after is not None:
                limit = rule.stall_after if limit is None else min(limit, rule.stall_after)
            if rule.extra_data and length is not None:
                extra = rule.extra_data
                declared = length + len(extra)
        out: list[tuple[str, str]] = []
        for k, v in headers:
            kl = k.lower()
            if kl == "content-length":
                continue
            if kl in ("location", "www-authenticate"):
                v = self._rewrite(v)
            out.append((k, v))
        if rule is not None:
            for name, value in rule.set_headers.items():
                out = [(k, v) for k, v in out if k.lower() != name.lower()]
                if value is not None:
                    out.append((name, value))
        h.send_response_only(resp.status, resp.reason)
        for k, v in out:
            h.send_header(k, v)
        if declared is not None:
            h.send_header("Content-Length", str(declared))
        h.send_header("Connection", "close")
        h.end_headers()
        entry.status = resp.status
        if no_body:
            return
        pos = 0
        flip = rule.flip_offset if rule is not None else None
        truncated = False
        while True:
            want = 65536 if limit is None else min(65536, limit - pos)
            if want <= 0:
                truncated = limit is not None and (length is None or limit < length)
                break
            chunk = resp.read(want)
            if not chunk:
                break
            if flip is not None and pos <= flip < pos + len(chunk):
                b = bytearray(chunk)
                b[flip - pos] ^= 0x01
                chunk = bytes(b)
            h.wfile.write(chunk)
            pos += len(chunk)
            entry.body_sent = pos
        if extra and not truncated:
            h.wfile.write(extra)
            entry.body_sent = pos + len(extra)
        if rule is not None and rule.stall_after is not None and rule.stall_seconds is not None:
            self._stop.wait(rule.stall_seconds)
        # returning closes the connection (close_connection is set): with fewer bytes than Content-Length
        # the client sees an incomplete body.
