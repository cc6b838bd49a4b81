"""Issue 17: every pulling tool through every registry front gives the reference registry's exact bytes, and sends
no credential to a host it was not meant for.

The fronts (support/fronts.py) reproduce Docker Hub, GHCR, Quay, ECR, GAR, ACR, Harbor, GitLab, Nexus, Artifactory
and three token-server quirks in front of the session's plain registry; each tool logs in with the registry's
documented login from one docker config (support/front_setup.py). The tools of one front run at once (the
machine is slow, the runs are independent), the first test of a front starts them, the others read the results.
The expected bytes come from the registry itself (skopeo inspect --raw at seeding, blob GETs of our own).
"""
from __future__ import annotations

import hashlib
import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest
from support.front_setup import IMAGE, Fronts, fronts  # noqa: F401 (fixture)
from support.fronts import PROFILES, credential_violations

NAMES = list(PROFILES)
TOOLS = ("manifest", "digest", "config", "layer", "image", "docker2nix")


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Pulls:
    """Runs every tool of TOOLS through one front (all at once) the first time the front is asked for."""

    def __init__(self, fr: Fronts, work: Path) -> None:
        self.fr = fr
        self.work = work
        self.done: dict[str, dict[str, subprocess.CompletedProcess]] = {}

    def commands(self, name: str) -> dict[str, list[str]]:
        fr, out = self.fr, self.work / name
        out.mkdir(exist_ok=True)
        ref, ca = fr.ref(name), ["--ca-file", fr.ca_file]
        layer = self.info.layers[0][0]
        return {
            "manifest": ["hocker-manifest", *ca, ref],
            "digest": ["hocker-manifest", "--digest", *ca, ref],
            "config": ["hocker-config", *ca, ref],
            "layer": ["hocker-layer", *ca, "--layer", layer, "--out", str(out / "layer"), ref],
            "image": ["hocker-image", *ca, "--format", "oci", "--out", str(out / "oci"), ref],
            "docker2nix": ["docker2nix", *ca, "--json", ref],
        }

    @property
    def info(self) -> Any:
        return self.fr.upstream.images[IMAGE].single

    def result(self, name: str, tool: str) -> subprocess.CompletedProcess:
        if name not in self.done:
            cmds = self.commands(name)
            with ThreadPoolExecutor(len(cmds)) as pool:
                futures = {t: pool.submit(self.fr.run, c[0], *c[1:]) for t, c in cmds.items()}
                self.done[name] = {t: f.result() for t, f in futures.items()}
        return self.done[name][tool]


@pytest.fixture(scope="module")
def pulls(fronts: Fronts, tmp_path_factory: pytest.TempPathFactory) -> Pulls:  # noqa: F811
    return Pulls(fronts, tmp_path_factory.mktemp("pulls"))


def _ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def check_manifest(p: Pulls, name: str, proc: subprocess.CompletedProcess) -> None:
    top = p.fr.upstream.images[IMAGE]
    assert proc.stdout == top.raw


def check_digest(p: Pulls, name: str, proc: subprocess.CompletedProcess) -> None:
    assert proc.stdout.decode().strip() == p.fr.upstream.images[IMAGE].digest


def check_config(p: Pulls, name: str, proc: subprocess.CompletedProcess) -> None:
    assert proc.stdout == p.info.config_bytes


def check_layer(p: Pulls, name: str, proc: subprocess.CompletedProcess, blob: Callable[..., bytes]) -> None:
    digest = p.info.layers[0][0]
    assert (p.work / name / "layer").read_bytes() == blob(p.fr.upstream, IMAGE.split(":")[0], digest)


def check_image(p: Pulls, name: str, proc: subprocess.CompletedProcess, blob: Callable[..., bytes]) -> None:
    blobs = p.work / name / "oci" / "blobs" / "sha256"
    top = p.fr.upstream.images[IMAGE]
    assert (blobs / top.digest[7:]).read_bytes() == top.raw
    for digest, _type, _size in p.info.layers:
        assert (blobs / digest[7:]).read_bytes() == blob(p.fr.upstream, IMAGE.split(":")[0], digest)
    assert (blobs / p.info.config_digest[7:]).read_bytes() == p.info.config_bytes


def check_docker2nix(p: Pulls, name: str, proc: subprocess.CompletedProcess) -> None:
    text = proc.stdout.decode()
    json.loads(text)
    for digest in [p.fr.upstream.images[IMAGE].digest, p.info.config_digest] + [d for d, _t, _s in p.info.layers]:
        assert digest in text, digest
    assert p.fr.fronts[name].host in text


@pytest.mark.parametrize("name,tool", [pytest.param(n, t, id=f"{n}-{t}")
                                       for n in NAMES for t in TOOLS])
def test_exact_bytes_through_the_front(pulls: Pulls, name: str, tool: str, blob_bytes: Callable[..., bytes]) -> None:
    proc = pulls.result(name, tool)
    _ok(proc)
    check = globals()[f"check_{tool}"]
    if tool in ("layer", "image"):
        check(pulls, name, proc, blob_bytes)
    else:
        check(pulls, name, proc)


@pytest.mark.parametrize("name", NAMES)
def test_no_credential_left_its_host(pulls: Pulls, fronts: Fronts, name: str) -> None:  # noqa: F811
    """After every tool ran through the front: the header logs hold no credential where it does not belong, the
    documented login was really used, and blobs really went through the redirect (when the registry has one)."""
    for tool in TOOLS:
        pulls.result(name, tool)
    front = fronts.fronts[name]
    assert credential_violations(front, fronts.decoys) == []
    seen = front.requests()
    if front.profile.blob_redirect:
        blob_gets = [s for s in seen if s.role == "blob" and s.method == "GET"]
        assert len(blob_gets) >= 3, "config and layers are fetched from the blob host"
        assert all(s.status in (200, 206) for s in blob_gets)
    login = fronts.logins[name]
    if front.profile.auth == "basic":
        assert any(s.role == "registry" and s.authorization and s.authorization.startswith("Basic ") for s in seen)
    elif login.identity_token:
        assert any(s.role == "auth" and s.form.get("refresh_token") == login.identity_token for s in seen)
    else:
        users = {s.authorization for s in seen if s.role == "auth" and s.authorization}
        assert users, "the token endpoint got the login"
    # a Bearer registry never gets the password itself, only tokens
    if front.profile.auth == "bearer":
        assert not [s for s in seen if s.role == "registry" and s.authorization
                    and not s.authorization.lower().startswith("bearer ")]
