"""Registry "fronts": small HTTPS servers that reproduce one real registry's documented pull behaviour in front of
the reference registry (issue 17).

Why: we cannot reach Docker Hub, GHCR, Quay, ECR, GAR, ACR, Harbor, GitLab, Nexus or Artifactory from here, but
what makes them differ from the reference registry is small and documented: where the token realm lives and what
it answers, which user names and password shapes they take, where blobs are redirected to (a CDN or S3 that must
never see a credential), rate-limit headers, a HEAD that is refused. A front does exactly that part itself (with
real TLS from the test CA) and forwards every registry request to the reference registry, so every byte a tool
gets is the real registry's. Blob hosts and auth hosts listen on other loopback addresses (127.0.0.2, 127.0.0.3),
so for a client they are other hosts.

Every host of a front logs every request with all of its headers (`Front.log`, a list of `Seen`): the evidence
for "no credential reached a host it was not meant for" (`credential_violations`).

Usage::

    front = Front(PROFILES["ecr"], upstream=plain_registry.url, tls=front_tls(pki, dir)).start()
    front.add_user("AWS", ecr_password())
    run("hocker-layer", ..., f"{front.host}/library/hello:oci")
    assert credential_violations(front) == []
    front.stop()
"""
from __future__ import annotations

import base64
import http.client
import json
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional
from urllib.parse import parse_qs, urlsplit

from .background import BackgroundServer
from .front_profiles import HEAD_REFUSED, PROFILES, Profile
from .pki import Pki

__all__ = ["HEAD_REFUSED", "PROFILES", "Front", "Profile", "Seen", "credential_violations", "front_tls"]

REGISTRY_IP = "127.0.0.1"
BLOB_IP = "127.0.0.2"   # the CDN / S3 / blob storage a registry redirects blob downloads to
AUTH_IP = "127.0.0.3"   # a token realm on another host (Docker Hub's auth.docker.io, GitLab's /jwt/auth)

_API = re.compile(r"^/v2/(?P<repo>.+)/(?P<kind>manifests|blobs|tags)/(?P<ref>[^/]+)$")
# response headers of the reference registry a front passes on
_RELAY = ("content-type", "content-length", "docker-content-digest", "content-range", "accept-ranges", "etag",
          "docker-distribution-api-version")



# -- TLS ------------------------------------------------------------------------------------------------------

_EXT = """\
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:127.0.0.2, IP:127.0.0.3, IP:127.0.0.4
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
"""


@dataclass(frozen=True)
class FrontTls:
    cert: Path
    key: Path
    ca_file: str

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx


