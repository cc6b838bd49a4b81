"""Issue 13: what a fixed-output builder imports, and the version lookup that replaced importlib.metadata.

No timing here (speed belongs to bench/): these assert what the lean entry point loads and what it produces.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

from support.clitools import clean_env

import hocker_fetch

# what fetching one blob never needs: templates, archives, manifest platforms, the other tools, ctypes (AtomicDir
# only). (importlib.metadata is not listed: urllib3 >= 2.3 imports it itself, in urllib3.http2.)
NOT_FOR_ONE_BLOB = ("jinja2", "hocker_fetch.nixgen", "hocker_fetch.archive",
                    "hocker_fetch.image", "hocker_fetch.platforms", "hocker_fetch.cli", "hocker_fetch.docker2nix",
                    "ctypes", "platform", "subprocess")


def imported(stderr: str) -> set[str]:
    """The modules `python -X importtime` reported as imported."""
    return {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", stderr, re.M)}


def test_fetchblob_imports_only_what_one_blob_needs_and_verifies(plain_registry, tmp_path: Path) -> None:
    info = plain_registry.images["library/hello:oci"]
    digest, _media_type, size = info.platforms["linux/amd64"].layers[0]
    out = tmp_path / "layer.bin"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "hocker_fetch.fetchblob", "--quiet",
                           "--registry", plain_registry.url, "--layer", digest, "library/hello", "unused",
                           "--out", str(out)], capture_output=True, text=True, env=clean_env(), timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == f"{out}\n"
    assert out.stat().st_size == size
    assert "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest() == digest
    modules = imported(proc.stderr)
    assert {"hocker_fetch.client", "hocker_fetch.transport", "requests"} <= modules  # the one HTTP stack
    assert not modules & set(NOT_FOR_ONE_BLOB), sorted(modules & set(NOT_FOR_ONE_BLOB))


def test_fetchblob_refuses_bytes_that_do_not_match(plain_registry, tmp_path: Path) -> None:
    """The lean path verifies like hocker-layer: bytes beyond the expected size fail verification, no output."""
    layers = plain_registry.images["library/hello:oci"].platforms["linux/amd64"].layers
    proc = subprocess.run([sys.executable, "-m", "hocker_fetch.fetchblob", "-q", "--registry", plain_registry.url,
                           "--layer", layers[0][0], "--size", str(layers[0][2] - 1), "library/hello", "x",
                           "--out", str(tmp_path / "l")], capture_output=True, text=True, env=clean_env(),
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 5, proc.stderr
    assert proc.stderr.startswith("hocker-layer: ") and proc.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_importing_the_package_does_no_work() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import hocker_fetch.errors"],
                          capture_output=True, text=True, env=clean_env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "importlib.metadata" not in imported(proc.stderr)


def test_version_from_the_dist_info_name_then_setup_cfg(tmp_path: Path) -> None:
    site = tmp_path / "site-packages"
    (site / "hocker_fetch").mkdir(parents=True)
    (site / "hocker_fetch-9.8.7.dist-info").mkdir()
    (site / "requests-2.0.dist-info").mkdir()
    assert hocker_fetch._version(str(site / "hocker_fetch")) == "9.8.7"
    checkout = tmp_path / "checkout"
    (checkout / "hocker_fetch").mkdir(parents=True)
    (checkout / "setup.cfg").write_text("[metadata]\nname = hocker-fetch\nversion = 1.2.3\n")
    assert hocker_fetch._version(str(checkout / "hocker_fetch")) == "1.2.3"
    # this checkout: setup.cfg's, as the package test of nix/package.nix expects
    assert hocker_fetch.__version__ == hocker_fetch._version(os.path.dirname(hocker_fetch.__file__))
