"""docker2nix output built for real by Nix 2.8 against the real registry fixtures.

One throw-away Nix store for the whole module (NIX_STORE_DIR/NIX_STATE_DIR under tmp, its own NIX_CONF_DIR
with `substituters =` and `sandbox = false`): every fixed-output derivation really runs its builder (hocker-layer
/ hocker-config from this project's virtualenv) against the registry, and nothing leaks into /nix/store.
"""
from __future__ import annotations

import base64
import hashlib
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
    NIXPKGS_LIB,
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

from hocker_fetch.digest import nix_base32, nix_base32_decode, to_nix_base32
from hocker_fetch.errors import UsageError

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
    """A file in hocker 1.x's exact shape (no imageDigest/configDigest) builds under hocker's store names, loads
    under the name nixpkgs' fetchdocker gave it (registry URI without scheme + repository: what configurations
    `docker run`), and its config is fetched by digest (its sha256 is the config digest), never by tag."""
    reg = plain_registry
    info = reg.images["library/hello:oci"].single
    expr = docker2nix(reg, "library/hello:oci", gen_dir / "hello.nix")
    old = "\n".join(line for line in expr.read_text().splitlines()
                    if "imageDigest = " not in line and "configDigest = " not in line and "platform = " not in line)
    old = old.replace("inherit tag registry repository imageName imageDigest;",
                      "inherit tag registry repository imageName;")
    assert "Digest" not in old.replace("layerDigest", "")
    hocker_file = gen_dir / "hocker-era.nix"
    hocker_file.write_text(old + "\n")
    hocker_name = f"{reg.host}/v2/library/hello:oci"  # nixpkgs: "${stripScheme registry}/${repository}/..."
    assert 'registry = "http://' + reg.host + '/v2/";' in old
    assert nix.eval_json(hocker_file, "[ x.image x.configDigest x.imageConfig.configDigest ]") == \
        [hocker_name, info.config_digest, info.config_digest]

    mark = reg.log_file.stat().st_size
    [config] = nix.build_paths(hocker_file, attr="imageConfig")
    nix.build(hocker_file, "--check", attr="imageConfig")  # a real fetch even if an earlier run stored it
    requests = re.findall(r'"(?:GET|HEAD) (\S+) HTTP', reg.log_file.read_bytes()[mark:].decode(errors="replace"))
    assert f"/v2/library/hello/blobs/{info.config_digest}" in requests, requests
    assert not [r for r in requests if "/manifests/" in r], requests
    assert Path(config).read_bytes() == info.config_bytes
    assert os.path.basename(config).endswith("-library_hello_oci-config.json")  # hocker's store name

    [result] = nix.build_paths(hocker_file)
    archive = stream_image(result, tmp_path / "old.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(archive), "manifest.json"], capture_output=True,
                                         check=True).stdout)
    assert manifest[0]["RepoTags"] == [hocker_name]
    loaded = podman_load(archive, tmp_path / "podman")
    assert f"{info.config_digest[7:]} {hocker_name}" in loaded
    proc = nix.build(hocker_file, attr="ociLayout", check=False)
    assert proc.returncode != 0 and "needs the pinned manifest" in proc.stderr

    # the same file with an SRI hash (hash = "sha256-..."): decoded too
    sri_file = gen_dir / "hocker-era-sri.nix"
    sri = "sha256-" + base64.b64encode(bytes.fromhex(info.config_digest[7:])).decode()
    sri_file.write_text(old.replace(f'sha256 = "{to_nix_base32(info.config_digest)}"', f'hash = "{sri}"') + "\n")
    assert f'hash = "{sri}"' in sri_file.read_text()
    assert nix.eval_json(sri_file, "x.imageConfig.configDigest") == info.config_digest