def front_tls(pki: Pki, directory: Path) -> FrontTls:
    """A certificate from the test CA for every loopback address the fronts use (the CA stays the trust root)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / "front.ext").write_text(_EXT)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-newkey", "rsa:2048", "-nodes", "-sha256", "-keyout", "front.key", "-out", "front.csr",
            "-subj", "/CN=hocker-front")
    openssl("x509", "-req", "-in", "front.csr", "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
            "-CAcreateserial", "-CAserial", str(d / "ca.srl"), "-sha256", "-days", "30", "-extfile", "front.ext",
            "-out", "front.crt")
    return FrontTls(d / "front.crt", d / "front.key", str(pki.ca_cert))


# -- the request log ------------------------------------------------------------------------------------------

@dataclass
class Seen:
    """One request as one host of a front saw it: every header (lower-cased names), the form body of a POST."""

    role: str                     # "registry", "auth" (token endpoint, on whichever host) or "blob"
    netloc: str
    method: str
    path: str                     # with the query string
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)
    status: int = 0

    @property
    def authorization(self) -> Optional[str]:
        return self.headers.get("authorization")


def basic_value(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _basic_pair(value: Optional[str]) -> Optional[tuple[str, str]]:
    if not value or not value[:6].lower() == "basic ":
        return None
    try:
        user, _, password = base64.b64decode(value[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return ("", "")
    return user, password


def _bearer(value: Optional[str]) -> Optional[str]:
    if value and value[:7].lower() == "bearer ":
        return value[7:].strip()
    return None


# -- the servers ----------------------------------------------------------------------------------------------

class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: object, client_address: object) -> None:  # quiet on client hang-ups
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, socket.timeout, OSError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


def _serve(ip: str, tls: FrontTls, handle: Callable[[BaseHTTPRequestHandler], None], name: str) -> BackgroundServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _dispatch(self) -> None:
            self.close_connection = True
            handle(self)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = _Server((ip, 0), Handler)
    ctx = tls.context()
    httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    srv = BackgroundServer()
    srv._start_serving(httpd, name)
    return srv


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: Optional[dict[str, str]] = None) -> None:
    h.send_response_only(status)
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.send_header("Connection", "close")
    h.end_headers()
    if h.command != "HEAD" and body:
        try:
            h.wfile.write(body)
        except OSError:
            pass


def _json(h: BaseHTTPRequestHandler, status: int, obj: object, headers: Optional[dict[str, str]] = None) -> None:
    _send(h, status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})


@dataclass
class _Token:
    repos: frozenset[str]
    expires: float
    user: str


class Front:
    """One registry's front on 127.0.0.1 (+ its auth host and blob host when the profile has them)."""

    def __init__(self, profile: Profile, upstream: str, tls: FrontTls) -> None:
        self.profile = profile
        self.upstream = urlsplit(upstream)       # the reference registry, plain http, no auth
        self.tls = tls
        self.users: dict[str, str] = {}
        self.refresh: dict[str, str] = {}         # ACR identity (refresh) token -> user
        self.tokens: dict[str, _Token] = {}
        self.log: list[Seen] = []
        self.revoke_every: Optional[int] = None   # revoke every token before each N-th authorized API request
        self.objects: dict[str, bytes] = {}
        self._authorized = 0
        self._lock = threading.Lock()
        self._servers: dict[str, BackgroundServer] = {}

    # -- lifecycle ------------------------------------------------------------------------------------------
    def start(self) -> "Front":
        p = self.profile
        self._servers["registry"] = _serve(REGISTRY_IP, self.tls, lambda h: self._registry(h), f"front-{p.name}")
        if p.realm_host == "auth":
            self._servers["auth"] = _serve(AUTH_IP, self.tls, lambda h: self._auth_host(h), f"auth-{p.name}")
        if p.blob_redirect:
            self._servers["blob"] = _serve(BLOB_IP, self.tls, lambda h: self._blob_host(h), f"blob-{p.name}")
        return self

    def stop(self) -> None:
        for srv in self._servers.values():
            srv._stop_serving()
        self._servers.clear()

    def __enter__(self) -> "Front":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def netloc(self, role: str) -> str:
        srv = self._servers[role]
        ip = {"registry": REGISTRY_IP, "auth": AUTH_IP, "blob": BLOB_IP}[role]
        return f"{ip}:{srv._bound_port(role)}"

    @property
    def host(self) -> str:
        """host:port of the registry, for docker references (`HOST/library/hello:oci`)."""
        return self.netloc("registry")

    @property
    def url(self) -> str:
        return f"https://{self.host}"

    @property
    def prefixed_url(self) -> str:
        """hocker's --registry form under the path prefix (Artifactory's repository path method)."""
        return f"{self.url}{self.profile.prefix}/v2/"

    def add_user(self, user: str, password: str) -> None:
        self.users[user] = password

    def add_refresh_token(self, token: str, user: str) -> None:
        self.refresh[token] = user

    def requests(self, role: Optional[str] = None) -> list[Seen]:
        with self._lock:
            return [s for s in self.log if role is None or s.role == role]

    def clear(self) -> None:
        with self._lock:
            self.log.clear()

    def issued(self) -> set[str]:
        with self._lock:
            return set(self.tokens)

    def revoke_all(self) -> None:
        with self._lock:
            for tok in self.tokens.values():
                tok.expires = 0.0

    # -- shared ---------------------------------------------------------------------------------------------
    def _record(self, h: BaseHTTPRequestHandler, role: str) -> Seen:
        form: dict[str, str] = {}
        if h.command in ("POST", "PUT", "PATCH"):
            length = int(h.headers.get("Content-Length") or 0)
            raw = h.rfile.read(length).decode(errors="replace") if length else ""
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        seen = Seen(role, h.headers.get("Host", ""), h.command, h.path,
                    {k.lower(): v for k, v in h.headers.items()}, form)
        with self._lock:
            self.log.append(seen)
        return seen

    def _realm(self, prefix: str) -> str:
        p = self.profile
        base = f"https://{self.netloc('auth')}" if p.realm_host == "auth" else self.url + prefix
        return base + p.realm_path

    # -- the token endpoint ---------------------------------------------------------------------------------
    def _auth_host(self, h: BaseHTTPRequestHandler) -> None:
        seen = self._record(h, "auth")
        if urlsplit(h.path).path != self.profile.realm_path:
            seen.status = 404
            _json(h, 404, {"errors": [{"code": "NOT_FOUND"}]})
            return
        self._token(h, seen)

    def _token(self, h: BaseHTTPRequestHandler, seen: Seen) -> None:
        p = self.profile
        query = {k: v for k, v in parse_qs(urlsplit(h.path).query, keep_blank_values=True).items()}
        scopes = list(query.get("scope", [])) + ([seen.form["scope"]] if seen.form.get("scope") else [])
        service = (query.get("service") or [seen.form.get("service", "")])[0]
        user: Optional[str] = None
        if h.command == "POST":
            if not p.refresh_tokens or seen.form.get("grant_type") != "refresh_token":
                seen.status = 400
                _json(h, 400, {"error": "unsupported_grant_type"})
                return
            user = self.refresh.get(seen.form.get("refresh_token", ""))
            if user is None:
                seen.status = 401
                _json(h, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid refresh token"}]})
                return
        elif seen.authorization is not None:
            pair = _basic_pair(seen.authorization)
            if pair is None or self.users.get(pair[0]) != pair[1] or pair[0] not in self.users:
                seen.status = 401
                _json(h, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]},
                      {"WWW-Authenticate": f'Basic realm="{p.name}"'})
                return
            user = pair[0]
        if service and service != p.service:
            seen.status = 400
            _json(h, 400, {"errors": [{"code": "DENIED", "message": f"unknown service {service!r}"}]})
            return
        repos = set()
        if user is not None or p.anonymous:
            for scope in scopes:
                for item in scope.split():
                    typ, _, rest = item.partition(":")
                    name, _, actions = rest.rpartition(":")
                    if typ == "repository" and "pull" in actions.split(","):
                        repos.add(name)
        value = f"{p.name}-{secrets.token_urlsafe(24)}"
        lifetime = p.expires_in if p.expires_in is not None else 60
        with self._lock:
            self.tokens[value] = _Token(frozenset(repos), time.monotonic() + lifetime, user or "")
        body: dict[str, object] = {name: value for name in p.token_fields}
        if p.expires_in is not None:
            body["expires_in"] = p.expires_in
        body["issued_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        seen.status = 200
        _json(h, 200, body)

    # -- the registry ---------------------------------------------------------------------------------------
    def _registry(self, h: BaseHTTPRequestHandler) -> None:
        p = self.profile
        path = urlsplit(h.path).path
        prefix = ""
        if p.prefix and (path == p.prefix or path.startswith(p.prefix + "/")):
            prefix, path = p.prefix, path[len(p.prefix):] or "/"
        if p.realm_host == "same" and path == p.realm_path:
            self._token(h, self._record(h, "auth"))
            return
        seen = self._record(h, "registry")
        if path not in ("/v2", "/v2/") and not _API.match(path):
            seen.status = 404
            _json(h, 404, {"errors": [{"code": "NOT_FOUND", "message": "not a registry path"}]})
            return
        m = _API.match(path)
        repo = m.group("repo") if m else None
        problem = self._check(seen, repo)
        if problem is not None:
            seen.status = 401
            _json(h, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                  {"WWW-Authenticate": self._challenge(prefix, repo, problem)})
            return
        if m is None:
            seen.status = 200
            _json(h, 200, {}, {"Docker-Distribution-Api-Version": "registry/2.0"})
            return
        kind = m.group("kind")
        if kind == "manifests" and h.command == "HEAD" and p.head_status is not None:
            seen.status = p.head_status
            _send(h, p.head_status, b"", {"Allow": "GET, PUT, DELETE"})
            return
        if kind == "blobs" and h.command == "GET" and p.blob_redirect:
            self._redirect_blob(h, seen, path)
            return
        self._forward(h, seen, path, kind)

    def _check(self, seen: Seen, repo: Optional[str]) -> Optional[str]:
        """None when the request may pass; else "" (no or bad credentials) or "invalid_token"."""
        p = self.profile
        value = seen.authorization
        if p.auth == "basic":
            pair = _basic_pair(value)
            ok = pair is not None and pair[0] in self.users and self.users[pair[0]] == pair[1]
            return None if ok else ""
        token = _bearer(value)
        if token is None:
            return ""
        with self._lock:
            tok = self.tokens.get(token)
            if tok is None or tok.expires < time.monotonic():
                return "invalid_token"
            if repo is not None and repo not in tok.repos:
                return "insufficient_scope"
            if repo is not None and self.revoke_every:
                self._authorized += 1
                if self._authorized % self.revoke_every == 0:
                    for t in self.tokens.values():
                        t.expires = 0.0
                    return "invalid_token"
        return None

    def _challenge(self, prefix: str, repo: Optional[str], problem: str) -> str:
        p = self.profile
        if p.auth == "basic":
            return f'Basic realm="{self.url}/",service="{p.service}"'
        value = f'{p.challenge_scheme} realm="{self._realm(prefix)}",service="{p.service}"'
        if repo is not None:
            value += f',scope="repository:{repo}:pull"'
        if problem:
            value += f',error="{problem}"'
        return value

    def _upstream(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            conn.request(method, path, headers=headers)
            resp = conn.getresponse()
            body = resp.read() if method != "HEAD" else b""
            return resp.status, resp.getheaders(), body
        finally:
            conn.close()

    def _forward(self, h: BaseHTTPRequestHandler, seen: Seen, path: str, kind: str) -> None:
        p = self.profile
        ask = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "range", "if-range")}
        status, headers, body = self._upstream(h.command, path, ask)
        out = {k: v for k, v in headers if k.lower() in _RELAY and k.lower() != "content-length"}
        if kind == "manifests" and not p.digest_header:
            out = {k: v for k, v in out.items() if k.lower() != "docker-content-digest"}
        if kind == "manifests" and p.rate_limit_headers:
            out.update({"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "99;w=21600",
                        "docker-ratelimit-source": "127.0.0.1"})
        seen.status = status
        length = dict((k.lower(), v) for k, v in headers).get("content-length", "0")
        if h.command == "HEAD":
            h.send_response_only(status)
            for k, v in out.items():
                h.send_header(k, v)
            h.send_header("Content-Length", length)
            h.send_header("Connection", "close")
            h.end_headers()
            return
        _send(h, status, body, out)

    def _redirect_blob(self, h: BaseHTTPRequestHandler, seen: Seen, path: str) -> None:
        status, headers, body = self._upstream("GET", path, {})
        if status != 200:
            seen.status = status
            _send(h, status, body, {k: v for k, v in headers if k.lower() == "content-type"})
            return
        key = secrets.token_hex(8)
        with self._lock:
            self.objects[key] = body
        if self.profile.blob_redirect == "s3":
            query = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAFRONT%2F20261207%2Fus-east-1%2Fs3"
                     f"&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={secrets.token_hex(32)}")
        else:
            query = f"verify={secrets.token_hex(16)}&expires={int(time.time()) + 1200}"
        seen.status = 307
        _send(h, 307, b"", {"Location": f"https://{self.netloc('blob')}/blobs/{key}?{query}"})

    # -- the blob host ---------------------------------------------------------------------------------------
    def _blob_host(self, h: BaseHTTPRequestHandler) -> None:
        seen = self._record(h, "blob")
        if self.profile.blob_redirect == "s3" and seen.authorization is not None:
            seen.status = 400
            body = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InvalidArgument</Code><Message>Only one'
                    b' auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string'
                    b' parameter or the Authorization header should be specified</Message></Error>')
            _send(h, 400, body, {"Content-Type": "application/xml"})
            return
        key = urlsplit(h.path).path.rsplit("/", 1)[-1]
        with self._lock:
            data = self.objects.get(key)
        if data is None or h.command not in ("GET", "HEAD"):
            seen.status = 404 if data is None else 405
            _send(h, seen.status)
            return
        start, end, status = 0, len(data), 200
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", (seen.headers.get("range") or "").strip())
        extra = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if rng and int(rng.group(1)) < len(data):
            start = int(rng.group(1))
            end = min(len(data), int(rng.group(2)) + 1) if rng.group(2) else len(data)
            status = 206
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
        seen.status = status
        _send(h, status, data[start:end], extra)


