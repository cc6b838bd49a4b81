"""nix/module.nix (`services.hocker-images`) evaluated with the real nixpkgs library, and its unit run for real.

The library is `<nixpkgs/lib>` when the user's NIX_PATH has nixpkgs, else the snapshot in ../shared/nixpkgs-lib
(MIT, see its COPYING and SOURCE); the tests skip, saying so, only when neither exists. The NixOS options the
module reads or sets are typed stand-ins (tests/support/nixos-stub.nix, real lib.types), and failed assertions
fail the evaluation with their messages, as on NixOS (tests/support/nixos-eval.nix).

The generated unit script must pass `bash -n`; test_nixos_module_load.py runs it for real with podman.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from support import nixenv
from support.nixenv import NIX_DIR, REPO, VENV, Nix, docker2nix, skopeo_config_digest

nix = nixenv.nix  # the module-scoped fixtures: one throw-away store for this module
gen_dir = nixenv.gen_dir

SUPPORT = Path(__file__).resolve().parent / "support"
SHARED_LIB = nixenv.NIXPKGS_LIB  # the shared snapshot; find_nixpkgs_lib() prefers a user's <nixpkgs/lib>
HEX_A = "a" * 64
HEX_B = "b" * 64
HEX_C = "c" * 64


def find_nixpkgs_lib() -> tuple[Optional[Path], str]:
    """nixpkgs' lib/: `<nixpkgs/lib>` from the user's NIX_PATH, else the shared snapshot; None and why not."""
    if os.environ.get("NIX_PATH") and shutil.which("nix-instantiate"):
        found = subprocess.run(["nix-instantiate", "--find-file", "nixpkgs/lib"], capture_output=True, text=True,
                               timeout=60, stdin=subprocess.DEVNULL)
        if found.returncode == 0 and Path(found.stdout.strip(), "modules.nix").exists():
            return Path(found.stdout.strip()), ""
    if (SHARED_LIB / "modules.nix").exists():
        return SHARED_LIB, ""
    return None, (f"nixpkgs' lib/ is not available: no nixpkgs on NIX_PATH (<nixpkgs/lib>) and no snapshot at "
                  f"{SHARED_LIB}")


class Module:
    """Evaluates nix/module.nix plus a config module (Nix text) with lib.evalModules, in the private store."""

    def __init__(self, nix: Nix, lib: Path):
        self.nix = nix
        self.lib = lib
        self.file = nix.root / "module-eval.nix"
        # pkgs: engine packages that are never built; fakeImage: a fetchdocker result (never built either) from
        # the real fetchers; podmanAt: a real package whose bin/podman runs this host's podman on a given storage.
        self.file.write_text(f"""
{{ conf }}:
let
  lib = import {lib};
  system = builtins.currentSystem;
  fake = name: builtins.derivation {{ inherit name system; builder = "/bin/false"; }};
  pkgs = {{ docker = fake "docker-stub"; podman = fake "podman-stub"; }};
  fetchers = import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }};
  fakeImage = name: fetchers.fetchdocker {{
    inherit name;
    registry = "http://127.0.0.1:9/v2/";
    imageName = name;
    tag = "1";
    imageDigest = "sha256:{HEX_C}";
    imageConfig = fetchers.fetchDockerConfig {{ imageName = name; configDigest = "sha256:{HEX_A}"; }};
    imageLayers = [ (fetchers.fetchDockerLayer {{ imageName = name; layerDigest = "sha256:{HEX_B}"; }}) ];
  }};
  podmanAt = podmanArgs: builtins.derivation {{
    name = "podman-private";
    inherit system podmanArgs;
    builder = "/bin/sh";
    args = [ "-c" ''
      /bin/mkdir -p $out/bin
      printf '#!/bin/sh\\nexec %s %s "$@"\\n' "$real" "$podmanArgs" > $out/bin/podman
      /bin/chmod +x $out/bin/podman
    '' ];
    real = "{shutil.which("podman") or "/usr/bin/podman"}";
    script = ''
      /bin/mkdir -p $out/bin
      printf '#!/bin/sh\\nexec %s %s "$@"\\n' "$real" "$args" > $out/bin/podman
      /bin/chmod +x $out/bin/podman
    '';
    __ignored = null;
  }} // {{ }};
