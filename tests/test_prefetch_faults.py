"""Prefetch when things go wrong: nothing unverified is ever added to the Nix store, and a failed or interrupted
prefetch leaves only valid paths and no temporary files (TMPDIR is a directory of the test's own). The blobs
come through the fault proxy in front of the real registry; Nix is single-user 2.8 with a throw-away store.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from support import nixenv
from support.faultproxy import blob_path
from support.nixenv import BIN, NIX_DIR, VENV, Nix, base_env

nix = nixenv.nix  # one throw-away store for this module

FETCHERS = f'(import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }})'


def paths_of(nix: Nix, out: Path) -> list[str]:
    """The fixed-output paths of a docker2nix file: config and layers."""
    return nix.eval_json(out, "[ x.imageConfig.outPath ] ++ map (l: l.outPath) x.imageLayers")


def any_valid(nix: Nix, paths: list[str]) -> list[str]:
    return [p for p in paths if nix.run("nix-store", "--check-validity", p, check=False).returncode == 0]


def docker2nix_cmd(proxy, *extra: str) -> list[str]:
    return [str(BIN / "docker2nix"), "--registry", proxy.url, "--retries", "1", *extra, "library/hello", "oci"]


def test_a_corrupt_blob_adds_nothing(nix: Nix, proxy, plain_registry, tmp_path: Path) -> None:
    info = plain_registry.images["library/hello:oci"].single
    proxy.on("GET", blob_path(info.layers[1][0])).flip(offset=100)  # every attempt: one byte changed
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "hello.nix"
    proc = subprocess.run(docker2nix_cmd(proxy, "-q", "--prefetch", "--out", str(out)), capture_output=True, text=True,
                          env=base_env(**nix.env, TMPDIR=str(tmp)), timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 5, proc.stderr  # verification failed
    assert proc.stderr.count("\n") == 1 and info.layers[1][0] in proc.stderr, proc.stderr
    assert not out.exists()
    assert os.listdir(tmp) == []
    # the same file, written without prefetching: none of its paths is in the store
    subprocess.run(docker2nix_cmd(proxy, "--out", str(out)), check=True, capture_output=True, env=base_env(),
                   timeout=120, stdin=subprocess.DEVNULL)
    assert any_valid(nix, paths_of(nix, out)) == []


def test_sigterm_mid_prefetch_leaves_no_temp_files_and_no_path(nix: Nix, proxy, plain_registry,
                                                              tmp_path: Path) -> None:
    info = plain_registry.images["library/hello:oci"].single
    big = max(info.layers, key=lambda layer: layer[2])[0]
    rule = proxy.on("GET", blob_path(big)).stall(60, after=50_000)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    proc = subprocess.Popen(docker2nix_cmd(proxy, "--prefetch", "--timeout", "30"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=base_env(**nix.env, TMPDIR=str(tmp)),
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not (rule.hits and os.listdir(tmp)):  # the blob is streaming into the temporary directory
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err.strip().endswith("interrupted") and out == ""
    assert os.listdir(tmp) == []
    expr = tmp_path / "hello.nix"
    subprocess.run(docker2nix_cmd(proxy, "--out", str(expr)), check=True, capture_output=True, env=base_env(),
                   timeout=120, stdin=subprocess.DEVNULL)
    assert any_valid(nix, paths_of(nix, expr)) == []


def test_an_entry_for_another_system_is_skipped_with_a_note(nix: Nix, plain_registry, tmp_path: Path) -> None:
    lock = tmp_path / "images.lock.json"
    env = base_env(**nix.env)
    subprocess.run([str(BIN / "hocker-lock"), "--file", str(lock), "add", "--platform", "linux/arm64/v8",
                    f"{plain_registry.host}/library/multi:oci"], check=True, capture_output=True, env=env,
                   timeout=120, stdin=subprocess.DEVNULL)
    proc = subprocess.run([str(BIN / "hocker-lock"), "--file", str(lock), "prefetch", "-q"], capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert "multi is locked for aarch64-linux only" in proc.stderr and proc.stderr.count("\n") == 1
    proc = subprocess.run([str(BIN / "hocker-lock"), "--file", str(lock), "prefetch", "--all-platforms"],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0 and "prefetched 4 blobs" in proc.stderr, proc.stderr
    paths = json.loads(nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr",
                               f'let r = ({FETCHERS}.importDockerLockFor "aarch64-linux" {lock}).multi; '
                               "in [ r.imageConfig.outPath ] ++ map (l: l.outPath) r.imageLayers").stdout)
    assert len(any_valid(nix, paths)) == len(paths) == 3