# -- the evidence ---------------------------------------------------------------------------------------------

def credential_violations(front: Front, decoys: tuple[str, ...] = ()) -> list[str]:
    """Every request that carried a credential where it does not belong, one line each ([] is the promise).

    * blob hosts (CDN, S3) get no Authorization header, and no header or query holds any secret;
    * the token endpoint gets nothing but Basic with a known user's own password (or nothing: anonymous, or
      ACR's refresh token in the POST body);
    * registry API requests carry only a token this front issued (Bearer registries) or a known user's Basic
      credentials (ECR), never a password on a Bearer registry;
    * no decoy (a secret given for another host) appears anywhere.
    """
    bad: list[str] = []
    issued = front.issued()
    secrets_ = [pw for pw in front.users.values()] + list(front.refresh) + sorted(issued) + list(decoys)
    encoded = [basic_value(u, pw)[6:] for u, pw in front.users.items()]
    for s in front.requests():
        where = f"{s.role} {s.netloc} {s.method} {s.path.split('?')[0]}"
        values = list(s.headers.values()) + [s.path] + list(s.form.values())
        pairs = [":".join(pair) for pair in (_basic_pair(v) for v in values) if pair is not None]
        for d in decoys:
            if any(d in v for v in values + pairs):
                bad.append(f"{where}: a decoy secret (given for another host) was sent")
        auth = s.authorization
        if s.role == "blob":
            if auth is not None:
                bad.append(f"{where}: Authorization {auth.split()[0]} sent to the blob host")
            if any(sec and sec in v for sec in secrets_ for v in values) or any(e in v for e in encoded
                                                                               for v in values):
                bad.append(f"{where}: a secret in a header or the URL")
        elif s.role == "auth":
            if auth is None:
                continue
            pair = _basic_pair(auth)
            if pair is None or pair[0] not in front.users or front.users[pair[0]] != pair[1]:
                bad.append(f"{where}: Authorization {auth.split()[0]} that is not a user's own Basic login")
        else:
            if auth is None:
                continue
            if front.profile.auth == "basic":
                pair = _basic_pair(auth)
                if pair is None or pair[0] not in front.users:
                    bad.append(f"{where}: Authorization {auth.split()[0]} that is not a known user's login")
            elif _bearer(auth) not in issued:
                bad.append(f"{where}: Authorization {auth.split()[0]} that is not a token this registry issued")
    return bad
