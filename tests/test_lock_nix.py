"""importDockerLock: a hocker-lock file read by Nix, built for real by Nix 2.8 against the real registry.

Two halves. The first needs no `hocker-lock`: lock files are written here from `docker2nix --json` (the same
registry facts, in the lock format), which also gives the docker2nix files to compare store paths with. The
second is the issue's scenario end to end with the `hocker-lock` CLI: add images, build and load them, move a
tag, `check`, `update` (its git diff), rebuild.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest
from support import nixenv
from support.nixenv import (
    BIN,
    NIX_DIR,
    REPO,
    SECRET_IMAGE,
    VENV,
    Nix,
    base_env,
    docker2nix,
    skopeo_config_digest,
    stream_image,
)

nix = nixenv.nix  # the module-scoped fixtures: one throw-away store for this module
gen_dir = nixenv.gen_dir

FETCHERS = f'(import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }})'
MULTI = ("--platform", "linux/amd64", "--platform", "linux/arm64/v8")


def write_lock(path: Path, images: dict[str, Any], version: int = 1) -> Path:
    """The file as hocker-lock writes it: sorted keys, two-space indent, a final newline."""
    path.write_text(json.dumps({"images": images, "version": version}, indent=2, sort_keys=True) + "\n")
    return path


def entry_from_docker2nix(data: dict[str, Any], system: str = "x86_64-linux") -> dict[str, Any]:
    """A lock entry from `docker2nix --json` output (a single-arch pin without a platform goes under `system`)."""
    def desc(blob: dict[str, Any]) -> dict[str, Any]:
        return {"digest": blob["digest"], "mediaType": blob["mediaType"], "size": blob["size"]}

    systems = {}
    for p in data["platforms"]:
        systems[p["system"] or system] = {
            "platform": p["platform"],  # docker2nix leaves a single-arch image's unknown (null)
            "manifest": desc(p["manifest"]),
            "config": desc(p["config"]),
            "layers": [desc(layer) for layer in p["layers"]],
            "created": None,
            "version": None,
        }
    return {
        "host": data["host"],
        "registry": data["registry"],
        "repository": data["repositoryPath"],
        "tag": data["tag"],
        "platforms": sorted(s["platform"] or "linux/amd64" for s in systems.values()),
        "index": data["index"],
        "systems": systems,
    }


def docker2nix_json(reg, image: str, *args: str, env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    repo, _, tag = image.rpartition(":")
    proc = subprocess.run([str(BIN / "docker2nix"), "--json", "--registry", reg.url, *args, repo, tag],
                          capture_output=True, text=True, env=base_env(**(env or {})), timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def lock_expr(lock: Path, system: Optional[str] = None) -> str:
    """The lock's attribute set without nixpkgs: importDockerLock (fetchers' system), or importDockerLockFor."""
    if system is None:
        return f"({FETCHERS}.importDockerLock {lock})"
    return f'({FETCHERS}.importDockerLockFor "{system}" {lock})'


def eval_json(nix: Nix, expr: str) -> Any:
    return json.loads(nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", expr).stdout)


def eval_error(nix: Nix, expr: str) -> str:
    proc = nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", expr, check=False)
    assert proc.returncode != 0, f"evaluated, expected an error: {proc.stdout[:2000]}"
    return proc.stderr


def build_expr(nix: Nix, expr: str, env: Optional[dict[str, str]] = None) -> str:
    [out] = nix.run("nix-build", "--no-out-link", "--expr", expr, env=env).stdout.split()
    return out


# what a store-path comparison covers: the image and every derivation it is made of (the OCI layout's path
# depends on the pinned manifest's)
PATHS = ("{ out = i.outPath; config = i.imageConfig.outPath; layers = map (l: l.outPath) i.imageLayers; "
         "archive = i.dockerArchive.outPath; "
         "layout = i.ociLayout.outPath; stream = i.stream.outPath; "
         "inherit (i) image imageDigest indexDigest platform configDigest; }")


@pytest.fixture(scope="module")
def fleet(plain_registry, gen_dir: Path) -> dict[str, Any]:
    """A lock with three entries (single-arch, multi-arch for two systems, nested path) and the docker2nix
    files of the same images."""
    reg = plain_registry
    images = {
        "hello": entry_from_docker2nix(docker2nix_json(reg, "library/hello:oci")),
        "multi": entry_from_docker2nix(docker2nix_json(reg, "library/multi:oci", *MULTI)),
        "c": entry_from_docker2nix(docker2nix_json(reg, "a/b/c:nested")),
    }
    files = {
        "hello": docker2nix(reg, "library/hello:oci", gen_dir / "lock-hello.nix"),
        "multi": docker2nix(reg, "library/multi:oci", gen_dir / "lock-multi.nix", *MULTI),
        "c": docker2nix(reg, "a/b/c:nested", gen_dir / "lock-c.nix"),
    }
    return {"lock": write_lock(gen_dir / "images.lock.json", images), "images": images, "files": files}


# -- Nix only: hand-made lock files ----------------------------------------------------------------------------


def test_one_attribute_per_entry_with_docker2nix_store_paths(nix: Nix, fleet: dict[str, Any]) -> None:
    """Every derivation of every entry (blobs, manifest, image, archive, layout, stream) has the store path the
    docker2nix file for the same image gives: the layers are shared, and a lock built first makes the docker2nix
    build a no-op (and the other way round)."""
    lock = fleet["lock"]
    assert eval_json(nix, f"builtins.attrNames {lock_expr(lock)}") == ["c", "hello", "multi"]
    for system in ("x86_64-linux", "aarch64-linux"):
        for name, file in fleet["files"].items():
            if name != "multi" and system != "x86_64-linux":
                continue
            ours = eval_json(nix, f"let i = {lock_expr(lock, system)}.{name}; in {PATHS}")
            theirs = eval_json(nix, f'let i = import {nix.build_nix} {{ file = {file}; system = "{system}"; }}; '
                                    f"in {PATHS}")
            assert ours == theirs, (name, system)
            assert ours["imageDigest"] is not None and len(ours["layers"]) >= 1
    multi = fleet["images"]["multi"]
    arm = eval_json(nix, f"let i = {lock_expr(lock, 'aarch64-linux')}.multi; "
                         "in [ i.platform i.imageDigest i.indexDigest ]")
    assert arm == ["linux/arm64/v8", multi["systems"]["aarch64-linux"]["manifest"]["digest"], multi["index"]["digest"]]
    # a Mac takes the Linux image of its own CPU, as docker2nix's multi-platform files do
    assert eval_json(nix, f"{lock_expr(lock, 'aarch64-darwin')}.multi.platform") == "linux/arm64/v8"
    assert eval_json(nix, f"{lock_expr(lock, 'x86_64-darwin')}.hello.imageDigest") == \
        fleet["images"]["hello"]["systems"]["x86_64-linux"]["manifest"]["digest"]


def test_builds_and_loads_as_the_locked_image(nix: Nix, fleet: dict[str, Any], plain_registry,
                                              tmp_path: Path) -> None:
    """The entry built from the lock streams an archive whose config is the locked one (the image ID), under
    the familiar name of the registry's image; the nested path keeps its repository."""
    from test_nix_build import podman_load

    lock = fleet["lock"]
    reg = plain_registry
    for name, ref in (("hello", "library/hello:oci"), ("c", "a/b/c:nested")):
        info = reg.images[ref].single
        result = build_expr(nix, f"{lock_expr(lock)}.{name}")
        assert result.endswith(f"-{name}")
        archive = stream_image(result, tmp_path / f"{name}.tar")
        assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
        loaded = podman_load(archive, tmp_path / f"podman-{name}")
        assert f"{info.config_digest[7:]} {reg.host}/{ref}" in loaded
    # the docker2nix file's image is the very same store path: already built
    [theirs] = nix.build_paths(fleet["files"]["hello"])
    assert theirs == build_expr(nix, f"{lock_expr(lock)}.hello")


