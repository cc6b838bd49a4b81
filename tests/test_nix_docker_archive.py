"""`.dockerArchive` as a base image (issue 18, item 18): the docker-archive layout that nixpkgs'
dockerTools.buildImage / buildLayeredImage read as `fromImage`, compared with what pullImage produces (pullImage
is `skopeo copy docker://... docker-archive:$out:name:tag`, so skopeo's docker-archive of the same image stands in
for it here; nixpkgs itself is not available offline).

What those functions read: `manifest.json` (`.[0].Config`, `.[0].Layers`, `.[].RepoTags`), the config's
`.config.Env`, every `image/*/layer.tar` (listed with `tar -t`), and each listed layer's sha256 as its diff_id
(so layers must be uncompressed tars); older nixpkgs read `repositories` too. buildImage's steps are replayed
with bash, tar, jq and sha256sum; streamLayeredImage's with Python's tarfile, as its script does.

nix2container's `fromImage` takes an image JSON made by `nix2container image-from-dir` from a skopeo `dir:` copy;
`skopeo copy oci:<.ociLayout> dir:...` (offline) gives the very files `skopeo copy docker://... dir:...` does.
"""
from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from support import nixenv
from support.nixenv import Nix, docker2nix

nix = nixenv.nix
gen_dir = nixenv.gen_dir

IMAGES = ["library/hello:oci", "library/hello:v2s2", "a/b/c:nested"]

# dockerTools.buildImage's handling of fromImage, step by step (bash + jq, as its build script does it)
BUILD_IMAGE_STEPS = r"""
set -euo pipefail
mkdir image
tar -C image -xpf "$1"
jq -r '.[0].Layers | .[]' image/manifest.json > layer-list
configName=$(jq -r '.[0].Config' image/manifest.json)
jq -c '.config.Env // []' "image/$configName" > base-envs
jq -r '.[] | select(.RepoTags | contains([$t])) | .Config | rtrimstr(".json")' --arg t "$2" image/manifest.json > parent
n=0
for l in image/*/layer.tar; do tar -tf "$l" > /dev/null; n=$((n + 1)); done
echo "$n" > globbed
while read -r l; do echo "sha256:$(sha256sum "image/$l" | cut -d' ' -f1)"; done < layer-list > diff-ids
"""


def skopeo_archive(reg, ref: str, name: str, out: Path, policy: Path) -> Path:
    proc = subprocess.run(["skopeo", "--policy", str(policy), "copy", "-q", "--src-tls-verify=false",
                           f"docker://{reg.host}/{ref}", f"docker-archive:{out}:{name}"],
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return out


def build_image_reads(archive: Path, tag: str, work: Path) -> dict:
    work.mkdir()
    proc = subprocess.run(["bash", "-c", BUILD_IMAGE_STEPS, "steps", str(archive), tag], cwd=work,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return {"layers": len((work / "layer-list").read_text().split()), "globbed": int((work / "globbed").read_text()),
            "envs": json.loads((work / "base-envs").read_text()), "parent": (work / "parent").read_text().strip(),
            "diff_ids": (work / "diff-ids").read_text().split()}


def layered_reads(archive: Path) -> dict:
    """streamLayeredImage: manifest.json and the config by name, each layer member hashed as its diff_id."""
    with tarfile.open(archive) as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(t.extractfile(manifest[0]["Config"]))  # type: ignore[arg-type]
        ids = []
        for layer in manifest[0]["Layers"]:
            f = t.extractfile(layer)
            assert f is not None, layer
            ids.append("sha256:" + hashlib.sha256(f.read()).hexdigest())
    return {"config": config, "diff_ids": ids, "repo_tags": manifest[0]["RepoTags"]}


def repositories(archive: Path) -> tuple[dict, set[str]]:
    with tarfile.open(archive) as t:
        names = set(t.getnames())
        return json.load(t.extractfile("repositories")), names  # type: ignore[arg-type]


@pytest.mark.parametrize("ref", IMAGES)
def test_docker_archive_reads_like_pull_image(nix: Nix, gen_dir: Path, plain_registry, skopeo_policy: Path,
                                              tmp_path: Path, ref: str) -> None:
    info = plain_registry.images[ref].single
    expr = docker2nix(plain_registry, ref, gen_dir / f"{ref.replace('/', '_').replace(':', '_')}.nix")
    [ours] = nix.build_paths(expr, attr="dockerArchive")
    name = f"{plain_registry.host}/{ref}"
    theirs = skopeo_archive(plain_registry, ref, name, tmp_path / "pulled.tar", skopeo_policy)
    config = json.loads(info.config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]

    a = build_image_reads(Path(ours), name, tmp_path / "ours")
    b = build_image_reads(theirs, name, tmp_path / "theirs")
    assert a["diff_ids"] == b["diff_ids"] == diff_ids  # uncompressed layers: sha256 of each is its diff_id
    assert a["layers"] == a["globbed"] == b["globbed"] == len(set(diff_ids))
    assert a["envs"] == b["envs"] == config.get("config", {}).get("Env", [])
    assert a["parent"] == b["parent"] == info.config_digest[7:]  # the config member is <hex>.json in both

    la, lb = layered_reads(Path(ours)), layered_reads(theirs)
    assert la["config"] == lb["config"] == config and la["diff_ids"] == lb["diff_ids"] == diff_ids
    assert la["repo_tags"] == lb["repo_tags"] == [name]

    for archive in (Path(ours), theirs):
        repos, names = repositories(archive)
        [(repo, tags)] = repos.items()
        assert repo == name.rpartition(":")[0] and list(tags) == [ref.rpartition(":")[2]]
        assert f"{tags[ref.rpartition(':')[2]]}/layer.tar" in names  # names the top layer's directory
    # and it still loads: skopeo reads it back as the same image
    assert nixenv.skopeo_config_digest(f"docker-archive:{ours}") == info.config_digest


def test_oci_layout_gives_nix2container_the_pulled_dir(nix: Nix, gen_dir: Path, plain_registry,
                                                       skopeo_policy: Path, tmp_path: Path) -> None:
    """`skopeo copy oci:<.ociLayout> dir:D` (no network) is byte for byte what nix2container's pullImage gets
    from the registry (`skopeo copy docker://... dir:D`), the input of `nix2container image-from-dir`."""
    ref = "library/hello:oci"
    expr = docker2nix(plain_registry, ref, gen_dir / "n2c.nix")
    [layout] = nix.build_paths(expr, attr="ociLayout")
    dirs = {}
    for label, src, flags in (("local", f"oci:{layout}", []),
                              ("pulled", f"docker://{plain_registry.host}/{ref}", ["--src-tls-verify=false"])):
        dirs[label] = tmp_path / label
        proc = subprocess.run(["skopeo", "--policy", str(skopeo_policy), "copy", "-q", *flags, src,
                               f"dir:{dirs[label]}"], capture_output=True, text=True, timeout=120,
                              stdin=subprocess.DEVNULL)
        assert proc.returncode == 0, proc.stderr

    def files(d: Path) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in d.iterdir()}

    assert files(dirs["local"]) == files(dirs["pulled"])
    assert "manifest.json" in files(dirs["local"])
