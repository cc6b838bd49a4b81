"""Concurrent and interrupted hocker-image runs on one --out: a complete verified image, or none.

* Two runs writing the same --out at the same time (slowed down by the fault proxy so they really overlap):
  both succeed, the result loads with skopeo with the right config digest (and manifest digest for OCI), and
  no temporary file is left beside it.
* A run killed mid-download (the fault proxy stalls a layer after 100 000 bytes, the test waits until those
  bytes have been sent and the hidden temp output exists):
    - SIGKILL: the final name holds nothing, or the previous complete file unchanged. A hidden
      `.<name>.hocker-XXXXXXXX` temp file MAY remain (nothing can run after SIGKILL): documented, and it
      never has the final name.
    - SIGTERM / SIGINT: exit 130 with one line "interrupted", the final name as before, and no temp file.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support.clitools import clean_env, tool
from support.faultproxy import FaultProxy, blob_path

REPO, TAG = "library/hello", "oci"
FORMATS = {"docker-archive": "docker-archive", "oci": "oci", "oci-archive": "oci-archive"}


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()



@pytest.fixture(scope="module")
def hello(plain_registry):
    return plain_registry.images[f"{REPO}:{TAG}"].single



def start_image(p: FaultProxy, out: Path, fmt: str, *extra: str, timeout: float = 30) -> subprocess.Popen:
    return subprocess.Popen([tool("hocker-image"), "--registry", p.url, "--platform", "linux/amd64", "-q",
                             "--format", fmt, "--timeout", str(timeout), "--retries", "3", "--out", str(out),
                             *extra, REPO, TAG],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            env=clean_env())


def skopeo_digests(fmt: str, path: Path) -> tuple[str, str]:
    """(config digest, manifest digest) of the written image, as skopeo reads it."""
    ref = f"{fmt}:{path}"
    config = subprocess.run(["skopeo", "inspect", "--raw", "--config", ref], capture_output=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert config.returncode == 0, config.stderr
    raw = subprocess.run(["skopeo", "inspect", "--raw", ref], capture_output=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert raw.returncode == 0, raw.stderr
    return sha(config.stdout), sha(raw.stdout)


def temps(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if ".hocker-" in n)


def tree_digest(path: Path) -> str:
    """sha256 over a file, or over every file of a directory (names and contents)."""
    h = hashlib.sha256()
    if path.is_dir():
        for root, _dirs, files in sorted(os.walk(path)):
            for f in sorted(files):
                p = Path(root, f)
                h.update(str(p.relative_to(path)).encode() + b"\0" + p.read_bytes())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_two_concurrent_runs_on_one_out(proxy, hello, tmp_path: Path, fmt: str) -> None:
    # both runs stall ~1 s inside the big layer, so their downloads and commits overlap
    proxy.on("GET", blob_path(hello.layers[0][0]), times=2).stall(1.0, after=100_000)
    out = tmp_path / "image"
    a = start_image(proxy, out, fmt)
    b = start_image(proxy, out, fmt)
    ra, rb = a.communicate(timeout=120), b.communicate(timeout=120)
    assert a.returncode == 0, ra[1]
    assert b.returncode == 0, rb[1]
    stalled = [e for e in proxy.requests("GET", blob_path(hello.layers[0][0])) if e.rule]
    assert len(stalled) == 2 and stalled[1].started < stalled[0].finished  # they really overlapped
    config, manifest = skopeo_digests(FORMATS[fmt], out)
    assert config == hello.config_digest
    if fmt != "docker-archive":
        assert manifest == hello.manifest_digest
    assert os.listdir(tmp_path) == ["image"]  # no temp file, no old tree left behind


def _previous_output(proxy, out: Path, fmt: str) -> str:
    """A complete earlier output at `out` (a clean run); its tree digest, to check it survives."""
    first = start_image(proxy, out, fmt)
    assert first.wait(timeout=120) == 0, first.communicate()
    return tree_digest(out)


def _wait_mid_download(p: FaultProxy, proc: subprocess.Popen, digest: str, directory: Path) -> None:
    """Until the stalled layer's first 100 000 bytes went out and the run's temp output exists."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        sent = [e for e in p.requests("GET", blob_path(digest)) if e.rule and e.body_sent >= 100_000]
        if sent and temps(directory):
            time.sleep(0.3)  # let the client write what it received
            return
        time.sleep(0.02)
    raise AssertionError("the run never got mid-download")


@pytest.mark.parametrize("previous", [False, True], ids=["no-previous", "previous-file"])
@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
def test_sigkill_mid_download(proxy, hello, tmp_path: Path, fmt: str, previous: bool) -> None:
    out = tmp_path / "image"
    before = _previous_output(proxy, out, fmt) if previous else None
    proxy.on("GET", blob_path(hello.layers[0][0])).stall(60, after=100_000)
    proc = start_image(proxy, out, fmt, timeout=60)
    _wait_mid_download(proxy, proc, hello.layers[0][0], tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    if previous:
        assert tree_digest(out) == before  # the previous complete image, untouched
        config, _ = skopeo_digests(FORMATS[fmt], out)
        assert config == hello.config_digest
    else:
        assert not out.exists() and not out.is_symlink()
    # documented: after SIGKILL the hidden temp output may remain, never under the final name
    leftovers = [n for n in os.listdir(tmp_path) if n != "image"]
    assert all(n.startswith(".image.hocker-") for n in leftovers), leftovers


# --timeout 6: long enough that an exit which waited for the stalled read would show
INTERRUPT_TIMEOUT = 6


@pytest.mark.parametrize("fmt, previous, sig", [
    ("docker-archive", False, signal.SIGTERM), ("docker-archive", True, signal.SIGTERM),
    ("docker-archive", False, signal.SIGINT), ("docker-archive", True, signal.SIGINT),
    ("oci", False, signal.SIGTERM), ("oci", True, signal.SIGINT),
], ids=["archive-SIGTERM", "archive-previous-SIGTERM", "archive-SIGINT", "archive-previous-SIGINT",
        "oci-SIGTERM", "oci-previous-SIGINT"])
def test_sigterm_sigint_mid_download_leave_nothing(proxy, hello, tmp_path: Path, fmt: str, previous: bool,
                                                    sig: signal.Signals) -> None:
    out = tmp_path / "image"
    before = _previous_output(proxy, out, fmt) if previous else None
    proxy.on("GET", blob_path(hello.layers[0][0])).stall(60, after=100_000)
    proc = start_image(proxy, out, fmt, timeout=INTERRUPT_TIMEOUT)
    _wait_mid_download(proxy, proc, hello.layers[0][0], tmp_path)
    t0 = time.monotonic()
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=90)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert err.decode().splitlines() == ["hocker-image: interrupted"], err
    if previous:
        assert tree_digest(out) == before
    else:
        assert not out.exists()
    assert os.listdir(tmp_path) == (["image"] if previous else []), os.listdir(tmp_path)
    assert elapsed < INTERRUPT_TIMEOUT + 5, elapsed


def test_sigterm_exits_promptly_while_a_layer_stalls(proxy, hello, tmp_path: Path) -> None:
    proxy.on("GET", blob_path(hello.layers[0][0])).stall(60, after=100_000)
    proc = start_image(proxy, tmp_path / "image", "docker-archive", timeout=12)
    _wait_mid_download(proxy, proc, hello.layers[0][0], tmp_path)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 130
    assert elapsed < 5, elapsed