def test_a_system_the_entry_does_not_cover_names_the_ones_it_does(nix: Nix, fleet: dict[str, Any]) -> None:
    lock = fleet["lock"]
    err = eval_error(nix, f"{lock_expr(lock, 'riscv64-linux')}.multi.outPath")
    assert f"hocker-fetch: {lock}: entry 'multi' is locked for aarch64-linux, x86_64-linux only, not for " \
           f"riscv64-linux; run `hocker-lock --file {lock} add --name multi --platform linux/amd64 --platform " \
           f"linux/arm64/v8 --platform linux/riscv64 {fleet['images']['multi']['host']}/library/multi:oci`" \
           in err, err  # a command that works when pasted: test_nix_lock_hint.py runs one
    err = eval_error(nix, f"{lock_expr(lock, 'aarch64-linux')}.hello.outPath")
    assert "entry 'hello' is locked for x86_64-linux only, not for aarch64-linux" in err, err
    # lazily: the other entries still evaluate for that system
    assert eval_json(nix, f"{lock_expr(lock, 'aarch64-linux')}.multi.platform") == "linux/arm64/v8"


def test_lock_file_versions_and_shapes(nix: Nix, fleet: dict[str, Any], plain_registry, tmp_path: Path) -> None:
    """A newer lock version asks for a newer hocker-fetch; a docker2nix --json file or something without a
    version is refused naming the file; odd names and untagged entries still build."""
    hello = fleet["images"]["hello"]
    newer = write_lock(tmp_path / "newer.json", {"hello": hello}, version=2)
    err = eval_error(nix, f"{lock_expr(newer)}.hello.outPath")
    assert f"hocker-fetch: {newer}: lock file version 2, this hocker-fetch reads version 1 only: upgrade " \
           "hocker-fetch" in err, err
    d2n = tmp_path / "docker2nix.json"
    d2n.write_text(json.dumps(docker2nix_json(plain_registry, "library/hello:oci")))
    assert "a docker2nix --json file, not a hocker-lock file" in eval_error(nix, f"{lock_expr(d2n)}")
    bare = tmp_path / "bare.json"
    bare.write_text('{"images": {}}\n')
    assert f"{bare}: not a hocker-lock file (no integer `version`)" in eval_error(nix, lock_expr(bare))
    # the data instead of the file (filtered, merged or inline): the same derivations
    data = f"(builtins.fromJSON (builtins.readFile {fleet['lock']}))"
    assert eval_json(nix, f"let i = {lock_expr(fleet['lock'])}.hello; in {PATHS}") == \
        eval_json(nix, f"let i = ({FETCHERS}.importDockerLock {data}).hello; in {PATHS}")
    newer_data = f"{data} // {{ version = 3; }}"
    assert "hocker-fetch: the lock data: lock file version 3" in \
        eval_error(nix, f"({FETCHERS}.importDockerLock ({newer_data})).hello.outPath")
    empty = write_lock(tmp_path / "empty.json", {})
    assert eval_json(nix, lock_expr(empty)) == {}
    # a name Nix allows as an attribute but not in a store path (hocker-lock allows `'`): `-` in the store name;
    # an entry added by digest only (no tag) loads under docker2nix's stand-in tag
    untagged = dict(hello, tag=None)
    odd = write_lock(tmp_path / "odd.json", {"hello'": hello, "untagged": untagged})
    assert eval_json(nix, f"{lock_expr(odd)}.\"hello'\".name") == "hello-"
    manifest = hello["systems"]["x86_64-linux"]["manifest"]["digest"]
    assert eval_json(nix, f"{lock_expr(odd)}.untagged.image") == \
        f"{hello['host']}/library/hello:sha256-{manifest[7:19]}"
    broken = json.loads(json.dumps(hello))
    del broken["systems"]["x86_64-linux"]["config"]
    partial = write_lock(tmp_path / "partial.json", {"hello": broken})
    assert "entry 'hello' has no `config`: run `hocker-lock add` again" in \
        eval_error(nix, f"{lock_expr(partial, 'x86_64-linux')}.hello.outPath")


