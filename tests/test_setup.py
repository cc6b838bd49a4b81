"""The README's set-up promises: the demo installs only what it runs, an unreachable package index is one line
that names the package, what is installed is not installed again, and a checkout without ../shared/ skips the
tests that need nixpkgs' lib with the reason instead of crashing (issue 18, items 4 and 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "scripts" / "setup-deps"
LOCAL_INDEX = Path("/opt/pypi/simple")  # this machine kind's copy of the package index, when it has one


def setup_deps(venv: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SETUP), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HOCKER_VENV": str(venv), **env}, stdin=subprocess.DEVNULL)


OFFLINE = {"PIP_INDEX_URL": "file:///nonexistent/simple", "PIP_EXTRA_INDEX_URL": "file:///nonexistent/simple",
           "PIP_FIND_LINKS": "", "PIP_RETRIES": "0"}


def test_an_unreachable_index_is_one_line_naming_the_package(tmp_path: Path) -> None:
    r = setup_deps(tmp_path / "venv", "--demo", **OFFLINE)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("setup-deps: pip could not get ") and "package index" in lines[0], lines[0]
    assert "Traceback" not in r.stderr and "subprocess-exited-with-error" not in r.stderr


def test_the_demo_installs_the_project_alone_and_never_twice(tmp_path: Path) -> None:
    if not (LOCAL_INDEX / "requests").is_dir():
        pytest.skip(f"no local copy of the package index at {LOCAL_INDEX}: a fresh venv would need the network")
    venv = tmp_path / "venv"
    r = setup_deps(venv, "--demo", PIP_INDEX_URL=LOCAL_INDEX.as_uri())
    assert r.returncode == 0, r.stderr
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout.lower()
    installed = {line.split("==")[0] for line in listed.splitlines()}
    assert {"hocker-fetch", "requests", "jinja2"} <= installed
    assert not installed & {"ruff", "mypy", "pytest", "hypothesis", "types-requests"}, installed
    # installed once: a second run needs no index at all
    again = setup_deps(venv, "--demo", **OFFLINE)
    assert again.returncode == 0 and again.stderr == "", again.stderr


def test_scripts_demo_asks_for_the_demo_set_up() -> None:
    demo = (REPO / "scripts" / "demo").read_text()
    assert "scripts/setup-deps --demo" in demo
    assert "setup-deps\n" not in demo.replace("setup-deps --demo\n", "")


def test_without_shared_the_nixpkgs_lib_tests_skip_with_the_reason(tmp_path: Path) -> None:
    """Each way a test reaches nixpkgs' lib (the stub nixpkgs, the module evaluator) skips when it is absent."""
    tests = ["tests/test_nix_build.py::test_flake_outputs_evaluate_with_a_stub_nixpkgs",
             "tests/test_nixos_module.py::test_docker_enabled_means_docker",
             "tests/test_mirrors_nix_eval.py::test_overlay_and_mkfetchers_pass_mirrors_through"]
    env = {k: v for k, v in os.environ.items() if k != "NIX_PATH"}
    env["HOCKER_NIXPKGS_LIB"] = str(tmp_path / "no-shared" / "lib")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *tests],
                       cwd=REPO, capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "3 skipped" in r.stdout, r.stdout[-3000:]
    assert r.stdout.count("no-shared") >= 2 and "FileNotFoundError" not in r.stdout, r.stdout[-3000:]