in
import {SUPPORT}/nixos-eval.nix {{
  inherit lib pkgs;
  config = conf;
  extraArgs = {{ inherit fetchers fakeImage podmanAt; }};
}}
""")

    def run(self, conf: str, expr: str = "c", check: bool = True) -> subprocess.CompletedProcess:
        return self.nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr",
                            f"let c = import {self.file} {{ conf = {conf}; }}; in {expr}", check=check)

    def eval(self, conf: str, expr: str = "c") -> Any:
        return json.loads(self.run(conf, expr).stdout)

    def error(self, conf: str, expr: str = "c") -> str:
        proc = self.run(conf, expr, check=False)
        assert proc.returncode != 0, f"evaluated, expected an error: {proc.stdout[:2000]}"
        return proc.stderr


@pytest.fixture(scope="module")
def module(nix: Nix) -> Module:
    lib, why = find_nixpkgs_lib()
    if lib is None:
        pytest.skip(why)
    return Module(nix, lib)


def test_nixpkgs_lib_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """<nixpkgs/lib> from NIX_PATH first, then the shared snapshot; neither: None with the reason for the skip."""
    user = tmp_path / "nixpkgs"
    (user / "lib").mkdir(parents=True)
    (user / "lib" / "modules.nix").write_text("{ }\n")
    monkeypatch.setattr(sys.modules[__name__], "SHARED_LIB", tmp_path / "no-snapshot" / "lib")
    monkeypatch.setenv("NIX_PATH", f"nixpkgs={user}")
    assert find_nixpkgs_lib() == (user / "lib", "")
    monkeypatch.delenv("NIX_PATH")
    lib, why = find_nixpkgs_lib()
    assert lib is None and "no nixpkgs on NIX_PATH" in why and str(tmp_path / "no-snapshot") in why


TWO_IMAGES = """{ fakeImage, ... }: {
  services.hocker-images = { enable = true; images = [ (fakeImage "one") (fakeImage "two") ]; };
}"""

ENGINES = "{ inherit (c.virtualisation.docker) enable; podman = c.virtualisation.podman.enable; }"


def bash_n(script: str, tmp_path: Path) -> None:
    f = tmp_path / "unit.sh"
    f.write_text(script)
    check = subprocess.run(["bash", "-n", str(f)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr + script


# -- evaluation ------------------------------------------------------------------------------------------------


def test_default_backend_enables_podman_and_the_script_parses(module: Module, tmp_path: Path) -> None:
    """Neither engine enabled: podman is chosen and enabled, as virtualisation.oci-containers does; without
    this the unit failed every boot (no /etc/containers/policy.json without virtualisation.podman)."""
    assert module.eval(TWO_IMAGES, ENGINES) == {"enable": False, "podman": True}
    unit = module.eval(TWO_IMAGES, "c.systemd.services.hocker-load-images")
    assert unit["wantedBy"] == ["multi-user.target"]
    assert unit["after"] == [] and unit["requires"] == []
    assert unit["serviceConfig"] == {"Type": "oneshot", "RemainAfterExit": True}
    script = unit["script"]
    assert script.count("-podman-stub/bin/podman load") == 2
    assert f"-podman-stub/bin/podman image inspect sha256:{HEX_A}" in script
    assert "127.0.0.1:9/library/one:1" in script and "127.0.0.1:9/library/two:1" in script
    bash_n(script, tmp_path)
    assert module.eval(TWO_IMAGES, "c.warnings") == []


def test_docker_enabled_means_docker(module: Module, tmp_path: Path) -> None:
    conf = TWO_IMAGES.replace("services.hocker-images", "virtualisation.docker.enable = true; services.hocker-images")
    assert module.eval(conf, ENGINES) == {"enable": True, "podman": False}
    unit = module.eval(conf, "c.systemd.services.hocker-load-images")
    assert unit["after"] == ["docker.service"] and unit["requires"] == ["docker.service"]
    assert "-docker-stub/bin/docker load" in unit["script"] and "podman" not in unit["script"]
    bash_n(unit["script"], tmp_path)


def test_explicit_docker_backend_enables_docker(module: Module) -> None:
    conf = TWO_IMAGES.replace("enable = true;", 'enable = true; backend = "docker";')
    assert module.eval(conf, ENGINES) == {"enable": True, "podman": False}


def test_an_engine_disabled_on_purpose_is_a_failed_assertion(module: Module) -> None:
    conf = TWO_IMAGES.replace("services.hocker-images", "virtualisation.podman.enable = false; services.hocker-images")
    err = module.error(conf, "c.systemd.services")
    assert "Failed assertions:" in err
    assert "services.hocker-images loads its images into podman, but virtualisation.podman.enable is false" in err
    conf = TWO_IMAGES.replace("enable = true;", 'enable = true; backend = "docker";').replace(
        "services.hocker-images", "virtualisation.docker.enable = false; services.hocker-images", 1)
    assert "into docker, but virtualisation.docker.enable is false" in module.error(conf, "c.systemd.services")


def test_disabled_module_touches_nothing(module: Module) -> None:
    conf = TWO_IMAGES.replace("enable = true;", "enable = false;")
    assert module.eval(conf, ENGINES) == {"enable": False, "podman": False}
    assert module.eval(conf, "c.systemd.services") == {}
    assert module.eval("{ services.hocker-images.enable = true; }", ENGINES) == {"enable": False, "podman": False}


@pytest.mark.parametrize("entry", [
    # any package: a dockerTools-like image and a plain tarball
    'derivation { name = "docker-image-web.tar.gz"; system = "x"; builder = "/bin/false"; } '
    '// { imageName = "web"; imageTag = "latest"; }',
    '"/nix/store/00000000000000000000000000000000-web.tar.gz"',
])
def test_images_refuses_anything_but_a_fetchdocker_result(module: Module, entry: str) -> None:
    conf = f"""{{ fakeImage, ... }}: {{
      services.hocker-images = {{ enable = true; images = [ (fakeImage "one") ({entry}) ]; }};
    }}"""
    err = module.error(conf, "c.systemd.services")
    assert "services.hocker-images.images" in err and "[definition 1-entry 2]" in err, err
    assert "is not of type `fetchdocker result (a docker2nix file called with hocker-fetch's fetchers)'" in err, err
    assert "web" in err  # the value, shown by name


SECRET = "s3cr3t-registry-password-7f1c"


def test_registry_credentials_file_is_a_daemon_environment_file(module: Module, nix: Nix, tmp_path: Path) -> None:
    """One line: the nix-daemon reads the file (EnvironmentFile, "-": a missing file keeps the daemon starting);
    no sandbox path, no tmpfiles rule, no activation script, and the file's content goes nowhere."""
    secret = tmp_path / "registry"
    secret.write_text(f"DOCKER_USER=me\nDOCKER_PASS={SECRET}\n")
    secret.chmod(0o600)
    for conf in (f'{{ services.hocker-images.registryCredentialsFile = "{secret}"; }}',  # works without enable
                 TWO_IMAGES.replace("enable = true;", f'enable = true; registryCredentialsFile = "{secret}";')):
        daemon = module.eval(conf, "c.systemd.services.nix-daemon.serviceConfig")
        assert daemon == {"EnvironmentFile": [f"-{secret}"]}
        rest = module.eval(conf, "{ inherit (c) nix environment; tmpfiles = c.systemd.tmpfiles.rules; "
                                 "act = c.system.activationScripts; }")
        assert rest == {"nix": {"settings": {}}, "environment": {"etc": {}}, "tmpfiles": [], "act": {}}
        everything = module.run(conf).stdout
        assert SECRET not in everything and str(secret) in everything
    # merges with other EnvironmentFiles of the daemon
    both = module.eval(f"""{{ lib, ... }}: {{
      services.hocker-images.registryCredentialsFile = "{secret}";
      systemd.services.nix-daemon.serviceConfig.EnvironmentFile = [ "/etc/nix-daemon.env" ];
    }}""", "c.systemd.services.nix-daemon.serviceConfig.EnvironmentFile")
    assert sorted(both) == sorted([f"-{secret}", "/etc/nix-daemon.env"])
    assert module.eval("{ }", "c.systemd.services") == {}
    # a path literal (would be copied to the store when used), a store path, a relative name: refused, and the
    # content was not copied into the store while refusing
    for value in (str(secret), '"${builtins.toFile "registry" "x"}"', '"registry"',
                  '"${builtins.storeDir}/x-registry"'):
        err = module.error(f"{{ services.hocker-images.registryCredentialsFile = {value}; }}",
                           "c.systemd.services")
        assert "services.hocker-images.registryCredentialsFile" in err
        assert "absolute path outside the Nix store, as a string" in err, err
        assert SECRET not in err
    for f in nix.store.rglob("*"):
        if f.is_file() and not f.is_symlink():
            assert SECRET.encode() not in f.read_bytes(), f