def test_nix_decodes_sha256_hashes_like_digest_py(nix: Nix) -> None:
    """nix/default.nix's pure-Nix decoder (nixpkgs' lib has none) agrees with hocker_fetch.digest on Nix base32,
    SRI base64, hex and `sha256:` forms, and rejects what is not a sha256 hash."""
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(60)] + [bytes(32), b"\xff" * 32]
    forms, expected = [], []
    for d in digests:
        for form in (nix_base32(d), "sha256-" + base64.b64encode(d).decode(), d.hex(), "sha256:" + nix_base32(d)):
            forms.append(form)
            expected.append(d.hex())
    bad = ["z" * 52, "2" + "0" * 51, "0" * 51, "e" * 52, "sha256-" + "A" * 42 + "B=", "sha256-" + "A" * 44,
           "g" * 64, "md5:" + "0" * 32, ""]
    got = json.loads(nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr",
                             f'map (import {NIX_DIR}/default.nix {{ hocker = "/x"; system = "x"; }}).sha256ToHex '
                             f"(builtins.fromJSON ''{json.dumps(forms + bad)}'')").stdout)
    assert got == expected + [None] * len(bad)
    for text in bad[:4]:  # the Python decoder refuses the base32 ones as well
        with pytest.raises(UsageError):
            nix_base32_decode(text)


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


