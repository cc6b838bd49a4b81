"""test_faults.py's faults under a Nix fixed-output build: FaultProxy between the builder and the registry.

The expression docker2nix writes names the proxy as its registry, so every fixed-output builder (hocker-layer /
hocker-config, run by Nix 2.8 in a throw-away store) fetches through it. Every test gets its own empty store,
so the builders really run. The promise:
  * a corrupted or failed fetch ends in a failed build whose log carries the tool's one-line message (and
    its exit code), never Nix's "hash mismatch" (the tool refused first), and never a store path for the blob;
  * a transient fault (a cut connection that resumes with Range, a 503, a 429 with Retry-After, a wrong
    Docker-Content-Digest) still builds, with exactly the registry's bytes.
"""
from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.faultproxy import BLOB, FaultProxy, blob_path
from support.nixenv import Nix, docker2nix, file_sha

REPO, TAG = "library/hello", "oci"


@pytest.fixture
def store(tmp_path: Path) -> Nix:
    if shutil.which("nix-build") is None:
        pytest.fail("nix-build is missing: run scripts/setup-deps", pytrace=False)
    return Nix(tmp_path / "nix")



@pytest.fixture(scope="module")
def hello(plain_registry):
    return plain_registry.images[f"{REPO}:{TAG}"].single



def expression(proxy: FaultProxy, tmp_path: Path) -> Path:
    return docker2nix(SimpleNamespace(url=proxy.url), f"{REPO}:{TAG}", tmp_path / "hello.nix")


def store_paths_for(store: Nix, digest: str) -> list[Path]:
    hexd = digest.split(":", 1)[1]
    return [p for p in store.store.iterdir() if hexd in p.name and not p.name.endswith((".drv", ".lock"))] \
        if store.store.exists() else []


def assert_failed_with_tool_message(proc, prog: str, code: int, digest: str, message: str) -> None:
    log = proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert f"failed with exit code {code}" in log, log[-3000:]
    lines = [line for line in log.splitlines() if f"{prog}: " in line]
    assert lines, log[-3000:]
    assert any(digest in line and re.search(message, line) for line in lines), lines
    assert "Traceback" not in log
    assert "hash mismatch" not in log  # the tool refused the bytes; Nix never had to


@pytest.mark.parametrize("fault", ["flip", "extra", "short-consistent"])
def test_corrupted_layer_fails_the_build(store: Nix, proxy: FaultProxy, hello, tmp_path: Path, fault: str) -> None:
    digest = hello.layers[0][0]
    rule = proxy.on("GET", blob_path(digest))
    if fault == "flip":
        rule.flip(offset=200_000)
    elif fault == "extra":
        rule.extra(b"appended by a proxy")
    else:
        rule.short(missing=4096, consistent=True)
    expr = expression(proxy, tmp_path)
    proc = store.build(expr, attr="imageLayers", check=False)
    assert_failed_with_tool_message(proc, "hocker-layer", 5, digest, "content has digest|more than|bytes")
    assert store_paths_for(store, digest) == []
    assert proxy.requests("GET", blob_path(digest))  # the builder really went through the proxy


def test_corrupted_config_fails_the_build(store: Nix, proxy: FaultProxy, hello, tmp_path: Path) -> None:
    proxy.on("GET", blob_path(hello.config_digest)).flip(offset=5)
    expr = expression(proxy, tmp_path)
    proc = store.build(expr, attr="imageConfig", check=False)
    assert_failed_with_tool_message(proc, "hocker-layer", 5, hello.config_digest, "content has digest")
    assert store_paths_for(store, hello.config_digest) == []
    # and so does the whole image: no compositeImage.sh store path either
    proc = store.build(expr, check=False)
    assert proc.returncode != 0
    assert not [p for p in store.store.iterdir() if p.name.endswith("-hello") and not p.name.endswith(".drv")]


def test_permanent_500_fails_the_build_after_bounded_retries(store: Nix, proxy: FaultProxy, hello,
                                                            tmp_path: Path) -> None:
    digest = hello.layers[1][0]
    proxy.on("GET", blob_path(digest)).status(500)
    expr = expression(proxy, tmp_path)
    proc = store.build(expr, attr="imageLayers", check=False)
    assert_failed_with_tool_message(proc, "hocker-layer", 6, digest, r"HTTP 500.*gave up after 5 retries")
    assert len(proxy.requests("GET", blob_path(digest))) == 6  # the default --retries 5, then it stops
    assert store_paths_for(store, digest) == []


@pytest.mark.parametrize("fault", ["cut", "cut-range-ignored", "503", "429", "wrong-content-digest"])
def test_transient_fault_still_builds_the_right_bytes(store: Nix, proxy: FaultProxy, hello, tmp_path: Path,
                                                     fault: str) -> None:
    digest = hello.layers[0][0]
    if fault == "cut":
        proxy.on("GET", blob_path(digest), times=1).cut(after=100_000)
    elif fault == "cut-range-ignored":
        proxy.on("GET", blob_path(digest), times=1).cut(after=100_000)
        proxy.on("GET", blob_path(digest)).ignore_range()
    elif fault == "503":
        proxy.on("GET", blob_path(digest), times=2).status(503)
    elif fault == "429":
        proxy.on("GET", blob_path(digest), times=1).status(429, retry_after=1)
    else:
        proxy.on("GET", BLOB).header("Docker-Content-Digest", "sha256:" + "0" * 64)
    expr = expression(proxy, tmp_path)
    paths = store.build_paths(expr, attr="imageLayers")
    assert [file_sha(p) for p in paths] == [d for d, _, _ in hello.layers]
    gets = proxy.requests("GET", blob_path(digest))
    if fault == "cut":
        assert [(e.range, e.status) for e in gets] == [(None, 200), ("bytes=100000-", 206)]
    elif fault == "cut-range-ignored":
        assert [(e.range, e.status) for e in gets] == [(None, 200), ("bytes=100000-", 200)]
    elif fault in ("503", "429"):
        assert [e.status for e in gets][-1] == 200 and len(gets) >= 2
    # the whole image from those layers loads with the right config
    [config] = store.build_paths(expr, attr="imageConfig")
    assert Path(config).read_bytes() == hello.config_bytes
    assert hashlib.sha256(Path(config).read_bytes()).hexdigest() == hello.config_digest[7:]
