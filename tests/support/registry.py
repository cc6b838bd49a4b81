"""Run the reference registry (CNCF distribution 2.8, `/usr/bin/docker-registry`) as a real process.

Why real: its content negotiation, auth challenges, digests and Range handling are what clients meet
in the wild; a mock would only repeat our own assumptions. Three modes:
 * `plain`: http, no auth;
 * `basic`: https with a CA-signed cert and bcrypt htpasswd (clients must trust `ca_file`);
 * `token`: http registry + http token server (see tokenserver.py), the Docker Hub flow.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Optional

import requests

from .background import stop_process
from .pki import Pki
from .tokenserver import TokenServer

REGISTRY_BIN = "/usr/bin/docker-registry"
MODES = ("plain", "basic", "token")


def free_port() -> int:
    """A port that was free a moment ago (the registry binds it itself, so there is a tiny race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RegistryError(RuntimeError):
    pass


class RegistryServer:
    """One registry process with its own storage, config, log file and (token mode) token server.

    Attributes used by tests: url, host, scheme, mode, ca_file, username, password, token_server,
    images (filled by the seeding fixture), authfile, cert_dir, log_file, root.
    """

    def __init__(self, root: Path, mode: str = "plain", pki: Optional[Pki] = None,
                 username: str = "hocker-user", password: Optional[str] = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if mode == "basic" and pki is None:
            raise ValueError("basic mode needs a Pki (TLS certificate)")
        if mode == "token" and pki is None:
            raise ValueError("token mode needs a Pki (token signing key)")
        self.root = Path(root)
        self.mode = mode
        self.pki = pki
        self.scheme = "https" if mode == "basic" else "http"
        self.username: Optional[str] = username if mode != "plain" else None
        self.password: Optional[str] = (password or f"pw-{secrets.token_hex(8)}") if mode != "plain" else None
        self.ca_file: Optional[str] = str(pki.ca_cert) if (mode == "basic" and pki) else None
        self.token_server: Optional[TokenServer] = None
        self.images: dict[str, Any] = {}
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.log_file = self.root / "registry.log"
        self.config_file = self.root / "config.yml"
        self.storage = self.root / "storage"
        self.cert_dir: Optional[str] = None   # for skopeo --cert-dir (holds ca.crt)
        self.authfile: Optional[str] = None   # containers auth.json with our credentials
        self._log_handle = None

    # -- derived addresses -----------------------------------------------------------------------
    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    @property
    def verify(self) -> Any:
        """What to pass as requests' `verify=` (a CA path for TLS, False is never needed)."""
        return self.ca_file if self.ca_file else True

    # -- lifecycle -------------------------------------------------------------------------------
    def _write_files(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.storage.mkdir(exist_ok=True)
        lines = [
            "version: 0.1",
            "log:",
            "  level: info",
            "  formatter: text",
            "storage:",
            "  filesystem:",
            f"    rootdirectory: {self.storage}",
            "  delete:",
            "    enabled: true",
            "  maintenance:",
            "    uploadpurging:",
            "      enabled: false",
            "http:",
            f"  addr: 127.0.0.1:{self.port}",
            f"  secret: {secrets.token_hex(16)}",
            "  headers:",
            "    X-Content-Type-Options: [nosniff]",
        ]
        if self.mode == "basic":
            assert self.pki is not None
            lines += ["  tls:",
                      f"    certificate: {self.pki.server_cert}",
                      f"    key: {self.pki.server_key}"]
            htpasswd = self.root / "htpasswd"
            subprocess.run(["htpasswd", "-Bbc", str(htpasswd), self.username, self.password],
                           check=True, capture_output=True)
            lines += ["auth:", "  htpasswd:", "    realm: hocker-test-basic", f"    path: {htpasswd}"]
        elif self.mode == "token":
            assert self.token_server is not None
            lines += ["auth:", "  token:",
                      f"    realm: {self.token_server.realm}",
                      f"    service: {self.token_server.service}",
                      f"    issuer: {self.token_server.issuer}",
                      f"    rootcertbundle: {self.pki.token_cert}"]  # type: ignore[union-attr]
        self.config_file.write_text("\n".join(lines) + "\n")
        # skopeo side: cert dir with ca.crt, and an auth.json (keeps creds off command lines).
        if self.ca_file:
            cd = self.root / "certs.d"
            cd.mkdir(exist_ok=True)
            shutil.copy(self.ca_file, cd / "ca.crt")
            self.cert_dir = str(cd)
        if self.username:
            auth = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            af = self.root / "auth.json"
            af.write_text(json.dumps({"auths": {self.host: {"auth": auth}}}))
            os.chmod(af, 0o600)
            self.authfile = str(af)

    def start(self, timeout: float = 15.0) -> "RegistryServer":
        """Start (token server first in token mode) and wait until `GET /v2/` answers 200 or 401."""
        if self.mode == "token" and self.token_server is None:
            assert self.pki is not None
            self.token_server = TokenServer(self.pki.token_key, self.pki.token_cert_der_b64,
                                            users={self.username: self.password}).start()  # type: ignore[dict-item]
        last_err: Optional[BaseException] = None
        for _attempt in range(3):  # retry on the free-port race
            self.port = free_port()
            self._write_files()
            self._log_handle = open(self.log_file, "ab")
            self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.config_file)],
                                         stdout=self._log_handle, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.root)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    last_err = RegistryError(f"registry exited with {self.proc.returncode}; "
                                             f"log: {self.log_tail()}")
                    break
                try:
                    r = requests.get(f"{self.url}/v2/", verify=self.verify, timeout=1)
                    if r.status_code in (200, 401):
                        return self
                except requests.RequestException as e:
                    last_err = e
                time.sleep(0.03)
            else:
                self.stop()
                raise RegistryError(f"registry did not answer within {timeout}s: {last_err}; "
                                    f"log: {self.log_tail()}")
            self._close_log()
        self.stop()
        raise RegistryError(f"registry failed to start: {last_err}")

    def _close_log(self) -> None:
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate our own process handle, kill it if it lingers; then stop the token server."""
        if self.proc is not None:
            stop_process(self.proc, timeout)
        self.proc = None
        self._close_log()
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def __enter__(self) -> "RegistryServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"RegistryServer(mode={self.mode!r}, url={self.url!r})"

    # -- direct HTTP access for the test helpers (NOT the code under test) ----------------------
    def session_auth(self, scope: Optional[str]) -> dict[str, str]:
        """Authorization header our own fixtures use: Basic in basic mode, a fresh token in token mode."""
        if self.mode == "basic":
            raw = f"{self.username}:{self.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        if self.mode == "token":
            assert self.token_server is not None
            params: dict[str, Any] = {"service": self.token_server.service}
            if scope:
                params["scope"] = scope
            r = requests.get(self.token_server.realm, params=params,
                             auth=(self.username, self.password), timeout=10)  # type: ignore[arg-type]
            r.raise_for_status()
            return {"Authorization": "Bearer " + r.json()["token"]}
        return {}

    def http(self, method: str, path: str, repo: Optional[str] = None, actions: str = "pull",
             **kw: Any) -> requests.Response:
        """One authenticated request to the registry (path starts with /v2/)."""
        headers = dict(kw.pop("headers", {}) or {})
        headers.update(self.session_auth(f"repository:{repo}:{actions}" if repo else None))
        kw.setdefault("timeout", 30)
        return requests.request(method, self.url + path, headers=headers, verify=self.verify, **kw)


class ProxyRegistryServer(RegistryServer):
    """The reference registry as a pull-through cache (distribution's `proxy: remoteurl:`) of `remote_url`.

    What users run as a Docker Hub mirror: it answers from its own storage and fetches what it lacks from
    the remote (which then shows that GET in its own access log). Plain http, no auth, read-only.
    """

    def __init__(self, root: Path, remote_url: str) -> None:
        super().__init__(root, "plain")
        self.remote_url = remote_url

    def _write_files(self) -> None:
        super()._write_files()
        with open(self.config_file, "a") as f:
            f.write(f"proxy:\n  remoteurl: {self.remote_url}\n")


ACCESS_LINE = r'"(GET|HEAD) (\S+) HTTP/[\d.]+" (\d{3})'


def access_log(reg: RegistryServer, mark: int = 0) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request in `reg`'s access log since byte offset `mark`."""
    import re

    text = reg.log_file.read_bytes()[mark:].decode(errors="replace")
    return [(m.group(1), m.group(2), int(m.group(3))) for m in re.finditer(ACCESS_LINE, text)]