def stub_nixpkgs(root: Path, host: dict[str, Path], build: Optional[dict[str, Path]] = None) -> Path:
    """A stand-in for nixpkgs (none offline): a directory with default.nix (`import stub {{ system; overlays;
    crossSystem; }}`) and a flake.nix, built on nixpkgs' real lib (callPackageWith, makeOverridable,
    cleanSourceWith). python3Packages.buildPythonApplication returns a derivation-like set whose outPath is the
    fake package (`host`, or `build` for buildPackages when cross-compiling), with its passthru and, as
    `stubArgs`, the arguments package.nix gave it."""
    build = build or host
    root.mkdir(parents=True)
    (root / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    shutil.copytree(NIXPKGS_LIB, root / "lib")  # inside the stub: a flake input may not import paths outside it
    (root / "default.nix").write_text(f"""
{{ system ? builtins.currentSystem, overlays ? [ ], crossSystem ? null, config ? {{ }} }}:
let
  lib = import ./lib;
  hostSystem = if crossSystem == null then system else crossSystem.system;
  mkSet = sys: fake: buildPackages: self: {{
    inherit lib buildPackages;
  }} // lib.optionalAttrs (config.allowAliases or true) {{
    # nixpkgs' deprecated alias: warns when evaluated (here: fails), absent with allowAliases = false
    system = throw "the deprecated pkgs.system alias was evaluated";
  }} // {{
    callPackage = lib.callPackageWith self;
    stdenv.hostPlatform.system = sys;
    cacert = "${{fake.cacert}}";
    bash = "${{fake.bash}}";
    makeWrapper = "/stub/makeWrapper";
    python3Packages = {{
      python = {{ interpreter = "/stub/bin/python3"; sitePackages = "lib/python3/site-packages"; }};
      makePythonPath = ps: "/stub/pythonpath";
      setuptools = "/stub/setuptools"; requests = "/stub/requests"; jinja2 = "/stub/jinja2"; tomli = "/stub/tomli";
      cryptography = "/stub/cryptography";
      pythonOlder = version: builtins.compareVersions "3.11" version < 0;  # the stub's python is 3.11
      buildPythonApplication = attrs: (attrs.passthru or {{ }}) // {{
        type = "derivation"; outPath = "${{fake.hocker}}"; name = "${{attrs.pname}}-${{attrs.version}}"; system = sys;
        inherit (attrs) pname version meta; stubArgs = attrs;
      }};
    }};
  }};
  withOverlays = base: lib.fix (self: builtins.foldl' (acc: o: acc // o self acc) (base self) overlays);
  buildSet = withOverlays (mkSet system {{
    hocker = "{build['hocker']}"; cacert = "{build['cacert']}"; bash = "{build['bash']}"; }} buildSet);
  hostSet = withOverlays (mkSet hostSystem {{
    hocker = "{host['hocker']}"; cacert = "{host['cacert']}"; bash = "{host['bash']}"; }} buildSet);
in
if crossSystem == null then buildSet else hostSet
""")
    return root


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
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)
    overlaid.write_text(f"""
let
  final = import {stub} {{ overlays = [ (import {REPO}/overlay.nix) ]; }};
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
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)
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


def flake_copy(tmp_path: Path, fake: dict[str, Path]) -> tuple[str, Path]:
    """The flake's files copied to tmp, locked against the stub nixpkgs (so getFlake works offline too)."""
    src = tmp_path / "flake-copy"
    src.mkdir()
    for name in ("flake.nix", "overlay.nix", "setup.py", "setup.cfg"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(NIX_DIR, src / "nix")
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub-copy", fake)
    return f"path:{src}", stub


def test_mkfetchers_takes_the_package_and_its_system(nix: Nix, gen_dir: Path, plain_registry,
                                                    tmp_path: Path) -> None:
    """Issue 9, defect 4: `lib.mkFetchers { hocker = packages.<system>.default; }` builds (the package has its
    interpreter under libexec/, not bin/python: passthru.hockerFetchPython names it) and takes the package's
    system; with a virtualenv path and no `system`, pure evaluation stops with a clear message."""
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    assert not (fake["hocker"] / "bin" / "python").exists()
    flake, stub = flake_copy(tmp_path, fake)
    src = flake[len("path:"):]
    nix.run("nix", "flake", "lock", flake, "--override-input", "nixpkgs", f"path:{stub}")
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello-mk.nix")
    info = plain_registry.images["library/hello:oci"].single

    def image(system: str) -> str:
        return (f'let f = (builtins.getFlake "path:{src}").lib.mkFetchers '
                f'{{ hocker = (builtins.getFlake "path:{src}").packages.{system}.default; }}; '
                f'in import {expr} {{ inherit (f) fetchDockerConfig fetchDockerLayer fetchdocker; }}')

    # the system comes from the package: an aarch64-linux package gives aarch64-linux builders
    systems = nix.run("nix", "eval", "--impure", "--json", "--expr",
                      f'let i = {image("aarch64-linux")}; in [ i.system i.imageConfig.system i.dockerArchive.system ]')
    assert json.loads(systems.stdout) == ["aarch64-linux"] * 3
    python = nix.run("nix", "eval", "--impure", "--raw", "--expr", f'({image("x86_64-linux")}).drvAttrs.python')
    assert python.stdout == f"{fake['hocker']}/libexec/hocker-fetch/python"
    built = nix.run("nix", "build", "--impure", "--no-link", "--json", "--expr", image("x86_64-linux")).stdout
    result = json.loads(built)[0]["outputs"]["out"]
    archive = stream_image(result, tmp_path / "mk.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest

    # a virtualenv (a path) without `system`, evaluated purely: our message, not "attribute currentSystem missing"
    proc = nix.run("nix", "eval", "--raw", f"{flake}#lib", "--apply",
                   f'lib: ((lib.mkFetchers {{ hocker = "{VENV}"; }}).fetchDockerLayer {{ imageName = "x"; '
                   f'layerDigest = "{"0" * 64}"; }}).drvPath', check=False)
    assert proc.returncode != 0
    assert "hocker-fetch: pass `system`" in proc.stderr and "pure evaluation" in proc.stderr, proc.stderr


def test_fetcher_api_like_nixpkgs(nix: Nix, tmp_path: Path) -> None:
    """Issue 9, defect 9: `hash` and `sha256` together throw (as nixpkgs' fetchers do); `name` sets the store name
    (as for nixpkgs' fetchDockerLayer/Config); the overlay's fetchers have `.override` (lib.makeOverridable)."""
    fetchers = f'(import {NIX_DIR}/default.nix {{ hocker = "{VENV}"; system = "x86_64-linux"; }})'
    hex_ = "1" * 64
    b32 = "0" * 52
    for fn, args in (("fetchDockerLayer", f'layerDigest = "{hex_}";'),
                     ("fetchDockerConfig", f'configDigest = "sha256:{hex_}";'),
                     ("fetchDockerConfig", 'tag = "t";')):
        proc = nix.run("nix-instantiate", "--eval", "--expr",
                       f'({fetchers}.{fn} {{ imageName = "x"; {args} sha256 = "{b32}"; '
                       f'hash = "sha256-{"A" * 43}="; }}).drvPath', check=False)
        assert proc.returncode != 0 and "give either hash or sha256, not both" in proc.stderr, proc.stderr
        named = nix.run("nix-instantiate", "--eval", "--json", "--expr",
                        f'({fetchers}.{fn} {{ imageName = "x"; {args} name = "my-blob"; }}).name')
        assert json.loads(named.stdout) == "my-blob"
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)
    overridden = nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", f"""
let
  pkgs = import {stub} {{ overlays = [ (import {REPO}/overlay.nix) ]; }};
  layer = pkgs.fetchDockerLayer {{ imageName = "x"; layerDigest = "{hex_}"; }};
in [ layer.name (layer.override {{ layerDigest = "{"2" * 64}"; }}).name
     (layer.override {{ name = "renamed"; }}).outPath ]""")
    first, second, renamed = json.loads(overridden.stdout)
    assert (first, second) == (f"docker-layer-{hex_}.tar.gz", f"docker-layer-{'2' * 64}.tar.gz")
    assert renamed.endswith("-renamed")


def test_long_names_fit_the_store_name_limit(nix: Nix) -> None:
    """Issue 9, defect 11: a long repository and tag (`docker-image-<name>-<tag>.tar` over 211 characters)
    still instantiate: the name is shortened around a hash of the whole, keeping its suffix."""
    fetchers = f'(import {NIX_DIR}/default.nix {{ hocker = "{VENV}"; system = "x86_64-linux"; }})'
    name, tag = "n" * 120, "t" * 128
    names = {}
    for variant in ("a", "b"):
        proc = nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", f"""
let
  f = {fetchers};
  i = f.fetchdocker {{
    name = "{name}{variant}"; registry = "http://127.0.0.1:5000/v2/"; repository = "{"r" * 100}";
    imageName = "{name}"; tag = "{tag}"; imageDigest = "sha256:{"3" * 64}";
    imageConfig = f.fetchDockerConfig {{ repository = "{"r" * 100}"; imageName = "{name}"; tag = "{tag}";
      sha256 = "{"0" * 52}"; }};
    imageLayers = [ ];
  }};
in map (d: builtins.baseNameOf d.drvPath) [ i i.dockerArchive i.ociLayout i.imageConfig ]""")
        names[variant] = json.loads(proc.stdout)
    for drvs in names.values():
        for drv in drvs:
            assert len(drv) - 33 <= 211, drv
        assert drvs[1].startswith("docker-image-", 33) and drvs[1].endswith(".tar.drv")
        assert drvs[2][33:].startswith("oci-image-")
        assert drvs[3].endswith("-config.json.drv")
    assert names["a"][1] != names["b"][1] and names["a"][2] != names["b"][2]


def test_package_nix_current_style_one_version_and_clean_source(nix: Nix, tmp_path: Path) -> None:
    """Issue 9, defect 10: nix/package.nix in current nixpkgs style (pyproject, build-system, dependencies), the
    version read from setup.cfg (the one place: hocker_fetch reads its installed metadata), meta.license the
    LICENSE file's (Apache-2.0), and a source without __pycache__, editor files or build/."""
    import configparser

    import hocker_fetch

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    version = cfg.get("metadata", "version")
    assert hocker_fetch.__version__ == version
    assert not re.search(r"\d+\.\d+\.\d+", (REPO / "hocker_fetch" / "__init__.py").read_text())
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()

    copy = tmp_path / "repo"
    copy.mkdir()
    for name in ("flake.nix", "overlay.nix", "setup.py", "setup.cfg", "README.md", "LICENSE"):
        shutil.copy(REPO / name, copy / name)
    shutil.copytree(NIX_DIR, copy / "nix")
    shutil.copytree(REPO / "hocker_fetch", copy / "hocker_fetch", ignore=shutil.ignore_patterns("__pycache__"))
    junk = ["hocker_fetch/__pycache__/cli.cpython-311.pyc", "hocker_fetch/cli.py~", "hocker_fetch/.cli.py.swp",
            "hocker_fetch/#cli.py#", "hocker_fetch/.#cli.py", "build/lib/hocker_fetch/cli.py",
            "hocker_fetch/templates/__pycache__/x.pyc", "tests/test_x.py", "result"]
    for rel in junk:
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        (copy / rel).write_text("junk\n")
    (copy / "setup.cfg").write_text((REPO / "setup.cfg").read_text().replace(f"version = {version}\n",
                                                                             "version = 9.8.7\n"))
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)
    pkg = f"(import {stub} {{ overlays = [ (import {copy}/overlay.nix) ]; }}).hocker"
    attrs = json.loads(nix.run("nix", "eval", "--impure", "--json", "--expr", f"""
let p = {pkg}; a = p.stubArgs; in {{
  inherit (p) version name; inherit (a) pyproject build-system dependencies;
  format = a.format or null; propagated = a.propagatedBuildInputs or null;
  license = p.meta.license.spdxId; python = p.hockerFetchPython;
}}""").stdout)
    assert attrs == {"version": "9.8.7", "name": "hocker-fetch-9.8.7", "pyproject": True,
                     "build-system": ["/stub/setuptools"], "dependencies": ["/stub/requests", "/stub/jinja2",
                                                                       "/stub/cryptography"],
                     "format": None, "propagated": None, "license": "Apache-2.0",
                     "python": "libexec/hocker-fetch/python"}
    # an older python gets tomli for registries.conf (tomllib is 3.11's)
    older = nix.run("nix", "eval", "--impure", "--json", "--expr", f"""
let stub = import {stub} {{ }}; in (stub.callPackage {copy}/nix/package.nix {{
  python3Packages = stub.python3Packages // {{ pythonOlder = version: true; }};
}}).stubArgs.dependencies""").stdout
    assert json.loads(older) == ["/stub/requests", "/stub/jinja2", "/stub/cryptography", "/stub/tomli"]
    src = nix.run("nix", "eval", "--impure", "--raw", "--expr", f"({pkg}).stubArgs.src.outPath").stdout
    files = sorted(str(p.relative_to(src)) for p in Path(src).rglob("*"))
    assert "hocker_fetch/cli.py" in files and "setup.cfg" in files and "LICENSE" in files
    assert "hocker_fetch/templates/image.nix.j2" in files
    for rel in junk:
        assert rel not in files, rel
    assert not [f for f in files if "__pycache__" in f or f.endswith(("~", ".swp", "#")) or f.startswith(
        ("build", "tests", "nix"))], files


def test_impure_nix_ssl_cert_file_wins_over_cacert(nix: Nix, basic_registry, tmp_path: Path) -> None:
    """Issue 9, defect 8: nixpkgs' convention, NIX_SSL_CERT_FILE from nix-build's (or the daemon's) environment
    (a TLS-intercepting proxy's CA) wins over cacert's bundle in the fixed-output builders. Here cacert's bundle
    is the system one, which does not trust the test registry's CA; NIX_SSL_CERT_FILE names that CA. The CLI
    outside Nix keeps its documented order (SSL_CERT_FILE first)."""
    reg = basic_registry
    info = reg.images["library/hello:oci"].single
    wrong_bundle = "/etc/ssl/certs/ca-certificates.crt"
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    expr = tmp_path / "layer.nix"
    expr.write_text(f"""
(import {NIX_DIR}/default.nix {{ hocker = "{VENV}"; sslCertFile = "{wrong_bundle}"; }}).fetchDockerLayer {{
  registry = "{reg.url}/v2/"; repository = "library"; imageName = "hello";
  layerDigest = "{info.layers[0][0]}";
  name = "nix-ssl-cert-file-{tmp_path.name}";  # a store path of its own: really fetched
}}
""")
    untrusted = nix.run("nix-build", "--no-out-link", str(expr), env=creds, check=False)
    assert untrusted.returncode != 0 and "certificate" in untrusted.stderr.lower(), untrusted.stderr[-2000:]
    out = nix.run("nix-build", "--no-out-link", str(expr), env={**creds, "NIX_SSL_CERT_FILE": reg.ca_file})
    assert file_sha(out.stdout.strip()) == info.layers[0][0]

    # outside Nix: SSL_CERT_FILE (here the wrong bundle) still comes before NIX_SSL_CERT_FILE
    cli = subprocess.run([str(BIN / "hocker-manifest"), "--registry", reg.url, "library/hello", "oci"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                         env=base_env(**creds, SSL_CERT_FILE=wrong_bundle, NIX_SSL_CERT_FILE=reg.ca_file))
    assert cli.returncode != 0 and "certificate" in cli.stderr.lower(), cli.stderr


def test_multi_platform_file_follows_stdenv_under_callpackage(nix: Nix, gen_dir: Path, plain_registry,
                                                             tmp_path: Path) -> None:
    """Issue 9, defect 5: a multi-platform file under callPackage takes the platform from
    stdenv.hostPlatform.system, never evaluating nixpkgs' deprecated `system` alias (it warns; the stub throws),
    and an aarch64 host package set evaluated on x86_64 gets the arm64 image also with allowAliases = false.
    Without nixpkgs (tests/support/nixenv.py's build.nix) `system` still chooses."""
    info = plain_registry.images["library/multi:oci"]
    expr = docker2nix(plain_registry, "library/multi:oci", gen_dir / "multi-callpackage.nix",
                      "--platform", "linux/amd64", "--platform", "linux/arm64/v8")
    assert "stdenv ? null" in expr.read_text()
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)

    def platform(args: str) -> list[str]:
        out = nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", f"""
let i = (import {stub} {{ overlays = [ (import {REPO}/overlay.nix) ]; {args} }}).callPackage {expr} {{ }};
in [ i.platform i.imageDigest ]""")
        return json.loads(out.stdout)

    amd64, arm64 = info.platforms["linux/amd64"], info.platforms["linux/arm64/v8"]
    assert platform('system = "x86_64-linux";') == ["linux/amd64", amd64.manifest_digest]
    assert platform('system = "x86_64-linux"; crossSystem = { system = "aarch64-linux"; };') == \
        ["linux/arm64/v8", arm64.manifest_digest]
    assert platform('system = "x86_64-linux"; crossSystem = { system = "aarch64-linux"; }; '
                    'config.allowAliases = false;') == ["linux/arm64/v8", arm64.manifest_digest]
    # without nixpkgs: `system` (what build.nix passes), or the current system
    assert nix.eval_json(expr, "x.platform", system="aarch64-linux") == "linux/arm64/v8"
    assert nix.eval_json(expr, "x.platform", system="x86_64-linux") == "linux/amd64"


def test_cross_compiled_composite_runs_the_host_packages(nix: Nix, gen_dir: Path, plain_registry,
                                                        tmp_path: Path) -> None:
    """Issue 9, defect 7: cross-compiling (a stub nixpkgs whose buildPackages differ from the host set), the
    fixed-output builders and the image builders run buildPackages' hocker and bash, but compositeImage.sh, which
    runs on the target at boot, has the host set's bash as its shebang and the host's interpreter."""
    info = plain_registry.images["library/hello:oci"].single
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello-cross.nix")
    host = fake_nixpkgs_package(tmp_path / "host", None)
    build = fake_nixpkgs_package(tmp_path / "build", None)
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", host, build)
    wrapper = tmp_path / "cross.nix"
    wrapper.write_text(f"""
(import {stub} {{
  overlays = [ (import {REPO}/overlay.nix) ];
  crossSystem = {{ system = "aarch64-linux"; }};
}}).callPackage {expr} {{ }}
""")
    drv = nix.run("nix-instantiate", str(wrapper)).stdout.strip()
    shown = json.loads(nix.run("nix", "show-derivation", "-r", drv).stdout)
    composite = shown[drv]["env"]
    assert composite["python"] == f"{host['hocker']}/libexec/hocker-fetch/python"
    assert composite["shell"] == f"{host['bash']}/bin/bash"
    assert composite["builderPython"] == f"{build['hocker']}/libexec/hocker-fetch/python"
    assert shown[drv]["builder"] == f"{build['bash']}/bin/bash"
    fods = [d for d in shown.values() if "outputHash" in d["env"]]
    assert len(fods) == 1 + len(info.layers)
    for d in fods:
        assert d["builder"] == f"{build['bash']}/bin/bash"
        # blobs run the build hocker's interpreter on hocker_fetch.fetchblob, the rest its console scripts
        assert any(a.startswith((f"{build['hocker']}/bin/hocker-", f"{build['hocker']}/libexec/hocker-fetch/python"))
                   for a in d["args"]), d["args"]
        assert str(host["hocker"]) not in json.dumps(d)
    archive_drv = nix.run("nix-instantiate", str(wrapper), "-A", "dockerArchive").stdout.strip()
    assert str(host["hocker"]) not in Path(archive_drv).read_text()  # only compositeImage.sh needs the host's

    result = nix.run("nix-build", "--no-out-link", str(wrapper)).stdout.strip()
    script = Path(result, "compositeImage.sh").read_text()
    assert script.startswith(f"#!{host['bash']}/bin/bash\n")
    assert f"{host['hocker']}/libexec/hocker-fetch/python" in script and str(build["hocker"]) not in script
    archive = stream_image(result, tmp_path / "cross.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest


def test_package_attribute_is_hocker_fetch_with_hocker_as_alias(nix: Nix, gen_dir: Path, plain_registry,
                                                               tmp_path: Path) -> None:
    """Issue 9, defect 13: the overlay's package is `hocker-fetch` (nixpkgs' `hocker` is the Haskell original);
    `hocker` stays as an alias, and the fetchers use `hocker-fetch`, so an overlay that puts nixpkgs' hocker back
    does not change them. The flake's packages have both names."""
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello-names.nix")
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)
    out = nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", f"""