def test_foreign_layers_are_marked(nix: Nix, fleet: dict[str, Any], tmp_path: Path) -> None:
    """A layer whose media type is foreign/non-distributable gets fetchDockerLayer's `foreign = true` (its
    builder then says so when the registry does not serve it); the others do not."""
    entry = json.loads(json.dumps(fleet["images"]["hello"]))
    layers = entry["systems"]["x86_64-linux"]["layers"]
    layers[0]["mediaType"] = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    layers[1]["mediaType"] = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
    lock = write_lock(tmp_path / "foreign.json", {"hello": entry})
    plain = fleet["lock"]
    args = "map (l: builtins.elem \"--foreign\" l.drvAttrs.args) i.imageLayers"
    assert eval_json(nix, f"let i = {lock_expr(lock)}.hello; in {args}") == [True, True]
    assert eval_json(nix, f"let i = {lock_expr(plain)}.hello; in {args}") == [False, False]


def test_overlay_follows_the_host_platform_and_flake_lib(nix: Nix, fleet: dict[str, Any], tmp_path: Path) -> None:
    """pkgs.importDockerLock takes stdenv.hostPlatform.system: a cross package set for aarch64 gets the arm64
    image (built by the build platform's fetchers); the flake's lib.importDockerLock SYSTEM is the overlay's, and
    the flake has a hocker-lock app."""
    from test_nix_build import fake_nixpkgs_package, stub_nixpkgs

    lock = fleet["lock"]
    fake = fake_nixpkgs_package(tmp_path / "pkgs", None)
    stub = stub_nixpkgs(tmp_path / "nixpkgs-stub", fake)

    def pkgs(args: str) -> str:
        return f"(import {stub} {{ overlays = [ (import {REPO}/overlay.nix) ]; {args} }})"

    native_set = pkgs('system = "x86_64-linux";')
    native = eval_json(nix, f"let i = {native_set}.importDockerLock {lock}; "
                            "in [ i.multi.platform i.multi.system (builtins.length i.hello.imageLayers) ]")
    assert native == ["linux/amd64", "x86_64-linux", 2]
    cross_set = pkgs('system = "x86_64-linux"; crossSystem = { system = "aarch64-linux"; };')
    cross = eval_json(nix, f"let i = {cross_set}.importDockerLock {lock}; in [ i.multi.platform i.multi.system ]")
    assert cross == ["linux/arm64/v8", "x86_64-linux"]

    src = tmp_path / "flake"
    src.mkdir()
    for name in ("flake.nix", "overlay.nix"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(NIX_DIR, src / "nix")
    common = ["--override-input", "nixpkgs", f"path:{stub}", "--no-write-lock-file", "--impure"]
    # (--impure: pure flake evaluation may not read a file outside the flake)
    out = nix.run("nix", "eval", "--json", f"path:{src}#lib", *common, "--apply",
                  f'lib: let i = lib.importDockerLock "aarch64-linux" {lock}; '
                  "in [ i.multi.platform (builtins.attrNames i) ]")
    assert json.loads(out.stdout) == ["linux/arm64/v8", ["c", "hello", "multi"]]
    # and `nix run .#hocker-lock` (the README's CI jobs)
    app = nix.run("nix", "eval", "--raw", f"path:{src}#apps.x86_64-linux.hocker-lock.program", *common).stdout
    assert app == f"{fake['hocker']}/bin/hocker-lock"


def test_nixos_module_takes_the_results_unchanged(nix: Nix, fleet: dict[str, Any], tmp_path: Path) -> None:
    """services.hocker-images.images = builtins.attrValues (pkgs.importDockerLock ./images.lock.json): accepted
    as fetchdocker results, each loaded by name and skipped when its image ID is there."""
    from test_nixos_module import Module, find_nixpkgs_lib

    lib, why = find_nixpkgs_lib()
    if lib is None:
        pytest.skip(why)
    module = Module(nix, lib)
    lock = fleet["lock"]
    conf = f"""{{ fetchers, ... }}: {{
      services.hocker-images = {{ enable = true; images = builtins.attrValues (fetchers.importDockerLock {lock}); }};
    }}"""
    script = module.eval(conf, "c.systemd.services.hocker-load-images.script")
    assert script.count("-podman-stub/bin/podman load") == 3
    for name in ("hello", "multi", "c"):
        config = fleet["images"][name]["systems"]["x86_64-linux"]["config"]["digest"]
        assert f"-podman-stub/bin/podman image inspect {config}" in script
    host = fleet["images"]["hello"]["host"]
    assert f"hocker-images: loading {host}/library/hello:oci" in script
    assert f"hocker-images: loading {host}/a/b/c:nested" in script


# -- end to end: hocker-lock writes the file, Nix builds it, a tag moves -------------------------------------------


def hocker_lock(lock: Path, *args: str, env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "hocker-lock"), "--file", str(lock), *args], capture_output=True, text=True,
                          env=base_env(**(env or {})), timeout=180, stdin=subprocess.DEVNULL)


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), "-c", "user.name=hocker test", "-c", "user.email=t@example.invalid",
                           *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def entry_lines(text: str, name: str) -> range:
    """The 1-based line numbers of entry `name` in a lock file as hocker-lock dumps it (entries at indent 4)."""
    lines = text.splitlines()
    start = lines.index(f'    "{name}": {{') + 1
    end = next(i for i in range(start, len(lines)) if lines[i] in ("    }", "    },")) + 1
    return range(start, end + 1)


