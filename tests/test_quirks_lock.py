"""Issue 17: hocker-lock add/update/check through every registry front, and one Nix build through the fixed-output
fetchers behind the most hostile front (ECR: Basic with a 2.4 KB password, blobs on an S3 that answers 400 to any
Authorization header).

Lock runs of different fronts are independent and run at once (each front's add, update and check in order);
the Nix build is one, not one per registry (the fetchers' transport is the CLI's, tested per front above).
"""
from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.front_setup import IMAGE, Fronts, fronts  # noqa: F401 (fixture)
from support.fronts import PROFILES, credential_violations
from support.nixenv import Nix, nix, skopeo_config_digest, stream_image  # noqa: F401 (fixture)

NAMES = list(PROFILES)
STEPS = ("add", "update", "check")


class Locks:
    """hocker-lock add, update, check with one lock file per front; every front at once, the first time asked."""

    def __init__(self, fr: Fronts, work: Path) -> None:
        self.fr = fr
        self.work = work
        self.done: dict[str, list[subprocess.CompletedProcess]] = {}

    def file(self, name: str) -> Path:
        return self.work / f"{name}.lock.json"

    def _one(self, name: str) -> list[subprocess.CompletedProcess]:
        ca = ["--ca-file", self.fr.ca_file]
        lock = ["--file", str(self.file(name))]
        out = [self.fr.run("hocker-lock", *lock, "add", *ca, "--name", "hello", self.fr.ref(name))]
        if out[0].returncode == 0:
            out.append(self.fr.run("hocker-lock", *lock, "update", "--json", *ca))
            out.append(self.fr.run("hocker-lock", *lock, "check", "--json", *ca))
        return out

    def results(self, name: str) -> list[subprocess.CompletedProcess]:
        if not self.done:
            with ThreadPoolExecutor(6) as pool:
                self.done = dict(zip(NAMES, pool.map(self._one, NAMES)))
        return self.done[name]


@pytest.fixture(scope="module")
def locks(fronts: Fronts, tmp_path_factory: pytest.TempPathFactory) -> Locks:  # noqa: F811
    return Locks(fronts, tmp_path_factory.mktemp("locks"))


@pytest.mark.parametrize("name", NAMES)
def test_lock_add_update_check_through_the_front(locks: Locks, fronts: Fronts, name: str) -> None:  # noqa: F811
    procs = locks.results(name)
    for step, proc in zip(STEPS, procs):
        assert proc.returncode == 0, f"{step}: {proc.stderr.decode(errors='replace')}"
    assert len(procs) == 3
    text = locks.file(name).read_text()
    top = fronts.upstream.images[IMAGE]
    info = top.single
    assert top.digest in text and info.config_digest in text
    assert fronts.fronts[name].host in text
    for step, proc in zip(STEPS[1:], procs[1:]):
        report = json.loads(proc.stdout)
        assert report["moved"] == [] and report["unchanged"] == ["hello"], (step, report)
    assert credential_violations(fronts.fronts[name], fronts.decoys) == []


def test_nix_build_through_the_ecr_front(nix: Nix, fronts: Fronts, tmp_path: Path) -> None:  # noqa: F811
    """docker2nix pins through the front; the fixed-output fetchers then fetch config and layers with
    DOCKER_USER=AWS and the 2.4 KB password, every blob from the S3 host (which would answer 400 to an
    Authorization header), and the image streams with the registry's config. No secret in any .drv."""
    front, login = fronts.fronts["ecr"], fronts.logins["ecr"]
    info = fronts.upstream.images[IMAGE].single
    expr = tmp_path / "hello.nix"
    gen = fronts.run("docker2nix", "--ca-file", fronts.ca_file, "--out", str(expr), fronts.ref("ecr"))
    assert gen.returncode == 0, gen.stderr
    front.clear()
    [result] = nix.build_paths(expr, env={**login.env(), "NIX_SSL_CERT_FILE": fronts.ca_file})
    archive = stream_image(result, tmp_path / "hello.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    blob_gets = [s for s in front.requests("blob") if s.method == "GET"]
    wanted = {info.config_digest, *(d for d, _t, _s in info.layers)}
    assert len(blob_gets) >= len(wanted) and all(s.status == 200 for s in blob_gets), blob_gets
    assert credential_violations(front, fronts.decoys) == []
    for drv in nix.store.glob("*.drv"):
        assert login.password.encode() not in drv.read_bytes(), drv