let
  pkgs = import {stub} {{ overlays = [ (import {REPO}/overlay.nix) ]; }};
  restored = import {stub} {{
    overlays = [ (import {REPO}/overlay.nix) (final: prev: {{ hocker = throw "nixpkgs' Haskell hocker"; }}) ];
  }};
in [ pkgs.hocker-fetch.outPath pkgs.hocker.outPath pkgs.hocker-fetch.pname
     (restored.callPackage {expr} {{ }}).drvPath ]""")
    package, alias, pname, drv = json.loads(out.stdout)
    assert package == alias == str(fake["hocker"]) and pname == "hocker-fetch"
    assert drv.endswith("-hello.drv")
    flake, stub2 = flake_copy(tmp_path, fake)
    names = nix.run("nix", "eval", "--json", f"{flake}#packages.x86_64-linux", "--override-input", "nixpkgs",
                    f"path:{stub2}", "--no-write-lock-file", "--apply", "p: builtins.attrNames p").stdout
    assert json.loads(names) == ["default", "hocker", "hocker-fetch"]


def test_a_consumer_flake_builds_public_and_private_images_in_pure_evaluation(
        plain_registry, token_registry, tmp_path: Path) -> None:
    """Issue 9: a flake that takes this project as an input (its nixpkgs following the consumer's, here the stub)
    builds docker2nix files with `nix build`, pure evaluation (no --impure): a public image, and a private one
    whose credentials come from the builder's environment (impureEnvVars; single-user Nix: nix's own). No
    secret reaches the flake, its lock file or the .drv. A store of its own: the module's store may already
    hold the private blobs (same digests), which would make the anonymous build succeed."""
    nix = Nix(tmp_path / "nix")
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    project, stub = flake_copy(tmp_path, fake)
    reg = token_registry
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    docker2nix(plain_registry, "library/hello:oci", consumer / "public.nix")
    docker2nix(reg, SECRET_IMAGE, consumer / "private.nix", env=creds)
    (consumer / "flake.nix").write_text(f"""{{
  inputs.nixpkgs.url = "path:{stub}";
  inputs.hocker-fetch.url = "{project}";
  inputs.hocker-fetch.inputs.nixpkgs.follows = "nixpkgs";
  outputs = {{ self, nixpkgs, hocker-fetch }}:
    let pkgs = import nixpkgs {{ system = "x86_64-linux"; overlays = [ hocker-fetch.overlays.default ]; }};
    in {{
      packages.x86_64-linux.public = pkgs.callPackage ./public.nix {{ }};
      packages.x86_64-linux.private = pkgs.callPackage ./private.nix {{ }};
    }};
}}
""")
    flake = f"path:{consumer}"
    nix.run("nix", "flake", "lock", flake)
    public = json.loads(nix.run("nix", "build", "--no-link", "--json", f"{flake}#public").stdout)[0]["outputs"]["out"]
    assert skopeo_config_digest(f"docker-archive:{stream_image(public, tmp_path / 'pub.tar')}") \
        == plain_registry.images["library/hello:oci"].single.config_digest

    anonymous = nix.run("nix", "build", "--no-link", f"{flake}#private", check=False)
    assert anonymous.returncode != 0 and auth_failure(anonymous.stderr), anonymous.stderr[-2000:]
    built = nix.run("nix", "build", "--no-link", "--json", f"{flake}#private", env=creds).stdout
    private = json.loads(built)[0]["outputs"]["out"]
    assert skopeo_config_digest(f"docker-archive:{stream_image(private, tmp_path / 'priv.tar')}") \
        == reg.images[SECRET_IMAGE].single.config_digest
    drvs = nix.run("nix", "path-info", "--derivation", "-r", f"{flake}#private").stdout.split()
    assert drvs and all(reg.password not in Path(d).read_text() for d in drvs if d.endswith(".drv"))
    assert reg.password not in (consumer / "flake.lock").read_text()


def test_foreign_layers_ask_the_builder_to_say_so(nix: Nix) -> None:
    """Issue 10, item 7: fetchDockerLayer { foreign = true; } runs hocker-layer --foreign, whose not-found message
    names the layer foreign (tests/test_shapes.py); other layers' derivations are unchanged."""
    fetchers = f'(import {NIX_DIR}/default.nix {{ hocker = "{VENV}"; system = "x86_64-linux"; }})'
    layer = f'imageName = "x"; layerDigest = "{"1" * 64}";'
    args = json.loads(nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr",
                              f"[ ({fetchers}.fetchDockerLayer {{ {layer} foreign = true; }}).drvAttrs.args "
                              f"({fetchers}.fetchDockerLayer {{ {layer} }}).drvAttrs.args ]").stdout)
    assert "--foreign" in args[0] and "--foreign" not in args[1]
    assert [a for a in args[0] if a != "--foreign"] == args[1]
