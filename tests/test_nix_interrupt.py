"""An interrupted nix-build leaves nothing in the store (issue 18, item 3).

Inside a Nix build `$out` is in the store directory itself, so a temporary file written beside it (atomic.py's
`.<name>.hocker-XXXX`) stayed there for good when Nix killed the builder on Ctrl-C: Nix kills its builders with
SIGKILL, no cleanup runs. The builders now write straight to `$out`, which Nix deletes after a failed build.

A FaultProxy stalls the layer mid-body, so the builder is certainly inside the blob when nix-build gets SIGINT
(as from Ctrl-C); then the store directory is searched for anything hocker left. A second build then succeeds
with the registry's bytes. Once in a single-user store without the sandbox (where the leftover was seen), once
through a real nix-daemon with build users and the sandbox (there the builder's store is a chroot that Nix
discards, so this guards against a regression rather than reproducing the bug).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from support import nixdaemon
from support.faultproxy import FaultProxy, blob_path
from support.nixdaemon import NixDaemon
from support.nixenv import Nix, base_env, docker2nix, file_sha

REPO, TAG = "library/hello", "oci"
nix_daemon = nixdaemon.nix_daemon


def leftovers(store: Path) -> list[str]:
    """Anything in the store directory (hidden names included) that a hocker builder wrote beside $out."""
    return sorted(n for n in os.listdir(store) if ".hocker-" in n) if store.exists() else []


def wait_for_body(proxy: FaultProxy, digest: str, timeout: float = 120) -> None:
    """Until the proxy has sent part of the blob's body (the builder is mid-blob)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(e.body_sent > 0 for e in proxy.requests("GET", blob_path(digest))):
            time.sleep(0.5)  # let the builder write what it got
            return
        time.sleep(0.1)
    raise AssertionError(f"the builder never started on {digest}: {proxy.log}")


def interrupt(proc: subprocess.Popen) -> str:
    """SIGINT, as Ctrl-C sends it to nix-build; returns its stderr."""
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        raise AssertionError(f"nix-build did not stop on SIGINT: {err[-2000:]}") from None
    assert proc.returncode != 0, err[-2000:]
    return err


def test_ctrl_c_during_a_layer_leaves_nothing_in_the_store(plain_registry, tmp_path: Path) -> None:
    if shutil.which("nix-build") is None:
        pytest.fail("nix-build is missing: run scripts/setup-deps", pytrace=False)
    hello = plain_registry.images[f"{REPO}:{TAG}"].single
    digest, _, size = max(hello.layers, key=lambda layer: layer[2])
    store = Nix(tmp_path / "nix")
    with FaultProxy(plain_registry.url) as proxy:
        proxy.on("GET", blob_path(digest), times=1).stall(120, after=min(size // 2, 65536))
        expr = docker2nix(SimpleNamespace(url=proxy.url), f"{REPO}:{TAG}", tmp_path / "hello.nix")
        args = ["nix-build", str(store.build_nix), "--no-out-link", "--arg", "file", str(expr), "-A", "imageLayers"]
        env = base_env(**store.env)
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                stdin=subprocess.DEVNULL)
        try:
            wait_for_body(proxy, digest)
            interrupt(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert leftovers(store.store) == []
        paths = store.build_paths(expr, attr="imageLayers")
    assert digest in [file_sha(p) for p in paths]
    assert leftovers(store.store) == []


def test_ctrl_c_under_the_daemon_leaves_nothing_in_the_store(nix_daemon: NixDaemon, plain_registry,
                                                             tmp_path: Path) -> None:
    d = nix_daemon
    hello = plain_registry.images["library/hello:v2s2"].single
    digest, _, size = max(hello.layers, key=lambda layer: layer[2])
    with FaultProxy(plain_registry.url) as proxy:
        proxy.on("GET", blob_path(digest), times=1).stall(120, after=min(size // 2, 65536))
        # an image name of its own: the daemon's store is shared by the module, this layer may be built already
        expr = docker2nix(SimpleNamespace(url=proxy.url), "library/hello:v2s2", d.work / "interrupted.nix")
        expr.chmod(0o644)
        built = [p for p in (d.store.iterdir() if d.store.exists() else ()) if digest[7:] in p.name
                 and not p.name.endswith((".drv", ".lock"))]
        if built:
            pytest.skip("the layer is already in this module's daemon store: nothing would be fetched")
        proc = d.popen_build(expr, attr="imageLayers")
        try:
            wait_for_body(proxy, digest)
            interrupt(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        time.sleep(1)  # the daemon's worker notices the closed connection and kills its builder
        assert leftovers(d.store) == []
        paths = d.build_paths(expr, attr="imageLayers")
    assert digest in [file_sha(p) for p in paths]
    assert leftovers(d.store) == []
