"""docker2nix output built for real by Nix 2.8 against the real registry fixtures.

One throw-away Nix store for the whole module (NIX_STORE_DIR/NIX_STATE_DIR under tmp, its own NIX_CONF_DIR
with `substituters =` and `sandbox = false`): every fixed-output derivation really runs its builder (hocker-layer
/ hocker-config from this project's virtualenv) against the registry, and nothing leaks into /nix/store.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

import pytest
from support import nixenv
from support.nixenv import (
    BIN,
    NIX_DIR,
    REPO,
    SECRET_IMAGE,
    VENV,
    Nix,
    auth_failure,
    base_env,
    docker2nix,
    file_sha,
    sha,
    skopeo_config_digest,
    stream_image,
)

nix = nixenv.nix  # the module-scoped fixtures
gen_dir = nixenv.gen_dir


def podman_load(archive: Path, root: Path) -> str:
    """`podman load` into a private storage; returns the loaded image's ID (= config digest hex)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hkr-", dir="/tmp") as run:  # podman: runroot < 50 characters
        base = ["podman", "--root", str(root / "root"), "--runroot", run, "--storage-driver", "vfs",
                "--cgroup-manager", "cgroupfs", "--events-backend", "file"]
        load = subprocess.run(base + ["load", "-i", str(archive)], capture_output=True, text=True, timeout=180,
                              stdin=subprocess.DEVNULL)
        assert load.returncode == 0, load.stderr + load.stdout
        ids = subprocess.run(base + ["images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert ids.returncode == 0, ids.stderr
        return ids.stdout


# ---------------------------------------------------------------------------------------------------------


def test_single_arch_builds_streams_and_loads(nix: Nix, gen_dir: Path, plain_registry, tmp_path: Path) -> None:
    reg = plain_registry
    info = reg.images["library/hello:oci"].single
    expr = docker2nix(reg, "library/hello:oci", gen_dir / "hello.nix")
    text = expr.read_text()
    assert f'imageDigest = "{info.manifest_digest}"' in text
    [result] = nix.build_paths(expr)
    assert sorted(os.listdir(result)) == ["compositeImage.sh", "image.json"]
    # the blobs are flat FODs named by digest, holding the exact registry bytes
    layers = nix.build_paths(expr, attr="imageLayers")
    assert [file_sha(p) for p in layers] == [d for d, _, _ in info.layers]
    assert [os.path.basename(p)[33:] for p in layers] == [f"docker-layer-{d[7:]}.tar.gz" for d, _, _ in info.layers]
    [config] = nix.build_paths(expr, attr="imageConfig")
    assert Path(config).read_bytes() == info.config_bytes
    assert "hello" not in os.path.basename(config)

    archive = stream_image(result, tmp_path / "hello.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    loaded = podman_load(archive, tmp_path / "podman")
    assert f"{info.config_digest[7:]} {reg.host}/library/hello:oci" in loaded

    # the archive file is the same bytes as the stream, and reproducible
    [tarfile] = nix.build_paths(expr, attr="dockerArchive")
    assert Path(tarfile).read_bytes() == archive.read_bytes()
    nix.build(expr, "--check", attr="dockerArchive")
    nix.build(expr, "--check")

    # the OCI layout keeps the registry's manifest digest
    [layout] = nix.build_paths(expr, attr="ociLayout")
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}"], capture_output=True, timeout=60)
    assert raw.returncode == 0, raw.stderr
    assert sha(raw.stdout) == info.manifest_digest
    nix.build(expr, "--check", attr="ociLayout")


def test_docker_schema2_image(nix: Nix, gen_dir: Path, plain_registry, tmp_path: Path) -> None:
    info = plain_registry.images["library/hello:v2s2"].single
    expr = docker2nix(plain_registry, "library/hello:v2s2", gen_dir / "hello-v2s2.nix", "--hash-format", "sri")
    assert 'hash = "sha256-' in expr.read_text()
    [result] = nix.build_paths(expr)
    archive = stream_image(result, tmp_path / "v2s2.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    [layout] = nix.build_paths(expr, attr="ociLayout")
    raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}"], capture_output=True, timeout=60)
    assert sha(raw.stdout) == info.manifest_digest


def test_shared_base_layer_is_one_store_path(nix: Nix, gen_dir: Path, plain_registry) -> None:
    hello = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello.nix")
    hello2 = docker2nix(plain_registry, "library/hello2:oci", gen_dir / "hello2.nix")
    l1 = nix.build_paths(hello, attr="imageLayers")
    l2 = nix.build_paths(hello2, attr="imageLayers")
    assert l1[0] == l2[0]  # the shared base layer
    assert l1[1] != l2[1]
    assert plain_registry.images["library/hello:oci"].single.layers[0][0] == \
        plain_registry.images["library/hello2:oci"].single.layers[0][0]


@pytest.mark.parametrize("image", ["library/multi:oci", "library/multi:list"])
def test_multi_arch_each_platform(nix: Nix, gen_dir: Path, plain_registry, tmp_path: Path, image: str) -> None:
    info = plain_registry.images[image]
    expr = docker2nix(plain_registry, image, gen_dir / f"multi-{image.rsplit(':', 1)[1]}.nix",
                      "--platform", "linux/amd64", "--platform", "linux/arm64/v8")
    assert f'indexDigest = "{info.digest}"' in expr.read_text()
    for system, platform in (("x86_64-linux", "linux/amd64"), ("aarch64-linux", "linux/arm64/v8")):
        pi = info.platforms[platform]
        assert nix.eval_json(expr, "x.imageDigest", system=system) == pi.manifest_digest
        assert nix.eval_json(expr, "x.platform", system=system) == platform
        [config] = nix.build_paths(expr, attr="imageConfig", system=system)
        assert file_sha(config) == pi.config_digest
        [result] = nix.build_paths(expr, system=system)
        archive = stream_image(result, tmp_path / f"{system}.tar")
        assert skopeo_config_digest(f"docker-archive:{archive}") == pi.config_digest
        [layout] = nix.build_paths(expr, attr="ociLayout", system=system)
        raw = subprocess.run(["skopeo", "inspect", "--raw", f"oci:{layout}"], capture_output=True, timeout=60)
        assert sha(raw.stdout) == pi.manifest_digest
    # a system the file does not cover: a clear evaluation error, not a wrong image
    proc = nix.build(expr, system="riscv64-linux", check=False)
    assert proc.returncode != 0
    assert "was pinned for x86_64-linux, aarch64-linux only, not for riscv64-linux" in proc.stderr
    # a Mac picks the Linux image of its CPU
    assert nix.eval_json(expr, "x.platform", system="aarch64-darwin") == "linux/arm64/v8"


def test_nested_repository_path(nix: Nix, gen_dir: Path, plain_registry, tmp_path: Path) -> None:
    info = plain_registry.images["a/b/c:nested"].single
    expr = docker2nix(plain_registry, "a/b/c:nested", gen_dir / "nested.nix")
    text = expr.read_text()
    assert 'repository = "a/b";' in text and 'imageName = "c";' in text
    [result] = nix.build_paths(expr)
    archive = stream_image(result, tmp_path / "nested.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(archive), "manifest.json"], capture_output=True,
                                         check=True).stdout)
    assert manifest[0]["RepoTags"] == [f"{plain_registry.host}/a/b/c:nested"]


def test_alt_image_name_names_the_loaded_image(nix: Nix, gen_dir: Path, plain_registry, tmp_path: Path) -> None:
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "alt.nix", "--altImageName", "my/hello")
    [result] = nix.build_paths(expr)
    assert result.endswith("-my-hello")
    archive = stream_image(result, tmp_path / "alt.tar")
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(archive), "manifest.json"], capture_output=True,
                                         check=True).stdout)
    assert manifest[0]["RepoTags"] == ["my/hello:oci"]


