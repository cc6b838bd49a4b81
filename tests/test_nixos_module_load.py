"""nix/module.nix's load unit run for real: the script NixOS would run at boot, built by Nix from images pinned
against the plain registry, run against this host's podman on a private (vfs) storage.

* an image is loaded once; a second boot skips it;
* an image counts as loaded only when its ID AND its name:tag are there (issue 18, item 1): the same image pinned
  under another name is tagged, not skipped and not loaded again;
* the unit loads from `.dockerArchive` (issue 18, item 19): its closure holds no interpreter, only the archive.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest
from support import nixenv
from support.nixenv import VENV, Nix, docker2nix
from test_nixos_module import Module, bash_n, find_nixpkgs_lib

nix = nixenv.nix
gen_dir = nixenv.gen_dir


@pytest.fixture(scope="module")
def module(nix: Nix) -> Module:
    lib, why = find_nixpkgs_lib()
    if lib is None:
        pytest.skip(why)
    return Module(nix, lib)


@pytest.fixture
def podman_storage(tmp_path: Path) -> Iterator[list[str]]:
    if shutil.which("podman") is None:
        pytest.skip("podman not installed")
    run_root = Path(tempfile.mkdtemp(prefix="hkm-", dir="/tmp"))  # podman: runroot under 50 characters
    yield ["--root", str(tmp_path / "podman-root"), "--runroot", str(run_root), "--storage-driver", "vfs",
           "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
    shutil.rmtree(run_root, ignore_errors=True)


def unit_script(module: Module, nix: Nix, podman: list[str], images: str, tmp_path: Path, name: str) -> Path:
    """The unit's script as a store file with its context: building it builds the images and the podman wrapper,
    as NixOS would; its references are what the unit needs at boot."""
    conf = f"""{{ podmanAt, ... }}: {{
      virtualisation.podman.package = podmanAt {json.dumps(" ".join(podman))};
      services.hocker-images = {{ enable = true; images = {images}; }};
    }}"""
    runner = tmp_path / f"{name}.nix"
    runner.write_text(f"""
let c = import {module.file} {{ conf = {conf}; }};
in builtins.derivation {{
  name = "hocker-load-images-{name}";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" "printf '%s' \\"$script\\" > $out" ];
  script = c.systemd.services.hocker-load-images.script;
}}
""")
    script = Path(nix.run("nix-build", "--no-out-link", str(runner)).stdout.strip())
    bash_n(script.read_text(), tmp_path)
    return script


def boot(script: Path) -> str:
    proc = subprocess.run(["bash", "-e", str(script)], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def image_id(podman: list[str], name: str) -> str:
    inspect = subprocess.run(["podman", *podman, "image", "inspect", "--format", "{{.Id}}", name],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert inspect.returncode == 0, inspect.stderr
    return "sha256:" + inspect.stdout.strip()


def test_unit_loads_a_real_image_into_podman_once(module: Module, nix: Nix, gen_dir: Path, plain_registry,
                                                  podman_storage: list[str], tmp_path: Path) -> None:
    info = plain_registry.images["library/hello:oci"].single
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello.nix")
    script = unit_script(module, nix, podman_storage, f"[ (import {nix.build_nix} {{ file = {expr}; }}) ]",
                         tmp_path, "one")
    name = f"{plain_registry.host}/library/hello:oci"
    assert f"hocker-images: loading {name}" in boot(script)
    assert image_id(podman_storage, name) == info.config_digest
    second = boot(script)
    assert f"hocker-images: {name} is already loaded" in second and "loading" not in second


def test_same_image_under_another_name_is_tagged_not_skipped(module: Module, nix: Nix, gen_dir: Path,
                                                             plain_registry, podman_storage: list[str],
                                                             tmp_path: Path) -> None:
    """Loaded as HOST/library/hello:oci first; then a configuration pins the same config as other/hello:oci.
    The ID is there, the name is not: the unit tags the image (it used to say "already loaded" and leave the
    name missing, so a container using it pulled it at boot)."""
    info = plain_registry.images["library/hello:oci"].single
    first = docker2nix(plain_registry, "library/hello:oci", gen_dir / "first.nix")
    other = docker2nix(plain_registry, "library/hello:oci", gen_dir / "other.nix", "--altImageName", "other/hello")
    boot(unit_script(module, nix, podman_storage, f"[ (import {nix.build_nix} {{ file = {first}; }}) ]",
                     tmp_path, "first"))
    script = unit_script(module, nix, podman_storage, f"[ (import {nix.build_nix} {{ file = {other}; }}) ]",
                         tmp_path, "other")
    out = boot(script)
    assert "hocker-images: other/hello:oci is loaded under another name: tagging it" in out, out
    assert "loading" not in out and "already loaded" not in out
    assert image_id(podman_storage, "other/hello:oci") == info.config_digest
    assert image_id(podman_storage, f"{plain_registry.host}/library/hello:oci") == info.config_digest
    again = boot(script)
    assert "hocker-images: other/hello:oci is already loaded" in again and "tagging" not in again


def closure(nix: Nix, path: Path) -> list[str]:
    return nix.run("nix-store", "--query", "--requisites", str(path)).stdout.split()


def test_unit_closure_has_no_interpreter(module: Module, nix: Nix, gen_dir: Path, plain_registry,
                                         podman_storage: list[str], tmp_path: Path) -> None:
    """The unit refers to the engine and each image's .dockerArchive, which refers to nothing: not to
    compositeImage.sh (which runs Python), not to the layer paths. No file of the closure names the interpreter.
    (Here the interpreter is the test's virtualenv, outside the store; with the overlay it is nixpkgs' python3
    and hocker-fetch's closure, which the unit no longer carries.)"""
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "closure.nix")
    image = f"(import {nix.build_nix} {{ file = {expr}; }})"
    script = unit_script(module, nix, podman_storage, f"[ {image} ]", tmp_path, "closure")
    paths = closure(nix, script)
    [archive] = [p for p in paths if p.endswith(".tar")]
    assert closure(nix, Path(archive)) == [archive]
    composite = json.loads(nix.run("nix-instantiate", "--eval", "--json", "--expr",
                                   f"(import {nix.build_nix} {{ file = {expr}; }}).outPath").stdout)
    assert composite not in paths
    assert not [p for p in paths if "docker-layer-" in p]
    python = str(VENV).encode()
    for p in paths:
        files = [Path(p)] if Path(p).is_file() else [f for f in Path(p).rglob("*") if f.is_file()]
        for f in files:
            assert python not in f.read_bytes(), f


def test_images_as_an_attribute_set(module: Module, nix: Nix, gen_dir: Path, plain_registry,
                                    podman_storage: list[str], tmp_path: Path) -> None:
    """`images = importDockerLock ./images.lock.json` (an attribute set) works as written in the examples."""
    host = plain_registry.host
    lock = tmp_path / "images.lock.json"
    add = subprocess.run([str(nixenv.BIN / "hocker-lock"), "--file", str(lock), "add", f"{host}/library/hello:oci"],
                         capture_output=True, text=True, env=nixenv.base_env(), timeout=120,
                         stdin=subprocess.DEVNULL)
    assert add.returncode == 0, add.stderr
    fetchers = f'(import {nixenv.NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }})'
    script = unit_script(module, nix, podman_storage, f"({fetchers}.importDockerLock {lock})", tmp_path, "lock")
    assert f"hocker-images: loading {host}/library/hello:oci" in boot(script)
