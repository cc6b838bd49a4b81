"""Registry authentication: which credentials to present, and how (challenges, Bearer tokens per scope, Basic).

Works the way docker and the distribution spec do, for any registry: answer a 401 by reading its challenge,
fetch a token from the realm it names (anonymously or with the user's credentials), cache it per scope until
it expires, and get a fresh one once on `insufficient_scope` or `invalid_token`.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional
from urllib.parse import urlsplit

import requests

from .credentials import Credentials, from_environment, nix_build_hint, parse_credentials_file, user_password
from .errors import AuthError, RegistryError, UsageError
from .transport import check_transport

_TOKEN = re.compile(r"[\s,]*([A-Za-z0-9_.!#$%&'*+^`|~-]+)")
_VALUE = re.compile(r'\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
DEFAULT_TOKEN_LIFETIME = 60.0  # seconds, per the token spec when expires_in is absent


def resolve_credentials(
    *,
    username: str | None,
    password: str | None,
    token: str | None,
    credentials_file: str | None,
    registry_host: str,
    env: Mapping[str, str],
) -> Credentials | None:
    """Pick the credentials to use, strongest source first; None means pull anonymously.

    Order: `--token`; `--username` + `--password`; `--credentials-file`; the environment
    (`DOCKER_TOKEN`, `DOCKER_USER`/`DOCKER_PASS`); docker/podman config. Explicit options are checked
    even when a stronger one wins (`--username` without `--password` is always a UsageError, an empty
    `--token` too): a half-given option is a mistake worth reporting, not something to paper over.
    Weaker sources are only consulted (helpers only run) when every stronger one is absent.
    """
    if token is not None and token == "":
        raise UsageError("--token is empty")
    if username is not None and username == "":
        raise UsageError("--username is empty")
    if password is not None and password == "":
        raise UsageError("--password is empty")
    pair = user_password(username, password, user_name="--username", pass_name="--password", where="command line")
    if credentials_file is not None and credentials_file == "":
        raise UsageError("--credentials-file is empty")

    if token:
        return Credentials(token=token, source="--token")
    if pair:
        return Credentials(username=pair[0], password=pair[1], source="--username")
    if credentials_file:
        return parse_credentials_file(credentials_file)
    found = from_environment(env)
    if found is not None:
        return found
    from .dockerconfig import from_docker_config  # the weakest source: only read when all others are absent

    return from_docker_config(registry_host, env)


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower-case: "bearer" or "basic"
    params: dict[str, str]


def parse_challenges(header: str) -> list[Challenge]:
    """Parse `Bearer realm="..",service="..",scope=".."`, also several challenges in one header.

    A token followed by `=` is a parameter of the current challenge; any other token starts a new one.
    """
    challenges: list[Challenge] = []
    pos = 0
    text = header or ""
    while True:
        name = _TOKEN.match(text, pos)
        if not name:
            break
        pos = name.end()
        value = _VALUE.match(text, pos)
        if value and challenges:
            quoted, bare = value.group(1), value.group(2)
            raw = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
            challenges[-1].params[name.group(1).lower()] = raw
            pos = value.end()
        elif value:
            pos = value.end()  # a parameter before any scheme: ignore it
        else:
            challenges.append(Challenge(name.group(1).lower(), {}))
    return challenges


@dataclass
class _Token:
    value: str
    expires_at: float


class RegistryAuth:
    """Authorization headers for one registry, learned from its challenges; thread-safe."""

    def __init__(self, send: Callable[..., requests.Response], credentials: Optional[Credentials], *,
                 insecure: bool, clock: Callable[[], float] = time.monotonic):
        """`send(method, url, what=..., **requests_kwargs)` performs one HTTP exchange with retries."""
        self.send = send
        self.credentials = credentials
        self.insecure = insecure
        self.clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, _Token] = {}
        self._challenge: Optional[Challenge] = None

    def header(self, url: str, scope: str) -> Optional[str]:
        """The Authorization value to send for `scope` now, or None (anonymous until challenged)."""
        creds = self.credentials
        with self._lock:
            challenge = self._challenge
            token = self._tokens.get(scope)
        if creds is not None and creds.token:
            return f"Bearer {creds.token}"
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return self._basic(url) if creds is not None and creds.username else None
        if token is not None and token.expires_at > self.clock():
            return f"Bearer {token.value}"
        return f"Bearer {self._fetch_token(challenge, scope)}"

    def on_unauthorized(self, response: requests.Response, scope: str, sent: Optional[str]) -> None:
        """Learn from a 401 (the challenge, a stale token); raise when retrying cannot help.

        The caller retries a bounded number of times, so a token refused twice ends in AuthError there.
        """
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        chosen = (next((c for c in challenges if c.scheme == "bearer"), None)
                  or next((c for c in challenges if c.scheme == "basic"), None))
        creds = self.credentials
        where = urlsplit(response.url).netloc
        if creds is not None and creds.token:
            raise AuthError(f"the registry {where} rejected the given token (expired, or no pull access?)")
        if chosen is None:
            raise AuthError(f"the registry {where} answered 401 without a usable WWW-Authenticate challenge")
        with self._lock:
            self._challenge = chosen
            self._tokens.pop(scope, None)
        if chosen.scheme == "basic":
            if creds is None or not creds.username:
                raise AuthError(f"the registry {where} requires a username and password "
                                "(-u/-p, -f FILE, DOCKER_USER/DOCKER_PASS, or docker login)" + nix_build_hint())
            if sent is not None and sent.startswith("Basic "):
                raise AuthError(f"the registry {where} rejected the password of user {creds.username!r} "
                                f"(from {creds.source or 'the command line'})")

    def _basic(self, url: str) -> str:
        creds = self.credentials
        assert creds is not None and creds.username is not None
        check_transport(url, self.insecure)
        raw = f"{creds.username}:{creds.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise AuthError("the registry's Bearer challenge names no realm to get a token from")
        params: dict[str, str] = {}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        params["scope"] = scope
        creds = self.credentials
        server = urlsplit(realm).netloc
        what = f"token request to {server}"
        if creds is not None and creds.identity_token:
            check_transport(realm, self.insecure)
            resp = self.send("POST", realm, what=what, data={
                "grant_type": "refresh_token", "refresh_token": creds.identity_token,
                "client_id": "hocker-fetch", **params})
        else:
            headers = {}
            if creds is not None and creds.username:
                check_transport(realm, self.insecure)
                headers["Authorization"] = self._basic(realm)
            resp = self.send("GET", realm, what=what, params=params, headers=headers)
        who = f"user {creds.username!r}" if creds is not None and creds.username else "anonymous access"
        if resp.status_code in (401, 403):
            raise AuthError(f"the token server {server} refused {who}"
                            + (" (wrong username or password?)" if creds is not None and creds.username else ""))
        if resp.status_code != 200:
            raise RegistryError(f"the token server {server} answered HTTP {resp.status_code}")
        try:
            body = resp.json()
            value = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError, RecursionError):
            value, lifetime = None, 0.0
        if not isinstance(value, str) or not value:
            raise AuthError(f"the token server {server} sent no token")
        with self._lock:
            # renew a little early so a long download does not start with a token about to lapse
            self._tokens[scope] = _Token(value, self.clock() + max(lifetime - 5.0, 1.0))
        return value

