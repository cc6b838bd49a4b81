"""A Docker-Hub-like token server (the Bearer half of registry auth), stdlib + `openssl` only.

Why our own: the reference registry only verifies tokens; something must issue them so the client's
whole challenge -> token -> retry flow runs against real code. The policy mirrors Docker Hub:
 * repositories under `private/` need valid Basic credentials; an anonymous request gets a token with an
   empty `access` list (the registry then refuses it with 401 insufficient_scope);
 * wrong credentials are refused by the token server itself with a 401 JSON error;
 * every other repository gets anonymous pull; authenticated users get every action they ask for.
Every request is recorded in `requests` so tests can check what a client sent (and what it did not).
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from .background import BackgroundServer
from .pki import rs256_sign


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenRequest:
    """One request as the token server saw it."""

    path: str
    query: dict[str, list[str]]
    has_authorization: bool
    user: Optional[str]          # the Basic user name sent, if any (valid or not)
    status: int = 0
    scopes: list[str] = field(default_factory=list)


def parse_scopes(values: list[str]) -> list[tuple[str, str, list[str]]]:
    """`repository:a/b:pull,push` -> ("repository", "a/b", ["pull", "push"]); space-separated lists too."""
    out = []
    for value in values:
        for item in value.split():
            typ, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if typ and name:
                out.append((typ, name, [a for a in actions.split(",") if a]))
    return out


class TokenServer(BackgroundServer):
    """Threaded token server on 127.0.0.1; `start()` binds a free port, `stop()` shuts it down."""

    def __init__(self, signing_key: Path, cert_der_b64: str, users: dict[str, str],
                 service: str = "hocker-test-registry", issuer: str = "hocker-test-issuer",
                 expires_in: Optional[int] = 300, private_prefix: str = "private/") -> None:
        self.signing_key = Path(signing_key)
        self.cert_der_b64 = cert_der_b64
        self.users = dict(users)
        self.service = service
        self.issuer = issuer
        # What the JSON reply advertises; None omits the field (clients must then assume 60 s).
        self.expires_in: Optional[int] = expires_in
        # Lifetime written into the JWT `exp`; None = same as expires_in (or 300). The registry allows
        # 60 s of clock-skew leeway, so a test that wants tokens the registry REJECTS sets this to <= -61.
        self.jwt_lifetime: Optional[int] = None
        self.private_prefix = private_prefix
        self.requests: list[TokenRequest] = []
        self._lock = threading.Lock()
        BackgroundServer.__init__(self)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "TokenServer":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                server._handle(self)

            def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._start_serving(httpd, "token-server")
        return self

    def stop(self) -> None:
        self._stop_serving()

    @property
    def port(self) -> int:
        return self._bound_port("token server")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def realm(self) -> str:
        return f"{self.url}/token"

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def snapshot(self) -> list[TokenRequest]:
        with self._lock:
            return list(self.requests)

    # -- tokens ----------------------------------------------------------------------------------
    def make_token(self, subject: str, access: list[dict], lifetime: Optional[int] = None) -> str:
        """Sign an RS256 JWT the registry's `auth.token` config accepts (x5c chains to rootcertbundle)."""
        now = int(time.time())
        if lifetime is None:
            lifetime = self.jwt_lifetime if self.jwt_lifetime is not None else (self.expires_in or 300)
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.cert_der_b64]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + lifetime,
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "."
                         + b64url(json.dumps(claims, separators=(",", ":")).encode()))
        sig = rs256_sign(self.signing_key, signing_input.encode("ascii"))
        return signing_input + "." + b64url(sig)

    def _check_basic(self, header: Optional[str]) -> tuple[Optional[str], bool]:
        """-> (user name sent or None, credentials valid)."""
        if not header or not header.lower().startswith("basic "):
            return None, False
        try:
            user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", False
        return user, self.users.get(user) == password and user in self.users

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        auth = h.headers.get("Authorization")
        user, valid = self._check_basic(auth)
        record = TokenRequest(path=parts.path, query=query, has_authorization=auth is not None,
                              user=user, scopes=list(query.get("scope", [])))
        with self._lock:
            self.requests.append(record)

        def reply(status: int, body: dict, extra: Optional[dict[str, str]] = None) -> None:
            record.status = status
            data = json.dumps(body).encode()
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)

        if parts.path != "/token":
            reply(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
            return
        if auth is not None and not valid:
            reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}],
                        "details": "incorrect username or password"},
                  {"WWW-Authenticate": 'Basic realm="hocker-test-token"'})
            return
        service = query.get("service", [""])[0]
        if service and service != self.service:
            reply(400, {"errors": [{"code": "DENIED", "message": f"unknown service {service!r}"}]})
            return
        access = []
        for typ, name, actions in parse_scopes(query.get("scope", [])):
            if valid:
                granted = actions
            elif typ == "repository" and not name.startswith(self.private_prefix):
                granted = [a for a in actions if a == "pull"]
            else:
                granted = []
            if granted:
                access.append({"type": typ, "name": name, "actions": granted})
        token = self.make_token(user if valid else "", access)
        body: dict = {"token": token, "access_token": token,
                      "issued_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        reply(200, body)
