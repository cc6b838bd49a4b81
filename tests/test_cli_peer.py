"""The four tools against the real registry in its three auth setups, with skopeo as the peer.

Bytes must equal what `skopeo inspect --raw` / `--config` / `copy dir:` give; archives must load with
skopeo and podman, and the loaded image ID must be the registry's config digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from support.clitools import cred_env, registry_args, run
from support.images import run_skopeo, skopeo_args

SINGLE = ["library/hello:oci", "library/hello:v2s2", "a/b/c:nested", "library/plain:uncompressed"]
MULTI = ["library/multi:oci", "library/multi:list"]


def split(ref: str) -> tuple[str, str]:
    repo, _, tag = ref.rpartition(":")
    return repo, tag


@pytest.mark.parametrize("image", SINGLE + MULTI)
def test_manifest_bytes_equal_skopeo(any_registry, image):
    info = any_registry.images[image]
    repo, tag = split(image)
    r = run("hocker-manifest", *registry_args(any_registry), repo, tag, env=cred_env(any_registry))
    assert r.returncode == 0, r.stderr
    expected = info.platforms["linux/amd64"].manifest_bytes  # the fixture reads back with skopeo --raw
    assert r.stdout == expected
    if info.is_index:
        r = run("hocker-manifest", *registry_args(any_registry), "--index", repo, tag, env=cred_env(any_registry))
        assert r.returncode == 0 and r.stdout == info.raw
        r = run("hocker-manifest", *registry_args(any_registry), "--platform", "linux/aarch64", repo, tag,
                env=cred_env(any_registry))
        assert r.returncode == 0 and r.stdout == info.platforms["linux/arm64/v8"].manifest_bytes


@pytest.mark.parametrize("image", SINGLE + MULTI)
def test_config_bytes_equal_skopeo(any_registry, image):
    repo, tag = split(image)
    ref = f"docker://{any_registry.host}/{repo}:{tag}"
    expected = run_skopeo("inspect", "--raw", "--config", *skopeo_args(any_registry),
                          "--override-arch", "amd64", "--override-os", "linux", ref)
    r = run("hocker-config", *registry_args(any_registry), repo, tag, env=cred_env(any_registry))
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected
    assert "sha256:" + hashlib.sha256(r.stdout).hexdigest() == any_registry.images[image].platforms[
        "linux/amd64"].config_digest


def test_layers_equal_skopeo_dir_copy(any_registry, tmp_path, skopeo_policy):
    repo, tag = "library/hello", "v2s2"
    dest = tmp_path / "dir"
    run_skopeo("copy", "--quiet", f"--policy={skopeo_policy}", *skopeo_args(any_registry, "src"),
               f"docker://{any_registry.host}/{repo}:{tag}", f"dir:{dest}")
    layers = json.loads((dest / "manifest.json").read_bytes())["layers"]
    assert layers
    for n, layer in enumerate(layers):
        hexd = layer["digest"].split(":")[1]
        out = tmp_path / f"layer{n}"
        # TAG omitted; bare hex accepted
        r = run("hocker-layer", *registry_args(any_registry), "--layer", hexd if n else layer["digest"],
                "--out", str(out), repo, env=cred_env(any_registry))
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode().strip() == str(out)
        assert out.read_bytes() == (dest / hexd).read_bytes()


@pytest.fixture
def podman(tmp_path):
    """podman with throw-away storage; its runroot must be under 50 characters, so it lives in /tmp."""
    if shutil.which("podman") is None:
        pytest.skip("podman not installed")
    run_root = Path(tempfile.mkdtemp(prefix="podrun-"))

    def call(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", "--root", str(tmp_path / "podman-root"), "--runroot", str(run_root),
                               "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                               *args], capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    yield call
    shutil.rmtree(run_root, ignore_errors=True)


@pytest.mark.parametrize("image", ["library/hello:oci", "library/hello:v2s2", "a/b/c:nested",
                                   "library/plain:uncompressed", "library/multi:list"])
def test_image_archive_loads_with_skopeo_and_podman(any_registry, image, tmp_path, skopeo_policy, podman):
    info = any_registry.images[image]
    config_digest = info.platforms["linux/amd64"].config_digest
    repo, tag = split(image)
    out = tmp_path / "image.tar"
    r = run("hocker-image", *registry_args(any_registry), "--out", str(out), "-j", "3", repo, tag,
            env=cred_env(any_registry))
    assert r.returncode == 0, r.stderr
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(out), "manifest.json"], capture_output=True,
                                         check=True).stdout)
    expected_tag = f"{any_registry.host}/{repo}:{tag}"
    assert manifest[0]["RepoTags"] == [expected_tag]
    # skopeo reads it as a docker-archive (dir: keeps the config untouched; oci: would convert it)
    copied = tmp_path / "dir"
    run_skopeo("copy", "--quiet", f"--policy={skopeo_policy}", f"docker-archive:{out}", f"dir:{copied}")
    loaded = json.loads((copied / "manifest.json").read_bytes())
    assert loaded["config"]["digest"] == config_digest
    assert len(loaded["layers"]) == len(info.platforms["linux/amd64"].layers)
    p = podman("load", "-i", str(out))
    assert p.returncode == 0, p.stderr
    p = podman("image", "inspect", "--format", "{{.Id}}", expected_tag)
    assert p.returncode == 0, p.stderr
    assert "sha256:" + p.stdout.strip() == config_digest


def test_oci_layout_and_oci_archive_keep_registry_digests(plain_registry, tmp_path, skopeo_policy):
    info = plain_registry.images["library/multi:oci"]
    arm = info.platforms["linux/arm64/v8"]
    for fmt, out in (("oci", tmp_path / "layout"), ("oci-archive", tmp_path / "layout.tar")):
        r = run("hocker-image", "--registry", plain_registry.url, "--platform", "linux/arm64/v8", "--format", fmt,
                "--out", str(out), "library/multi", "oci")
        assert r.returncode == 0, r.stderr
        transport = "oci" if fmt == "oci" else "oci-archive"
        copied = tmp_path / f"copy-{fmt}"
        run_skopeo("copy", "--quiet", f"--policy={skopeo_policy}", "--preserve-digests", f"{transport}:{out}:oci",
                   f"dir:{copied}")
        assert (copied / "manifest.json").read_bytes() == arm.manifest_bytes
        for digest, _mt, size in arm.layers:
            assert (copied / digest.split(":")[1]).stat().st_size == size
    index = json.loads((tmp_path / "layout" / "index.json").read_bytes())
    assert index["manifests"][0]["digest"] == arm.manifest_digest


def test_reference_form_and_digest_pinning(plain_registry, tmp_path):
    info = plain_registry.images["library/multi:oci"]
    arm = info.platforms["linux/arm64/v8"]
    host = plain_registry.host
    # docker reference form, on loopback: https is tried, then plain http
    r = run("hocker-manifest", f"{host}/library/multi@{arm.manifest_digest}")
    assert r.returncode == 0, r.stderr
    assert r.stdout == arm.manifest_bytes
    r = run("hocker-manifest", "--digest", "--index", f"{host}/library/multi:oci")
    assert r.returncode == 0 and r.stdout.decode().strip() == info.digest
    r = run("hocker-manifest", f"{host}/library/multi:oci@{info.digest}", "--platform", "linux/arm64")
    assert r.returncode == 0 and r.stdout == arm.manifest_bytes
    out = tmp_path / "nested.json"
    r = run("hocker-manifest", "--out", str(out), "--registry", plain_registry.url, "a/b/c", "nested")
    assert r.returncode == 0 and r.stdout.decode().strip() == str(out)
    assert out.read_bytes() == plain_registry.images["a/b/c:nested"].raw


def test_out_refuses_special_files(plain_registry):
    # an atomic rename onto /dev/null would replace the device with a plain file
    r = run("hocker-manifest", "--out", "/dev/null", "--registry", plain_registry.url, "a/b/c", "nested")
    assert r.returncode == 2 and b"not a regular file" in r.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_repo_tags_can_be_overridden(plain_registry, tmp_path):
    out = tmp_path / "named.tar"
    r = run("hocker-image", "--registry", plain_registry.url, "--repo-tag", "mine/app:v1", "--repo-tag", "other:2",
            "--out", str(out), "library/hello", "oci")
    assert r.returncode == 0, r.stderr
    manifest = json.loads(subprocess.run(["tar", "-xOf", str(out), "manifest.json"], capture_output=True,
                                         check=True).stdout)
    assert manifest[0]["RepoTags"] == ["mine/app:v1", "other:2"]
