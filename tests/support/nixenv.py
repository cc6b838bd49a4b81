"""The Nix test environment shared by the Nix test modules (test_nix_build.py, test_secrets.py,
test_nix_faults.py): a private Nix 2.8 setup with a throw-away store, the `nix` and `gen_dir` fixtures (module
scope: one store per test module), and helpers to run docker2nix and check what a build produced.

One throw-away Nix store per module (NIX_STORE_DIR/NIX_STATE_DIR under tmp, its own NIX_CONF_DIR with
`substituters =` and `sandbox = false`): every fixed-output derivation really runs its builder (hocker-layer /
hocker-config from this project's virtualenv) against the registry, and nothing leaks into /nix/store.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
NIX_DIR = REPO / "nix"
# nixpkgs' lib/ (no full nixpkgs offline): for the stub package sets that overlay.nix, flake.nix and package.nix
# are evaluated against (lib.makeOverridable, lib.cleanSourceWith, lib.licenses, ...)
# HOCKER_NIXPKGS_LIB points elsewhere (a test of the skip uses a missing one). Without it, the tests that need
# it are skipped with the reason (nixpkgs_lib_or_skip), the rest run.
NIXPKGS_LIB = Path(os.environ.get("HOCKER_NIXPKGS_LIB") or REPO.parent / "shared" / "nixpkgs-lib" / "lib")
VENV = Path(sys.prefix)  # has bin/python and the console scripts (hocker-layer, docker2nix, ...)
BIN = Path(sys.executable).parent
SECRET_IMAGE = "private/secret:1"


def nixpkgs_lib_or_skip() -> Path:
    """The nixpkgs lib/ snapshot, or skip the calling test with the reason (a checkout without ../shared/)."""
    if not (NIXPKGS_LIB / "default.nix").exists():
        pytest.skip(f"nixpkgs' lib/ is not available at {NIXPKGS_LIB} (no ../shared/nixpkgs-lib beside the checkout)")
    return NIXPKGS_LIB


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_sha(path: str | Path) -> str:
    return sha(Path(path).read_bytes())


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_USER", "DOCKER_PASS", "DOCKER_TOKEN", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG",
                        "NIX_PATH", "NIX_SSL_CERT_FILE")}  # (machine-wide on many hosts; wins in the builders)
    env["HOME"] = "/nonexistent-home"
    env.update(extra)
    return env


class Nix:
    """A private Nix 2.8 setup: config, store, state and log directories under one tmp root."""

    def __init__(self, root: Path):
        self.root = root
        conf = root / "conf"
        conf.mkdir(parents=True)
        (conf / "registry.json").write_text('{"version":2,"flakes":[]}')
        (conf / "nix.conf").write_text(
            "build-users-group =\nsandbox = false\nsubstituters =\n"
            "experimental-features = nix-command flakes\n"
            f"flake-registry = {conf / 'registry.json'}\n")
        self.store = root / "store"
        self.env = {
            "NIX_CONF_DIR": str(conf),
            "NIX_STORE_DIR": str(self.store),
            "NIX_STATE_DIR": str(root / "state"),
            "NIX_LOG_DIR": str(root / "log"),
        }
        build = root / "build.nix"
        # callPackage without nixpkgs: pass the fetchers (and `system`, when the file takes it).
        build.write_text(f"""
{{ file, system ? builtins.currentSystem }}:
let
  fetchers = import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }};
  f = import file;
  args = {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}
    // (if (builtins.functionArgs f) ? system then {{ inherit system; }} else {{ }});
in f args
""")
        self.build_nix = build

    def run(self, *args: str, env: Optional[dict[str, str]] = None, check: bool = True,
            timeout: float = 300) -> subprocess.CompletedProcess:
        full_env = base_env(**self.env)
        full_env.update(env or {})
        proc = subprocess.run(list(args), capture_output=True, text=True, env=full_env, timeout=timeout,
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        return proc

    def build(self, file: Path, *extra: str, attr: Optional[str] = None, system: Optional[str] = None,
              env: Optional[dict[str, str]] = None, check: bool = True) -> subprocess.CompletedProcess:
        args = ["nix-build", str(self.build_nix), "--no-out-link", "--arg", "file", str(file)]
        if system:
            args += ["--argstr", "system", system]
        if attr:
            args += ["-A", attr]
        return self.run(*args, *extra, env=env, check=check)

    def build_paths(self, file: Path, **kw) -> list[str]:
        return self.build(file, **kw).stdout.split()

    def eval_json(self, file: Path, expr: str, system: Optional[str] = None):
        args = ["nix-instantiate", "--eval", "--strict", "--json", "--expr",
                f"let x = import {self.build_nix} {{ file = {file}; "
                + (f'system = "{system}"; ' if system else "") + f"}}; in {expr}"]
        return json.loads(self.run(*args).stdout)


@pytest.fixture(scope="module")
def nix(tmp_path_factory: pytest.TempPathFactory) -> Nix:
    if shutil.which("nix-build") is None:
        pytest.fail("nix-build is missing: run scripts/setup-deps", pytrace=False)
    assert (VENV / "bin" / "hocker-layer").exists(), "run the tests with the project's venv python"
    return Nix(tmp_path_factory.mktemp("nix"))


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("docker2nix")


def docker2nix(reg, image: str, out: Path, *args: str, env: Optional[dict[str, str]] = None) -> Path:
    repo, _, tag = image.rpartition(":")
    proc = subprocess.run([str(BIN / "docker2nix"), "--registry", reg.url, *args, repo, tag, "--out", str(out)],
                          capture_output=True, text=True, env=base_env(**(env or {})), timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return out


def auth_failure(stderr: str) -> bool:
    """The builder failed with hocker's one-line authentication error (exit code 3) naming the env variables."""
    return "failed with exit code 3" in stderr and "DOCKER_USER/DOCKER_PASS" in stderr


def stream_image(result: str, dest: Path) -> Path:
    with open(dest, "wb") as f:
        proc = subprocess.run([f"{result}/compositeImage.sh"], stdout=f, stderr=subprocess.PIPE, timeout=120,
                              env=base_env())
    assert proc.returncode == 0, proc.stderr
    return dest


def skopeo_config_digest(transport_ref: str) -> str:
    out = subprocess.run(["skopeo", "inspect", "--raw", "--config", transport_ref], capture_output=True,
                         timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    return sha(out.stdout)
