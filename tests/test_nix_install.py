"""Every way docs/nix.md installs the tools from a checkout (issue 18, item 16), each followed by running the
installed tool:

* `pip install CHECKOUT` into a fresh virtualenv (the package index pip is configured with; no network beyond it);
* `pipx install CHECKOUT`, skipped with the reason when pipx is not installed;
* `nix-env -iA hocker-fetch` through overlay.nix and `nix profile install path:CHECKOUT` through flake.nix, into
  profiles of a throw-away store. nixpkgs is not available offline: test_nix_build.py's stub stands in for it,
  its buildPythonApplication giving a store path whose bin/ links this project's virtualenv. What is tested is
  the wiring (attribute names, the profile's bin/, the installed docker2nix running), not nixpkgs' Python build.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support import nixenv
from support.nixenv import NIX_DIR, REPO, Nix, base_env
from test_nix_build import fake_nixpkgs_package, stub_nixpkgs

nix = nixenv.nix

SOURCE = ("setup.py", "setup.cfg", "README.md", "LICENSE", "hocker_fetch")


def checkout_copy(dest: Path) -> Path:
    """The files a checkout installs from (pip builds in the source tree: never in the worktree itself)."""
    dest.mkdir()
    for name in SOURCE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.exists():
            shutil.copy(src, dest / name)
    for name in ("flake.nix", "overlay.nix"):
        shutil.copy(REPO / name, dest / name)
    shutil.copytree(NIX_DIR, dest / "nix")
    return dest


def manifest_digest(tool: Path, reg) -> str:
    proc = subprocess.run([str(tool), "--registry", reg.url, "library/hello", "oci"], capture_output=True,
                          env=base_env(), timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return nixenv.sha(proc.stdout)


def test_pip_install_into_a_fresh_venv(plain_registry, tmp_path: Path) -> None:
    src = checkout_copy(tmp_path / "checkout")
    venv = tmp_path / "venv"
    subprocess.run([shutil.which("python3") or "python3", "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(src)],
                         capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    if pip.returncode != 0 and "No matching distribution" in pip.stderr:
        pytest.skip(f"no package index reachable for the dependencies: {pip.stderr.strip().splitlines()[-1]}")
    assert pip.returncode == 0, pip.stderr
    for tool in ("docker2nix", "hocker-manifest", "hocker-config", "hocker-layer", "hocker-image", "hocker-lock"):
        assert (venv / "bin" / tool).exists(), tool
    info = plain_registry.images["library/hello:oci"].single
    assert manifest_digest(venv / "bin" / "hocker-manifest", plain_registry) == info.manifest_digest
    # installed, not linked to the checkout: it runs with the copy gone
    shutil.rmtree(src)
    assert manifest_digest(venv / "bin" / "hocker-manifest", plain_registry) == info.manifest_digest


def test_pipx_install(plain_registry, tmp_path: Path) -> None:
    pipx = shutil.which("pipx")
    if pipx is None:
        pytest.skip("pipx is not installed here, nor in the offline package mirror (/opt/pypi)")
    src = checkout_copy(tmp_path / "checkout")
    env = base_env(PIPX_HOME=str(tmp_path / "pipx"), PIPX_BIN_DIR=str(tmp_path / "bin"))
    proc = subprocess.run([pipx, "install", str(src)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    info = plain_registry.images["library/hello:oci"].single
    assert manifest_digest(tmp_path / "bin" / "hocker-manifest", plain_registry) == info.manifest_digest


def stub_with_store_package(nix: Nix, tmp_path: Path) -> Path:
    """The stub nixpkgs, its package a real derivation (profiles hold built store paths): $out/bin and
    $out/libexec link the fake package, which runs this project's virtualenv."""
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    (fake["hocker"] / "bin" / "hocker-lock").symlink_to(nixenv.BIN / "hocker-lock")
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)
    text = (stub / "default.nix").read_text()
    fake_out = 'type = "derivation"; outPath = "${fake.hocker}";'
    assert fake_out in text and "  lib = import ./lib;\n" in text
    real = 'type = "derivation"; inherit (realPackage "${fake.hocker}" sys attrs) outPath drvPath outputName out;'
    text = text.replace(fake_out, real)
    text = text.replace("  lib = import ./lib;\n", """  lib = import ./lib;
  realPackage = fake: system: attrs: builtins.derivation {
    name = "${attrs.pname}-${attrs.version}";
    inherit system fake;
    builder = "/bin/sh";
    args = [ "-c" "/bin/mkdir $out && /bin/ln -s $fake/bin $fake/libexec $out/" ];
  };
""", 1)
    (stub / "default.nix").write_text(text)
    return stub


def profile_runs(profile: Path, reg) -> None:
    tool = profile / "bin" / "hocker-manifest"
    assert (profile / "bin" / "docker2nix").exists(), sorted(os.listdir(profile / "bin"))
    assert manifest_digest(tool, reg) == reg.images["library/hello:oci"].single.manifest_digest
    version = subprocess.run([str(profile / "bin" / "docker2nix"), "--help"], capture_output=True, text=True,
                             env=base_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert version.returncode == 0 and "docker2nix" in version.stdout


def test_nix_env_through_the_overlay(nix: Nix, plain_registry, tmp_path: Path) -> None:
    src = checkout_copy(tmp_path / "checkout")
    stub = stub_with_store_package(nix, tmp_path)
    profile = tmp_path / "profiles" / "overlay"
    profile.parent.mkdir()
    nix.run("nix-env", "-p", str(profile), "-f", str(stub), "--arg", "overlays", f"[ (import {src}/overlay.nix) ]",
            "-iA", "hocker-fetch")
    profile_runs(profile, plain_registry)
    listed = nix.run("nix-env", "-p", str(profile), "-q").stdout.split()
    version = next(line.split(" = ")[1] for line in (REPO / "setup.cfg").read_text().splitlines()
                   if line.startswith("version = "))
    assert listed == [f"hocker-fetch-{version}"]


def test_nix_profile_install_through_the_flake(nix: Nix, plain_registry, tmp_path: Path) -> None:
    src = checkout_copy(tmp_path / "checkout")
    stub = stub_with_store_package(nix, tmp_path)
    profile = tmp_path / "profiles" / "flake"
    profile.parent.mkdir()
    nix.run("nix", "profile", "install", "--profile", str(profile), f"path:{src}", "--override-input", "nixpkgs",
            f"path:{stub}", "--no-write-lock-file")
    profile_runs(profile, plain_registry)
    manifest = json.loads((profile / "manifest.json").read_text())
    [element] = manifest["elements"]
    assert element["attrPath"].endswith(".default") and element["originalUrl"] == f"path:{src}"
