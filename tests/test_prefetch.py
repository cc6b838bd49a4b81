"""Prefetch (issue 19, part 1) with single-user Nix 2.8 against the real registry: `docker2nix --prefetch`,
`hocker-lock prefetch` and `--prefetch` put exactly the store paths that `nix-instantiate` computes for the
fixed-output derivations of the same expression (docker2nix files, importDockerLock, multi-arch entries, the
layers of hocker-era files), and the following nix-build fetches nothing (the registry's access log shows no
blob GET). Failures and interruptions: see test_prefetch_faults.py; through a nix-daemon: test_prefetch_daemon.py.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest
from support import nixenv
from support.nixenv import BIN, NIX_DIR, VENV, Nix, base_env

from hocker_fetch.digest import to_nix_base32

nix = nixenv.nix  # one throw-away store for this module

FETCHERS = f'(import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }})'
BLOB_GET = re.compile(r'"GET (\S+/blobs/sha256:[0-9a-f]{64}) HTTP/[\d.]+" (\d{3})')
HOST = "x86_64-linux"


def run_tool(nix: Nix, name: str, *args: str, env: Optional[dict[str, str]] = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """A console script with the module's Nix store in its environment (nix-store finds that store)."""
    proc = subprocess.run([str(BIN / name), *args], capture_output=True, text=True, timeout=300,
                          env=base_env(**nix.env, **(env or {})), stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def log_mark(reg) -> int:
    return reg.log_file.stat().st_size


def blob_gets(reg, mark: int) -> list[str]:
    text = reg.log_file.read_bytes()[mark:].decode(errors="replace")
    return [m.group(1) for m in BLOB_GET.finditer(text)]


def valid(nix: Nix, paths: list[str]) -> bool:
    return nix.run("nix-store", "--check-validity", *paths, check=False).returncode == 0


def instantiate(nix: Nix, expr: str) -> Any:
    return json.loads(nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", expr).stdout)


def fod_paths(x: str) -> str:
    """A Nix expression: the outPaths of fetchdocker result `x`'s fixed-output derivations (the manifest's
    from its OCI layout's spec: fetchdocker does not expose it otherwise)."""
    return (f"let r = {x}; spec = builtins.fromJSON"
            " (builtins.unsafeDiscardStringContext r.ociLayout.drvAttrs.imageSpec);"
            " in [ r.imageConfig.outPath spec.manifest.path ] ++ map (l: l.outPath) r.imageLayers")


def added_paths(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if "prefetched" in line]
    assert len(lines) == 1, stderr
    return lines[0]


# ---------------------------------------------------------------------------------------------------------


def test_docker2nix_prefetch_gives_the_derivations_paths_and_nix_build_fetches_nothing(
        nix: Nix, plain_registry, tmp_path: Path) -> None:
    reg = plain_registry
    info = reg.images["library/hello:oci"].single
    out = tmp_path / "hello.nix"
    proc = run_tool(nix, "docker2nix", "--registry", reg.url, "--prefetch", "library/hello", "oci", "--out", str(out))
    assert "prefetched 4 blobs" in added_paths(proc.stderr)  # manifest, config, 2 layers
    paths = nix.eval_json(out, f"({fod_paths('x')})")
    assert len(paths) == 2 + len(info.layers)
    assert all(f"-docker-layer-{dg.split(':')[1]}.tar.gz" in p for p, (dg, _, _) in zip(paths[2:], info.layers))
    assert valid(nix, paths)
    mark = log_mark(reg)
    [result] = nix.build_paths(out)
    assert blob_gets(reg, mark) == []  # every blob was already in the store
    assert (Path(result) / "compositeImage.sh").exists()
    # a second prefetch finds everything valid: nothing fetched
    mark = log_mark(reg)
    again = run_tool(nix, "docker2nix", "--registry", reg.url, "--prefetch", "library/hello", "oci")
    assert "prefetched 0 blobs" in added_paths(again.stderr) and "4 already there" in again.stderr
    assert blob_gets(reg, mark) == []


def test_lock_prefetch_host_then_all_platforms_matches_import_docker_lock(
        nix: Nix, plain_registry, tmp_path: Path) -> None:
    reg = plain_registry
    lock = tmp_path / "images.lock.json"
    run_tool(nix, "hocker-lock", "--file", str(lock), "add", "--platform", "all", f"{reg.host}/library/multi:oci")
    run_tool(nix, "hocker-lock", "--file", str(lock), "add", "--name", "nested", f"{reg.host}/a/b/c:nested")
    entries = json.loads(lock.read_text())["images"]
    assert sorted(entries["multi"]["systems"]) == ["aarch64-linux", HOST]

    def paths_for(system: str, name: str) -> list[str]:
        return instantiate(nix, fod_paths(f'({FETCHERS}.importDockerLockFor "{system}" {lock}).{name}'))

    host_multi, host_nested = paths_for(HOST, "multi"), paths_for(HOST, "nested")
    arm = paths_for("aarch64-linux", "multi")
    proc = run_tool(nix, "hocker-lock", "--file", str(lock), "prefetch")
    assert f"prefetched {len(host_multi) + len(host_nested)} blobs" in added_paths(proc.stderr)
    assert valid(nix, host_multi + host_nested)
    assert not valid(nix, arm[:1]) and not valid(nix, arm[2:])  # another system's config and layers: not yet

    proc = run_tool(nix, "hocker-lock", "--file", str(lock), "prefetch", "--all-platforms", "multi")
    assert "prefetched 4 blobs" in added_paths(proc.stderr)  # arm64's manifest, config and 2 layers
    assert valid(nix, arm)

    mark = log_mark(reg)
    expr = tmp_path / "fleet.nix"
    expr.write_text(f'{FETCHERS}.importDockerLockFor "{HOST}" {lock}')
    built = nix.run("nix-build", str(expr), "--no-out-link").stdout.split()
    assert len(built) == 2
    assert blob_gets(reg, mark) == []


def test_add_and_update_prefetch(nix: Nix, plain_registry, tmp_path: Path) -> None:
    reg = plain_registry
    lock = tmp_path / "images.lock.json"
    proc = run_tool(nix, "hocker-lock", "--file", str(lock), "add", "--prefetch", f"{reg.host}/library/hello2:oci")
    paths = instantiate(nix, fod_paths(f'({FETCHERS}.importDockerLockFor "{HOST}" {lock}).hello2'))
    assert valid(nix, paths)
    assert "prefetched" in added_paths(proc.stderr)
    proc = run_tool(nix, "hocker-lock", "--file", str(lock), "update", "--prefetch")
    assert "prefetched 0 blobs" in added_paths(proc.stderr)


def test_hocker_era_files_share_the_layer_paths(nix: Nix, plain_registry, tmp_path: Path) -> None:
    """A hocker-era file (no imageDigest/configDigest) names its layers as the prefetch does; its config has
    hocker's name (<repository>_<image>_<tag>-config.json), which a prefetch does not add (docs/prefetch.md)."""
    reg = plain_registry
    info = reg.images["a/b/c:nested"].single
    layers = "\n".join(f'(fetchDockerLayer {{ inherit registry repository imageName;'
                       f' layerDigest = "{dg.split(":")[1]}"; sha256 = "{to_nix_base32(dg)}"; }})'
                       for dg, _, _ in info.layers)
    era = tmp_path / "era.nix"
    era.write_text(f"""{{ fetchDockerConfig, fetchDockerLayer, fetchdocker }}:
fetchdocker rec {{
  name = "nested"; registry = "{reg.url}/v2/"; repository = "a/b"; imageName = "c"; tag = "nested";
  imageConfig = fetchDockerConfig {{ inherit tag registry repository imageName;
    sha256 = "{to_nix_base32(info.config_digest)}"; }};
  imageLayers = [ {layers} ];
}}
""")
    run_tool(nix, "docker2nix", "--registry", reg.url, "--prefetch", "a/b/c", "nested")
    layer_paths = nix.eval_json(era, "map (l: l.outPath) x.imageLayers")
    config_path = nix.eval_json(era, "x.imageConfig.outPath")
    assert valid(nix, layer_paths)
    assert config_path.endswith("-a_b_c_nested-config.json")
    mark = log_mark(reg)
    nix.build_paths(era)
    # only the config was fetched: the layers were already there
    assert blob_gets(reg, mark) == [f"/v2/a/b/c/blobs/{info.config_digest}"]


def test_without_nix_one_line_and_no_output(plain_registry, tmp_path: Path) -> None:
    out = tmp_path / "hello.nix"
    env = base_env(PATH="/nonexistent")
    proc = subprocess.run([str(BIN / "docker2nix"), "--registry", plain_registry.url, "--prefetch", "library/hello",
                           "oci", "--out", str(out)], capture_output=True, text=True, env=env, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "nix-store not found" in proc.stderr, proc.stderr
    assert not out.exists()
    lock = tmp_path / "images.lock.json"
    lock.write_text('{"images": {}, "version": 1}\n')
    proc = subprocess.run([str(BIN / "hocker-lock"), "--file", str(lock), "prefetch"], capture_output=True,
                          text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1 and proc.stderr.startswith("hocker-lock: nix-store not found"), proc.stderr


@pytest.mark.parametrize("name", ["docker-layer-{hex}.tar.gz", "docker-config-{hex}.json", "odd+name?=x"])
def test_computed_store_paths_equal_nix_stores(nix: Nix, name: str) -> None:
    from hocker_fetch.prefetch import fixed_output_path

    hex_ = "ab" * 32
    asked = nix.run("nix-store", "--print-fixed-path", "sha256", hex_, name.format(hex=hex_)).stdout.strip()
    assert fixed_output_path(os.path.dirname(asked), name.format(hex=hex_), hex_) == asked


GOLDEN = Path(__file__).resolve().parent / "golden"


GOLDEN_CASES = [(f.name, s) for f in sorted(GOLDEN.glob("*.nix"))
                for s in ((HOST, "aarch64-linux") if f.name.startswith("multi") else (None,))]


@pytest.mark.parametrize("golden, system", GOLDEN_CASES)
def test_golden_files_paths_equal_the_prefetch_paths(nix: Nix, golden: str, system: Optional[str]) -> None:
    """Every docker2nix file of tests/golden: the names and paths prefetch computes for its digests are the
    outPaths nix-instantiate computes for its fixed-output derivations (no network: paths only)."""
    from hocker_fetch.manifest import Descriptor
    from hocker_fetch.prefetch import fixed_output_path, image_needs

    facts = nix.eval_json(GOLDEN / golden, (
        "{ manifest = x.imageDigest; config = x.configDigest; layers = map (l: l.layerDigest) x.imageLayers;"
        f" paths = {fod_paths('x')}; }}"), system=system)

    def blob(digest: str) -> Descriptor:
        return Descriptor("x", digest, 0)

    needs = image_needs(blob(facts["manifest"]), blob(facts["config"]), [blob(d) for d in facts["layers"]])
    store_dir = os.path.dirname(facts["paths"][0])
    computed = [fixed_output_path(store_dir, n.name, n.hex) for n in needs]
    assert [computed[1], computed[0], *computed[2:]] == facts["paths"]  # fod_paths lists the config first


def test_a_layer_shared_by_two_entries_is_fetched_once(plain_registry, tmp_path: Path) -> None:
    reg = plain_registry
    fresh = Nix(tmp_path / "nix")  # a store of its own: nothing of this module's earlier prefetches
    lock = tmp_path / "images.lock.json"
    for image in ("library/hello:oci", "library/hello2:oci"):
        run_tool(fresh, "hocker-lock", "--file", str(lock), "add", f"{reg.host}/{image}")
    hello, hello2 = (reg.images[i].single for i in ("library/hello:oci", "library/hello2:oci"))
    shared = {dg for dg, _, _ in hello.layers} & {dg for dg, _, _ in hello2.layers}
    assert len(shared) == 1
    mark = log_mark(reg)
    proc = run_tool(fresh, "hocker-lock", "--file", str(lock), "prefetch", "-j", "3")
    assert "prefetched 7 blobs" in added_paths(proc.stderr)  # 2 x (manifest, config, 2 layers) - 1 shared
    text = reg.log_file.read_bytes()[mark:].decode(errors="replace")
    [base] = shared
    assert len(re.findall(rf'"GET \S+/blobs/{base} HTTP/[\d.]+" 200', text)) == 1