# -- the stream for oci-containers ----------------------------------------------------------------------------


def test_stream_is_an_image_stream_for_oci_containers(nix: Nix, gen_dir: Path, plain_registry, tmp_path: Path) -> None:
    """`.stream` is itself the executable (oci-containers' imageStream): it streams the same archive as
    compositeImage.sh and adds nothing but a symlink to the store (no second copy of the layers)."""
    info = plain_registry.images["library/hello:oci"].single
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello.nix")
    [stream] = nix.build_paths(expr, attr="stream")
    [result] = nix.build_paths(expr)
    assert os.path.islink(stream) and os.readlink(stream) == f"{result}/compositeImage.sh"
    assert os.access(stream, os.X_OK)
    out = tmp_path / "stream.tar"
    with open(out, "wb") as f:
        proc = subprocess.run([stream], stdout=f, stderr=subprocess.PIPE, timeout=120, env=nixenv.base_env())
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == nixenv.stream_image(result, tmp_path / "composite.tar").read_bytes()
    assert skopeo_config_digest(f"docker-archive:{out}") == info.config_digest
    assert stream.endswith("-stream")


# -- the flake's checks and nixosModules, offline ----------------------------------------------------------------


def test_flake_checks_evaluate_the_module_and_the_fetchers(nix: Nix, module: Module, tmp_path: Path) -> None:
    """test_nix_build.py's stub nixpkgs (the same fake packages), extended with what the checks use: the real
    lib (plus a nixosSystem that is lib.evalModules over the typed stand-ins, with the overlays of
    nixpkgs.overlays, as NixOS applies them), runCommand and bash. Both checks build: the fetchers' derivations
    instantiate through the overlay and lib.mkFetchers, and the module's unit script parses in a NixOS system
    built from nixosModules.default."""
    from test_nix_build import fake_nixpkgs_package

    src = tmp_path / "flake"
    src.mkdir()
    for name in ("flake.nix", "overlay.nix"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(NIX_DIR, src / "nix")
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    stub = tmp_path / "nixpkgs-stub"
    stub.mkdir()
    shutil.copytree(module.lib, stub / "lib")
    shutil.copy(SUPPORT / "nixos-stub.nix", stub / "nixos-stub.nix")
    (stub / "flake.nix").write_text("""{
  outputs = { self }: {
    lib = import ./lib // {
      nixosSystem = { system, modules }: (import ./lib).evalModules {
        modules = modules ++ [ ./nixos-stub.nix ({ config, ... }: {
          _module.args.pkgs = import ./default.nix { inherit system; inherit (config.nixpkgs) overlays; };
        }) ];
      };
    };
  };
}
""")
    (stub / "default.nix").write_text(f"""
{{ system, overlays ? [ ] }}:
let
  fake = name: builtins.derivation {{ inherit name system; builder = "/bin/false"; }};
  base = {{
    lib = import ./lib;
    callPackage = path: args: "{fake['hocker']}";
    cacert = "{fake['cacert']}";
    bash = "{fake['bash']}";
    stdenv.hostPlatform.system = system;
    docker = fake "docker-stub";
    podman = fake "podman-stub";
    runCommand = name: env: command: builtins.derivation (env // {{
      inherit name system;
      builder = "{fake['bash']}/bin/bash";
      args = [ "-c" command ];
    }});
  }};
  final = builtins.foldl' (acc: o: acc // o final acc) base overlays // {{ buildPackages = final; }};
in final
""")
    flake = f"path:{src}"
    common = ["--override-input", "nixpkgs", f"path:{stub}", "--no-write-lock-file"]
    system = nix.run("nix-instantiate", "--eval", "--json", "--expr", "builtins.currentSystem").stdout.strip('"\n')
    names = json.loads(nix.run("nix", "eval", "--json", f"{flake}#checks.{system}", *common, "--apply",
                               "builtins.attrNames").stdout)
    assert names == ["fetchers", "hocker", "nixos-module"]
    darwin = json.loads(nix.run("nix", "eval", "--json", f"{flake}#checks.aarch64-darwin", *common, "--apply",
                                "builtins.attrNames").stdout)
    assert darwin == ["fetchers", "hocker"]

    def build(check: str) -> Path:
        drv = nix.run("nix", "eval", "--raw", f"{flake}#checks.{system}.{check}.drvPath", *common).stdout.strip()
        return Path(nix.run("nix-store", "--realise", drv).stdout.strip())

    drvs = json.loads(build("fetchers").read_text())
    assert len(drvs) == 18  # image, config, archive, layout, stream, one layer; twice, and from a lock file
    assert drvs[12:] == drvs[:6]  # the lock's entry is the very same derivations as the hand-written call
    assert all(d.endswith(".drv") and Path(d).exists() for d in drvs)
    assert any(d.endswith("-check-stream.drv") for d in drvs)
    assert any(d.endswith(f"-docker-layer-{'3' * 64}.tar.gz.drv") for d in drvs)
    script = build("nixos-module").read_text()
    assert "-podman-stub/bin/podman load" in script and "registry.example/library/check:1" in script