def changed_lines(diff: str) -> tuple[set[int], set[int]]:
    """(old line numbers removed, new line numbers added) of a `git diff -U0`."""
    import re

    old: set[int] = set()
    new: set[int] = set()
    for m in re.finditer(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", diff, re.M):
        a, b, c, d = int(m[1]), int(m[2] or 1), int(m[3]), int(m[4] or 1)
        old.update(range(a, a + b))
        new.update(range(c, c + d))
    return old, new


@pytest.fixture
def moving_registry(registry_factory, test_layout: Path, skopeo_policy: Path):
    """A registry of our own (its tags move): app:1 (single-arch), multi:1 (index, two platforms), and
    team/tools/nested:1 (a nested path), pushed from the test layout as the session registries are."""
    from support import images

    reg = registry_factory("plain")
    for ref, target, flags in (("hello", "app:1", ["--preserve-digests"]),
                               ("multi", "multi:1", ["--all", "--preserve-digests"]),
                               ("nested", "team/tools/nested:1", ["--preserve-digests"])):
        images.push_ref(reg, test_layout, ref, target, flags, skopeo_policy)
        repo, _, tag = target.rpartition(":")
        reg.images[target] = images.read_back(reg, repo, tag)
    return reg


def test_lock_build_move_check_update_rebuild(nix: Nix, moving_registry, token_registry, test_layout: Path,
                                              skopeo_policy: Path, tmp_path: Path) -> None:
    """The issue's scenario: four images (single-arch, multi-arch, private behind a token server, nested path)
    added to a lock in a git repository, built by Nix and loaded; a new image is pushed to one tag; `check`
    exits 1 naming exactly that entry; `update` changes only its lines; the rebuilt entry is the new image; a
    second `check` exits 0."""
    from support import images
    from test_nix_build import podman_load

    reg, private = moving_registry, token_registry
    auth = {"REGISTRY_AUTH_FILE": str(private.authfile)}  # a login per registry: entries on two registries
    repo = tmp_path / "fleet"
    repo.mkdir()
    git(repo, "init", "-q")
    lock = repo / "images.lock.json"
    for args in ((f"{reg.host}/app:1",),
                 ("--platform", "linux/amd64", "--platform", "linux/arm64/v8", f"{reg.host}/multi:1"),
                 (f"{reg.host}/team/tools/nested:1",),
                 ("--name", "secret", f"{private.host}/private/secret:1")):
        added = hocker_lock(lock, "add", *args, env=auth)
        assert added.returncode == 0, added.stderr
    text = lock.read_text()
    data = json.loads(text)
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert sorted(data["images"]) == ["app", "multi", "nested", "secret"]
    assert data["images"]["nested"]["repository"] == "team/tools/nested"
    assert data["images"]["multi"]["index"]["digest"] == reg.images["multi:1"].digest
    assert sorted(data["images"]["multi"]["systems"]) == ["aarch64-linux", "x86_64-linux"]
    git(repo, "add", "images.lock.json")
    git(repo, "commit", "-q", "-m", "pin")

    # Nix builds every entry from the file (the private one with credentials in the builders' environment)
    creds = {"DOCKER_USER": str(private.username), "DOCKER_PASS": str(private.password)}
    expected = {"app": reg.images["app:1"].single, "nested": reg.images["team/tools/nested:1"].single,
                "multi": reg.images["multi:1"].platforms["linux/amd64"], "secret": private.images[SECRET_IMAGE].single}
    for name, info in expected.items():
        result = build_expr(nix, f"{lock_expr(lock, 'x86_64-linux')}.{name}", env=creds if name == "secret" else None)
        archive = stream_image(result, tmp_path / f"{name}.tar")
        assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest, name
    loaded = podman_load(tmp_path / "app.tar", tmp_path / "podman-1")
    assert f"{expected['app'].config_digest[7:]} {reg.host}/app:1" in loaded
    arm = reg.images["multi:1"].platforms["linux/arm64/v8"]
    assert eval_json(nix, f"let i = {lock_expr(lock, 'aarch64-linux')}.multi; in [ i.imageDigest i.configDigest ]") \
        == [arm.manifest_digest, arm.config_digest]
    assert str(private.password) not in lock.read_text()
    paths = f"builtins.mapAttrs (n: i: i.outPath) {lock_expr(lock, 'x86_64-linux')}"
    before = eval_json(nix, paths)

    # a new image is pushed to app:1
    images.push_ref(reg, test_layout, "hello2", "app:1", ["--preserve-digests"], skopeo_policy)
    moved = images.read_back(reg, "app", "1").single
    assert moved.config_digest != expected["app"].config_digest
    check = hocker_lock(lock, "check", env=auth)
    assert check.returncode == 1, check.stderr
    # one line per moved entry: name, tag, old -> new digest (short)
    report = check.stdout + check.stderr
    assert f"app 1: {expected['app'].manifest_digest[7:19]} -> {moved.manifest_digest[7:19]}" in report, report
    assert not any(n in report for n in ("multi", "nested", "secret")), report
    assert lock.read_text() == text  # check writes nothing
    check_json = hocker_lock(lock, "check", "--json", env=auth)
    assert check_json.returncode == 1, check_json.stderr
    report_json = json.loads(check_json.stdout)
    assert [m["name"] for m in report_json["moved"]] == ["app"]
    assert report_json["unchanged"] == ["multi", "nested", "secret"] and report_json["written"] is False

    update = hocker_lock(lock, "update", env=auth)
    assert update.returncode == 0, update.stderr
    assert "app" in update.stdout + update.stderr
    after = lock.read_text()
    old_lines, new_lines = changed_lines(git(repo, "diff", "-U0", "--", "images.lock.json"))
    assert old_lines and new_lines
    assert old_lines <= set(entry_lines(text, "app")) and new_lines <= set(entry_lines(after, "app")), \
        git(repo, "diff", "--", "images.lock.json")
    new = json.loads(after)
    assert {k: v for k, v in new["images"].items() if k != "app"} == \
        {k: v for k, v in data["images"].items() if k != "app"}
    assert new["images"]["app"]["systems"]["x86_64-linux"]["config"]["digest"] == moved.config_digest

    # the rebuilt entry is the new image; the untouched ones are the same store paths as before
    result = build_expr(nix, f"{lock_expr(lock, 'x86_64-linux')}.app")
    archive = stream_image(result, tmp_path / "app-2.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == moved.config_digest
    loaded = podman_load(archive, tmp_path / "podman-2")
    assert f"{moved.config_digest[7:]} {reg.host}/app:1" in loaded
    rebuilt = eval_json(nix, paths)
    assert rebuilt["app"] == result != before["app"]
    assert {k: v for k, v in rebuilt.items() if k != "app"} == {k: v for k, v in before.items() if k != "app"}
    again = hocker_lock(lock, "check", env=auth)
    assert again.returncode == 0, again.stdout + again.stderr
