"""The fronts of fronts.py started for a test module, with each registry's documented login in a docker config.

Why one docker config for all of them: that is how a user who logged in to ten registries looks (one entry per
host), so every tool must pick the right login per host; decoy entries for the blob hosts hold secrets that no
request may carry (a login is for its own host only).

Fixture (import it into a test module): `fronts` (module scope) -> Fronts, every profile of PROFILES started in
front of the session's plain registry, stopped at the end of the module.
"""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from .clitools import clean_env, tool
from .fronts import PROFILES, Front, FrontTls, front_tls

IMAGE = "library/hello:oci"


def ecr_password() -> str:
    """The shape of `aws ecr get-login-password`: base64 of a JSON envelope, about 2.4 KB, no newline."""
    envelope = {"payload": base64.b64encode(secrets.token_bytes(1100)).decode(),
                "datakey": base64.b64encode(secrets.token_bytes(180)).decode(),
                "version": "2", "type": "DATA_KEY", "expiration": 1796000000}
    return base64.b64encode(json.dumps(envelope).encode()).decode()


def json_key() -> str:
    """A Google service account key as `gcloud iam service-accounts keys create` writes it: many lines."""
    pem = "\n".join(base64.b64encode(secrets.token_bytes(48)).decode() for _ in range(20))
    key = {"type": "service_account", "project_id": "hocker-test", "private_key_id": secrets.token_hex(20),
           "private_key": f"-----BEGIN PRIVATE KEY-----\n{pem}\n-----END PRIVATE KEY-----\n",
           "client_email": "puller@hocker-test.iam.gserviceaccount.com", "client_id": "1" * 21,
           "auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": "https://oauth2.googleapis.com/token",
           "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
           "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/puller",
           "universe_domain": "googleapis.com"}
    return json.dumps(key, indent=2)  # key.json ends with a newline; docker login strips it from stdin


@dataclass
class Login:
    user: str
    password: str                # "" when the login is an identity token (ACR)
    identity_token: str = ""

    def docker_config_entry(self) -> dict[str, str]:
        entry = {"auth": base64.b64encode(f"{self.user}:{self.password}".encode()).decode()}
        if self.identity_token:
            entry["identitytoken"] = self.identity_token
        return entry

    def env(self) -> dict[str, str]:
        """DOCKER_USER/DOCKER_PASS (what the Nix builders read)."""
        return {"DOCKER_USER": self.user, "DOCKER_PASS": self.password}


def login_for(front: Front) -> Login:
    """The documented login of `front`'s registry, registered with the front."""
    name, user = front.profile.name, front.profile.users[0]
    if name == "acr":
        token = f"acr-refresh-{secrets.token_urlsafe(32)}"
        front.add_refresh_token(token, user)
        return Login(user, "", token)
    password = {"ecr": ecr_password, "gar": json_key}.get(name, lambda: f"pw-{secrets.token_hex(12)}")()
    front.add_user(user, password)
    return Login(user, password)


@dataclass
class Fronts:
    fronts: dict[str, Front]
    logins: dict[str, Login]
    home: Path                     # HOME with .docker/config.json (every login, plus the decoys)
    tls: FrontTls
    upstream: Any                  # the plain RegistryServer behind every front
    decoys: tuple[str, ...] = ()
    work: Path = field(default_factory=Path)

    @property
    def ca_file(self) -> str:
        return self.tls.ca_file

    def ref(self, name: str, image: str = IMAGE) -> str:
        return f"{self.fronts[name].host}/{image}"

    def env(self, **extra: str) -> dict[str, str]:
        extra.setdefault("HOME", str(self.home))
        return clean_env(**extra)

    def run(self, prog: str, *args: str, env: Optional[dict[str, str]] = None, input: Optional[bytes] = None,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([tool(prog), *args], capture_output=True, env=env or self.env(), input=input,
                              timeout=timeout, stdin=None if input is not None else subprocess.DEVNULL)


def write_docker_config(home: Path, entries: dict[str, dict[str, str]]) -> None:
    d = home / ".docker"
    d.mkdir(parents=True, exist_ok=True)
    (d / "config.json").write_text(json.dumps({"auths": entries}, indent=1))
    os.chmod(d / "config.json", 0o600)


def start_fronts(upstream: Any, tls: FrontTls, work: Path) -> Fronts:
    started: dict[str, Front] = {}
    try:
        for name, profile in PROFILES.items():
            started[name] = Front(profile, upstream.url, tls).start()
    except BaseException:
        for f in started.values():
            f.stop()
        raise
    logins = {name: login_for(front) for name, front in started.items()}
    entries = {front.host: logins[name].docker_config_entry() for name, front in started.items()}
    decoys = []
    for front in started.values():
        if "blob" in front._servers:  # a login "for the CDN": it must never be sent anywhere
            decoy = f"decoy-{secrets.token_hex(10)}"
            decoys.append(decoy)
            entries[front.netloc("blob")] = {"auth": base64.b64encode(f"cdn-user:{decoy}".encode()).decode()}
    home = work / "home"
    write_docker_config(home, entries)
    return Fronts(started, logins, home, tls, upstream, tuple(decoys), work)


@pytest.fixture(scope="module")
def fronts(plain_registry: Any, test_pki: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fronts]:
    work = tmp_path_factory.mktemp("fronts")
    fr = start_fronts(plain_registry, front_tls(test_pki, work / "tls"), work)
    try:
        yield fr
    finally:
        for front in fr.fronts.values():
            front.stop()