def test_wrong_hash_is_a_hash_mismatch(nix: Nix, gen_dir: Path, plain_registry) -> None:
    expr = docker2nix(plain_registry, "library/plain:uncompressed", gen_dir / "plain.nix")
    text = expr.read_text()
    hashes = re.findall(r'sha256 = "([0-9a-z]{52})"', text)
    assert len(hashes) == 2  # config + the uncompressed layer
    broken = gen_dir / "plain-broken.nix"
    broken.write_text(text.replace(hashes[1], hashes[0]))  # the layer claims the config's hash
    proc = nix.build(broken, attr="imageLayers", check=False)
    assert proc.returncode == 102, proc.stderr
    assert "hash mismatch in fixed-output derivation" in proc.stderr
    layer_digest = plain_registry.images["library/plain:uncompressed"].single.layers[0][0]
    sri = "sha256-" + base64.b64encode(bytes.fromhex(layer_digest[7:])).decode()
    assert re.search(r"got: +" + re.escape(sri), proc.stderr), proc.stderr  # Nix 2.8 prints SRI
    # and the right file builds (uncompressed layer: stored as served)
    [layer] = nix.build_paths(expr, attr="imageLayers")
    assert file_sha(layer) == plain_registry.images["library/plain:uncompressed"].single.layers[0][0]


