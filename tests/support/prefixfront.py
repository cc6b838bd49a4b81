"""A registry under a path prefix (Artifactory's repository path), made of the real registry behind a FaultProxy.

Artifactory serves each Docker repository at `https://HOST/artifactory/api/docker/<repo-key>/v2/...`: the v2 API
lives under a prefix. The front answers only there: it strips the prefix and forwards to the real registry (the
FaultProxy's rules, log and Location/realm rewriting all apply, to the stripped path); any request outside the
prefix gets 404 and is recorded in `outside`, so a client that drops the prefix fails and shows it.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler
from typing import Any

from .faultproxy import FaultProxy

PREFIX = "/artifactory/api/docker/repo-key"


class PrefixFront(FaultProxy):
    """FaultProxy on 127.0.0.1 that serves `upstream`'s API under `prefix` only."""

    def __init__(self, upstream: str, prefix: str = PREFIX, **kw: Any) -> None:
        super().__init__(upstream, **kw)
        self.prefix = prefix.rstrip("/")
        self.outside: list[str] = []  # "METHOD /path" of every request that missed the prefix
        self._outside_lock = threading.Lock()

    @property
    def registry(self) -> str:
        """The --registry URI in hocker's form: http://127.0.0.1:PORT/artifactory/api/docker/repo-key/v2/."""
        return f"{self.url}{self.prefix}/v2/"

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        if h.path.startswith(self.prefix + "/"):
            h.path = h.path[len(self.prefix):]
            super()._handle(h)
            return
        with self._outside_lock:
            self.outside.append(f"{h.command} {h.path}")
        h.send_response_only(404)
        h.send_header("Content-Length", "0")
        h.send_header("Connection", "close")
        h.end_headers()