def test_hocker_era_file_without_digests_still_builds(nix: Nix, gen_dir: Path, plain_registry, tmp_path) -> None:
    """A file in hocker 1.x's exact shape (no imageDigest/configDigest): the config is fetched by tag."""
    info = plain_registry.images["library/hello:oci"].single
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello.nix")
    old = "\n".join(line for line in expr.read_text().splitlines()
                    if "imageDigest = " not in line and "configDigest = " not in line and "platform = " not in line)
    old = old.replace("inherit tag registry repository imageName imageDigest;",
                      "inherit tag registry repository imageName;")
    hocker_file = gen_dir / "hocker-era.nix"
    hocker_file.write_text(old + "\n")
    [config] = nix.build_paths(hocker_file, attr="imageConfig")
    assert Path(config).read_bytes() == info.config_bytes
    assert os.path.basename(config).endswith("-library_hello_oci-config.json")  # hocker's store name
    [result] = nix.build_paths(hocker_file)
    archive = stream_image(result, tmp_path / "old.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    proc = nix.build(hocker_file, attr="ociLayout", check=False)
    assert proc.returncode != 0 and "needs the pinned manifest" in proc.stderr


def test_private_image_credentials(nix: Nix, gen_dir: Path, token_registry, tmp_path: Path) -> None:
    reg = token_registry
    info = reg.images[SECRET_IMAGE].single
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    # docker2nix itself needs them too (one manifest GET)
    expr = docker2nix(reg, SECRET_IMAGE, gen_dir / "secret.nix", env=creds)

    # without credentials: a clear failure from the builder (a fresh fetch: nothing is in this store yet)
    proc = nix.build(expr, attr="imageConfig", check=False)
    assert proc.returncode != 0
    assert auth_failure(proc.stderr), proc.stderr[-2000:]

    # with DOCKER_USER/DOCKER_PASS in nix-build's environment (impureEnvVars)
    [result] = nix.build_paths(expr, env=creds)
    archive = stream_image(result, tmp_path / "secret.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest

    # a credentials file named by NIX_PATH's DOCKER_CREDENTIALS (re-fetch with --check, no env vars)
    cred_file = tmp_path / "docker-creds"
    cred_file.write_text(f"DOCKER_USER={reg.username}\nDOCKER_PASS={reg.password}\n")
    layers_args = ["-I", f"DOCKER_CREDENTIALS={cred_file}"]
    nix.build(expr, "--check", *layers_args, attr="imageConfig")
    proc = nix.build(expr, "--check", attr="imageConfig", check=False)
    assert proc.returncode != 0 and auth_failure(proc.stderr)

    # no secret in any derivation of the store, and the file's contents never entered the store
    drvs = list(nix.store.glob("*.drv"))
    assert drvs
    for drv in drvs:
        data = drv.read_bytes()
        assert reg.password.encode() not in data, drv
    for path in nix.store.iterdir():
        if path.is_file() and path.stat().st_size < 1 << 20:
            assert reg.password.encode() not in path.read_bytes(), path


def test_docker2nix_reads_a_piped_hocker_manifest(nix: Nix, gen_dir: Path, plain_registry) -> None:
    """hocker's pipeline: hocker-manifest ... | docker2nix ...: same output as fetching."""
    reg = plain_registry
    manifest = subprocess.run([str(BIN / "hocker-manifest"), "--registry", reg.url, "library/hello", "oci"],
                              capture_output=True, env=base_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert manifest.returncode == 0, manifest.stderr
    piped = subprocess.run([str(BIN / "docker2nix"), "--registry", reg.url, "library/hello", "oci"],
                           input=manifest.stdout, capture_output=True, env=base_env(), timeout=60)
    assert piped.returncode == 0, piped.stderr
    fetched = docker2nix(reg, "library/hello:oci", gen_dir / "hello.nix")
    assert piped.stdout.decode() == fetched.read_text()


# -- overlay.nix, flake.nix and the NixOS module, as far as Nix can take them without nixpkgs -----------------


def test_every_nix_file_parses(nix: Nix) -> None:
    files = [REPO / "flake.nix", REPO / "overlay.nix", *sorted(NIX_DIR.glob("*.nix"))]
    assert len(files) >= 5
    for f in files:
        nix.run("nix-instantiate", "--parse", str(f))


def fake_nixpkgs_package(root: Path, ca_file: Optional[str]) -> dict[str, Path]:
    """Stand-ins laid out like the nixpkgs packages overlay.nix uses: hocker (bin/ and libexec/hocker-fetch/python
    as nix/package.nix installs them, running this venv), cacert (etc/ssl/certs/ca-bundle.crt) and bash."""
    hocker = root / "hocker"
    (hocker / "bin").mkdir(parents=True)
    for name in ("hocker-manifest", "hocker-config", "hocker-layer", "hocker-image", "docker2nix"):
        (hocker / "bin" / name).symlink_to(BIN / name)
    py = hocker / "libexec" / "hocker-fetch" / "python"
    py.parent.mkdir(parents=True)
    py.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    py.chmod(0o755)
    cacert = root / "cacert"
    (cacert / "etc" / "ssl" / "certs").mkdir(parents=True)
    if ca_file:
        shutil.copy(ca_file, cacert / "etc" / "ssl" / "certs" / "ca-bundle.crt")
    bash = root / "bash"
    (bash / "bin").mkdir(parents=True)
    (bash / "bin" / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
    return {"hocker": hocker, "cacert": cacert, "bash": bash}


def test_overlay_fetchers_build_from_a_tls_basic_auth_registry(nix: Nix, gen_dir: Path, basic_registry,
                                                              tmp_path: Path) -> None:
    """overlay.nix applied to a stub package set (nixpkgs is not available offline): its fetchers use the
    package's libexec python, bash, and cacert's bundle as SSL_CERT_FILE (here the test CA), and the image builds
    from the TLS + htpasswd registry with DOCKER_USER/DOCKER_PASS."""
    reg = basic_registry
    info = reg.images["library/hello:oci"].single
    fake = fake_nixpkgs_package(tmp_path / "pkgs", reg.ca_file)
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    repo, tag = "library/hello", "oci"
    gen = subprocess.run([str(BIN / "docker2nix"), "--registry", reg.url, "--ca-file", reg.ca_file, repo, tag],
                         capture_output=True, text=True, env=base_env(**creds), timeout=60, stdin=subprocess.DEVNULL)
    assert gen.returncode == 0, gen.stderr
    expr = gen_dir / "basic.nix"
    expr.write_text(gen.stdout)
    overlaid = tmp_path / "overlaid.nix"
    overlaid.write_text(f"""
let
  prev = {{
    callPackage = path: args: assert baseNameOf path == "package.nix"; "{fake['hocker']}";
    cacert = "{fake['cacert']}";
    bash = "{fake['bash']}";
    stdenv.hostPlatform.system = builtins.currentSystem;
  }};
  final = prev // (import {REPO}/overlay.nix final prev) // {{ buildPackages = final; }};
in
  # callPackage ./basic.nix {{ }}
  import {expr} {{ inherit (final) fetchDockerConfig fetchDockerLayer fetchdocker; }}
""")
    drv = nix.run("nix-instantiate", str(overlaid)).stdout.strip()
    shown = nix.run("nix", "show-derivation", "-r", drv).stdout
    assert f"{fake['hocker']}/libexec/hocker-fetch/python" in shown
    assert f"{fake['bash']}/bin/bash" in shown
    assert f"{fake['cacert']}/etc/ssl/certs/ca-bundle.crt" in shown
    assert reg.password not in shown
    result = nix.run("nix-build", "--no-out-link", str(overlaid), env=creds).stdout.strip()
    # The blobs may already be in the store (same digests as the plain registry's): --check fetches them again.
    fail = nix.run("nix-build", "--no-out-link", str(overlaid), "-A", "imageConfig", "--check", check=False)
    assert fail.returncode != 0 and auth_failure(fail.stderr), fail.stderr
    nix.run("nix-build", "--no-out-link", str(overlaid), "-A", "imageConfig", "--check", env=creds)
    assert Path(result, "compositeImage.sh").read_text().startswith(f"#!{fake['bash']}/bin/bash\n")
    archive = stream_image(result, tmp_path / "basic.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest


def test_flake_outputs_evaluate_with_a_stub_nixpkgs(nix: Nix, plain_registry, tmp_path: Path) -> None:
    """flake.nix offline: nixpkgs overridden by a stub flake whose default.nix applies the overlays to a stub
    package set. lib.mkFetchers / lib.fetchersFor / packages / apps / overlays / nixosModules evaluate, and a
    layer fetched through lib.mkFetchers really builds."""
    src = tmp_path / "flake"
    src.mkdir()
    for name in ("flake.nix", "overlay.nix", "setup.py", "setup.cfg"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    shutil.copytree(NIX_DIR, src / "nix")
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    stub = tmp_path / "nixpkgs-stub"
    stub.mkdir()
    (stub / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    (stub / "default.nix").write_text(f"""
{{ system, overlays ? [ ] }}:
let
  base = {{
    callPackage = path: args: "{fake['hocker']}";
    cacert = "{fake['cacert']}";
    bash = "{fake['bash']}";
    stdenv.hostPlatform.system = system;
  }};
  final = builtins.foldl' (acc: o: acc // o final acc) base overlays // {{ buildPackages = final; }};
in final
""")
    flake = f"path:{src}"
    common = ["--override-input", "nixpkgs", f"path:{stub}", "--no-write-lock-file"]
    info = plain_registry.images["library/hello:oci"].single
    layer_hex = info.layers[0][0][7:]
    drv = nix.run("nix", "eval", "--raw", f"{flake}#lib", *common, "--apply",
                  f'lib: ((lib.mkFetchers {{ hocker = "{VENV}"; system = "x86_64-linux"; }}).fetchDockerLayer '
                  f'{{ registry = "{plain_registry.url}/v2/"; repository = "library"; imageName = "hello"; '
                  f'layerDigest = "{layer_hex}"; }}).drvPath').stdout.strip()
    assert drv.endswith(f"docker-layer-{layer_hex}.tar.gz.drv")
    out = nix.run("nix-store", "--realise", drv).stdout.strip()
    assert file_sha(out) == info.layers[0][0]
    # through the overlay of the flake's own package set
    fetchers = nix.run("nix", "eval", "--json", f"{flake}#lib", *common, "--apply",
                       'lib: builtins.attrNames (lib.fetchersFor "x86_64-linux")').stdout
    assert json.loads(fetchers) == ["fetchDockerConfig", "fetchDockerLayer", "fetchDockerManifest", "fetchdocker"]
    package = nix.run("nix", "eval", "--raw", f"{flake}#packages.x86_64-linux.default", *common).stdout
    assert package == str(fake["hocker"])
    assert nix.run("nix", "eval", "--raw", f"{flake}#apps.aarch64-linux.default.program", *common).stdout \
        == f"{fake['hocker']}/bin/docker2nix"
    kinds = nix.run("nix", "eval", "--json", f"{flake}#overlays.default", *common, "--apply",
                    "o: builtins.isFunction o").stdout
    assert kinds.strip() == "true"
    module = nix.run("nix", "eval", "--json", f"{flake}#nixosModules.default", *common, "--apply",
                     "m: builtins.attrNames (m { })").stdout
    assert json.loads(module) == ["imports", "nixpkgs"]
