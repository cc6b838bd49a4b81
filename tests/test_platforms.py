"""Issue 10, items 2-5: platform resolution on the index shapes real registries serve.

One registry of its own for the module. Real images are copied into it with skopeo from the seeded fixtures
(the amd64 and arm64/v8 images of library/multi, library/hello, and a zstd instance of the amd64 image that
skopeo recompresses); the index shapes no tool writes are written by hand and PUT through the registry API:

* shapes/win:1       windows/amd64 (with os.version) + linux/amd64 + linux/arm64/v8, as Docker Hub's official images
* shapes/twice:1     linux/amd64 twice (gzip, then zstd) + linux/arm64/v8
* shapes/bare:1      one entry, without `platform` (the amd64 image)
* shapes/bare2:1     two entries without `platform`: ambiguous, refused
* shapes/nested:1    an index whose one entry (without platform) is an index of the two real images
* shapes/nestedp:1   the same nesting with a platform on the outer entry (linux/arm64/v8)
"""
from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from support import nixenv
from support.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    canonical_json,
    run_skopeo,
    sha256_digest,
    skopeo_args,
)
from support.nixenv import BIN, Nix, base_env, file_sha, stream_image
from support.registry import RegistryServer

nix = nixenv.nix
gen_dir = nixenv.gen_dir

AMD = "linux/amd64"
ARM = "linux/arm64/v8"


class Shapes:
    """The shapes registry and the digests the tests expect."""

    def __init__(self, reg: RegistryServer) -> None:
        self.reg = reg
        self.amd = ""   # library/multi's amd64 manifest (gzip layers)
        self.arm = ""   # its arm64/v8 manifest
        self.zstd = ""  # the amd64 image recompressed with zstd by skopeo
        self.hello = ""  # library/hello:oci (an amd64 image), the "windows" entry's target
        self.configs: dict[str, str] = {}  # manifest digest -> config digest
        self.indexes: dict[str, str] = {}  # tag -> index digest

    def manifest(self, ref: str) -> bytes:
        r = self.reg.http("GET", f"/v2/shapes/img/manifests/{ref}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
        r.raise_for_status()
        return r.content

    def put_index(self, repo_tag: str, entries: list[dict[str, Any]]) -> str:
        body = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
        repo, tag = repo_tag.split(":")
        digest = sha256_digest(body)
        for ref in (digest, tag):
            r = self.reg.http("PUT", f"/v2/{repo}/manifests/{ref}", data=body, headers={"Content-Type": OCI_INDEX})
            assert r.status_code == 201, r.text
        self.indexes[repo_tag] = digest
        return digest

    def entry(self, digest: str, platform: dict[str, str] | None = None) -> dict[str, Any]:
        raw = self.manifest(digest)
        mt = json.loads(raw).get("mediaType", OCI_MANIFEST)
        e: dict[str, Any] = {"mediaType": mt, "digest": digest, "size": len(raw)}
        if platform is not None:
            e["platform"] = platform
        return e


def _copy(src: RegistryServer, src_ref: str, dst: RegistryServer, dst_ref: str, *flags: str) -> None:
    run_skopeo("copy", "--quiet", "--insecure-policy", *flags, *skopeo_args(src, "src"), *skopeo_args(dst, "dest"),
               f"docker://{src.host}/{src_ref}", f"docker://{dst.host}/{dst_ref}")


@pytest.fixture(scope="module")
def shapes(plain_registry, test_pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shapes]:
    reg = RegistryServer(tmp_path_factory.mktemp("shapes") / "registry", "plain", test_pki).start()
    try:
        s = Shapes(reg)
        multi = plain_registry.images["library/multi:oci"]
        s.amd, s.arm = multi.platforms[AMD].manifest_digest, multi.platforms[ARM].manifest_digest
        for digest in (s.amd, s.arm):
            _copy(plain_registry, f"library/multi@{digest}", reg, f"shapes/img:{digest[7:19]}", "--preserve-digests")
        hello = plain_registry.images["library/hello:oci"].single
        s.hello = hello.manifest_digest
        _copy(plain_registry, f"library/hello@{s.hello}", reg, "shapes/img:hello", "--preserve-digests")
        # a zstd instance of the amd64 image: recompressed into an OCI layout, then pushed as it is
        layout = tmp_path_factory.mktemp("zstd") / "layout"
        run_skopeo("copy", "--quiet", "--insecure-policy", "--dest-compress-format", "zstd",
                   *skopeo_args(plain_registry, "src"), f"docker://{plain_registry.host}/library/multi@{s.amd}",
                   f"oci:{layout}:zstd")
        run_skopeo("copy", "--quiet", "--insecure-policy", "--preserve-digests", *skopeo_args(reg, "dest"),
                   f"oci:{layout}:zstd", f"docker://{reg.host}/shapes/img:zstd")
        s.zstd = sha256_digest(s.manifest("zstd"))
        assert "zstd" in json.loads(s.manifest("zstd"))["layers"][0]["mediaType"]
        for d in (s.amd, s.arm, s.zstd, s.hello):
            s.configs[d] = json.loads(s.manifest(d))["config"]["digest"]
        amd_p = {"os": "linux", "architecture": "amd64"}
        arm_p = {"os": "linux", "architecture": "arm64", "variant": "v8"}
        win_p = {"os": "windows", "architecture": "amd64", "os.version": "10.0.17763.5576"}
        s.put_index("shapes/img:win", [s.entry(s.hello, win_p), s.entry(s.amd, amd_p), s.entry(s.arm, arm_p)])
        s.put_index("shapes/img:twice", [s.entry(s.amd, amd_p), s.entry(s.zstd, amd_p), s.entry(s.arm, arm_p)])
        s.put_index("shapes/img:bare", [s.entry(s.amd)])
        s.put_index("shapes/img:bare2", [s.entry(s.amd), s.entry(s.arm)])
        inner = s.put_index("shapes/img:inner", [s.entry(s.amd, amd_p), s.entry(s.arm, arm_p)])
        s.put_index("shapes/img:nested", [s.entry(inner)])
        s.put_index("shapes/img:nestedp", [s.entry(inner, arm_p)])
        yield s
    finally:
        reg.stop()


def tool(name: str, reg: RegistryServer, tag: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), "--registry", reg.url, *args, "shapes/img", tag], capture_output=True,
                          text=True, env=base_env(), timeout=120, stdin=subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def refused(proc: subprocess.CompletedProcess, prog: str, code: int = 7) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"{prog}: ")
    return line


def manifest_digest(reg: RegistryServer, tag: str, *args: str) -> str:
    return sha256_digest(ok(tool("hocker-manifest", reg, tag, *args)).encode())


def nix_systems(text: str) -> list[str]:
    return re.findall(r'^\s*"?([a-z0-9_]+-linux)"?\s*=', text, re.M)


def blob_requests(reg: RegistryServer, mark: int) -> list[str]:
    log = reg.log_file.read_bytes()[mark:].decode(errors="replace")
    return [p for p in re.findall(r'"(?:GET|HEAD) (\S+) HTTP', log) if "/blobs/" in p]


# -- item 2: Windows entries and duplicates --------------------------------------------------------------


def test_all_skips_windows_and_says_so(shapes: Shapes) -> None:
    reg = shapes.reg
    text = ok(tool("docker2nix", reg, "win", "--platform", "all"))
    assert sorted(set(nix_systems(text))) == ["aarch64-linux", "x86_64-linux"], text
    assert shapes.amd in text and shapes.arm in text and shapes.hello not in text
    [note] = [line for line in text.splitlines() if "skipped" in line]
    assert note.startswith("#") and "windows/amd64" in note
    lock = json.loads(ok(tool("docker2nix", reg, "win", "--platform", "all", "--json")))
    assert [(p["platform"], p["system"]) for p in lock["platforms"]] == [(AMD, "x86_64-linux"), (ARM, "aarch64-linux")]
    # a Windows platform is still there for the tools that can use it, and named in "no such platform"
    assert manifest_digest(reg, "win", "--platform", "windows/amd64") == shapes.hello
    line = refused(tool("hocker-manifest", reg, "win", "--platform", "linux/s390x"), "hocker-manifest")
    assert line.endswith(f"available: windows/amd64, {AMD}, {ARM}")
    # explicitly asking for Windows in a Nix file is still an error (it cannot be built)
    refused(tool("docker2nix", reg, "win", "--platform", "windows/amd64", "--platform", AMD), "docker2nix", 2)


def test_all_of_windows_index_builds_with_nix(shapes: Shapes, nix: Nix, gen_dir: Path) -> None:
    out = gen_dir / "win.nix"
    ok(tool("docker2nix", shapes.reg, "win", "--platform", "all", "--out", str(out), "-q"))
    [config] = nix.build_paths(out, attr="imageConfig", system="x86_64-linux")
    assert file_sha(config) == shapes.configs[shapes.amd]
    assert nix.eval_json(out, "x.imageDigest", system="aarch64-linux") == shapes.arm
    [result] = nix.build_paths(out, system="x86_64-linux")
    archive = stream_image(result, gen_dir / "win.tar")
    with tarfile.open(archive) as tf:  # what `docker load` reads: the image ID is the config's digest
        [entry] = json.loads(tf.extractfile("manifest.json").read())  # type: ignore[union-attr]
        config = tf.extractfile(entry["Config"]).read()  # type: ignore[union-attr]
    assert sha256_digest(config) == shapes.configs[shapes.amd]


def test_duplicate_platform_picks_the_first_like_single_choice(shapes: Shapes) -> None:
    reg = shapes.reg
    assert manifest_digest(reg, "twice", "--platform", AMD) == shapes.amd  # the first linux/amd64 entry
    text = ok(tool("docker2nix", reg, "twice", "--platform", "all"))
    assert sorted(nix_systems(text)) == ["aarch64-linux", "x86_64-linux"]
    assert shapes.amd in text and shapes.zstd not in text and "skipped" not in text
    lock = json.loads(ok(tool("docker2nix", reg, "twice", "--platform", AMD, "--json")))
    assert [p["manifest"]["digest"] for p in lock["platforms"]] == [shapes.amd]


# -- item 3: entries without platform --------------------------------------------------------------------


def test_sole_entry_without_platform_is_used(shapes: Shapes, tmp_path: Path) -> None:
    reg = shapes.reg
    assert manifest_digest(reg, "bare") == shapes.amd                       # default platform (this host's)
    assert manifest_digest(reg, "bare", "--platform", AMD) == shapes.amd   # explicit: config checked
    assert ok(tool("hocker-config", reg, "bare", "--platform", AMD)).encode() != b""
    for args in ((), ("--platform", "all"), ("--platform", AMD)):
        text = ok(tool("docker2nix", reg, "bare", *args))
        assert f'imageDigest = "{shapes.amd}"' in text
    ok(tool("hocker-image", reg, "bare", "--out", str(tmp_path / "bare.tar"), "-q"))
    # explicit and contradicted by the config: refused, naming both platforms
    for prog in ("hocker-manifest", "hocker-config", "docker2nix"):
        line = refused(tool(prog, reg, "bare", "--platform", "linux/arm64"), prog)
        assert f"is for {AMD}" in line and f"not the platform {ARM} asked for" in line


def test_two_entries_without_platform_are_refused_truthfully(shapes: Shapes) -> None:
    reg = shapes.reg
    for prog, args in (("hocker-manifest", ()), ("hocker-manifest", ("--platform", AMD)), ("docker2nix", ()),
                       ("hocker-image", ("--out", "/nonexistent/x.tar"))):
        line = refused(tool(prog, reg, "bare2", *args), prog)
        assert line.endswith("available: 2 entries without platform"), line
    line = refused(tool("docker2nix", reg, "bare2", "--platform", "all"), "docker2nix")
    assert "offers no usable platform" in line and line.endswith("available: 2 entries without platform"), line


def test_attestations_are_counted_apart(plain_registry) -> None:
    proc = subprocess.run([str(BIN / "hocker-manifest"), "--registry", plain_registry.url, "--platform", "linux/s390x",
                           "library/multi", "oci"], capture_output=True, text=True, env=base_env(), timeout=60)
    line = refused(proc, "hocker-manifest")
    assert line.endswith(f"available: {AMD}, {ARM} (1 attestation(s) skipped)"), line


# -- item 4: nested indexes ------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["nested", "nestedp"])
def test_nested_index_same_for_every_tool(shapes: Shapes, tag: str, tmp_path: Path) -> None:
    reg = shapes.reg
    assert manifest_digest(reg, tag, "--platform", ARM) == shapes.arm
    ok(tool("hocker-image", reg, tag, "--platform", ARM, "--out", str(tmp_path / "n.tar"), "-q"))
    lock = json.loads(ok(tool("docker2nix", reg, tag, "--platform", ARM, "--json")))
    assert lock["index"]["digest"] == shapes.indexes[f"shapes/img:{tag}"]
    assert [(p["platform"], p["manifest"]["digest"]) for p in lock["platforms"]] == [(ARM, shapes.arm)]
    lock = json.loads(ok(tool("docker2nix", reg, tag, "--platform", "all", "--json")))
    got = [(p["platform"], p["manifest"]["digest"]) for p in lock["platforms"]]
    # an outer entry without platform is expanded; one with a platform stands for that platform only
    assert got == ([(AMD, shapes.amd), (ARM, shapes.arm)] if tag == "nested" else [(ARM, shapes.arm)])
    if tag == "nested":
        assert f'imageDigest = "{shapes.amd}"' in ok(tool("docker2nix", reg, tag, "--platform", AMD))


# -- item 5: --platform against a single-platform manifest ------------------------------------------------


def test_explicit_platform_checked_against_single_manifest(shapes: Shapes, tmp_path: Path) -> None:
    reg = shapes.reg
    for prog, extra in (("hocker-manifest", ()), ("hocker-manifest", ("--digest",)), ("hocker-config", ()),
                        ("hocker-image", ("--out", str(tmp_path / "x.tar"))), ("docker2nix", ())):
        line = refused(tool(prog, reg, "hello", "--platform", "linux/arm64", *extra), prog)
        assert f"image {shapes.hello} is for {AMD}" in line and f"not the platform {ARM} asked for" in line, line
    assert not (tmp_path / "x.tar").exists()
    assert manifest_digest(reg, "hello", "--platform", "linux/x86_64") == shapes.hello
    text = ok(tool("docker2nix", reg, "hello", "--platform", AMD))
    assert f'platform = "{AMD}"' in text


def test_without_platform_a_single_manifest_is_taken_and_docker2nix_fetches_no_blob(shapes: Shapes) -> None:
    reg = shapes.reg
    mark = reg.log_file.stat().st_size
    text = ok(tool("docker2nix", reg, "hello"))
    assert f'imageDigest = "{shapes.hello}"' in text
    assert blob_requests(reg, mark) == []
    mark = reg.log_file.stat().st_size
    ok(tool("docker2nix", reg, "hello", "--platform", AMD))
    assert blob_requests(reg, mark) == [f"/v2/shapes/img/blobs/{shapes.configs[shapes.hello]}"]


# -- the rule itself, without a registry ----------------------------------------------------------------


def _index(*entries: dict[str, Any]) -> Any:
    from hocker_fetch.manifest import parse_manifest

    raw = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)})
    return parse_manifest(raw, sha256_digest(raw))


def _e(n: int, platform: dict[str, str] | None = None, media_type: str = OCI_MANIFEST, **extra: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"mediaType": media_type, "digest": "sha256:" + f"{n:x}" * 64, "size": 100, **extra}
    if platform is not None:
        e["platform"] = platform
    return e


def test_rule_units() -> None:
    from hocker_fetch.errors import ManifestError
    from hocker_fetch.manifest import Platform, check_config_platform, config_platform, parse_manifest, select_platform

    amd = {"os": "linux", "architecture": "amd64"}
    att = _e(9, {"os": "unknown", "architecture": "unknown"},
             annotations={"vnd.docker.reference.type": "attestation-manifest"})
    idx = _index(_e(1, amd), _e(2), att, _e(3, amd, media_type="application/vnd.example+json"))
    assert idx.describe() == ("linux/amd64; 1 entry without platform; 1 entry of another media type "
                              "(1 attestation(s) skipped)")
    assert select_platform(idx, Platform.parse("linux/amd64")).digest == "sha256:" + "1" * 64
    with pytest.raises(ManifestError, match=r"available: linux/amd64; 1 entry without platform"):
        select_platform(idx, Platform.parse("linux/arm64"))  # the bare entry is not the only candidate
    only = _index(_e(2), att)
    assert select_platform(only, Platform.parse("linux/s390x")).platform is None
    assert _index(att).describe() == "none (only attestations: 1)"
    assert _index().describe() == "none"
    # config platforms: normalised like index platforms; none declared is no contradiction
    assert config_platform(b'{"os":"linux","architecture":"aarch64"}') == Platform("linux", "arm64", "v8")
    assert config_platform(b'{"rootfs":{}}') is None
    raw = canonical_json({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": _e(4), "layers": []})
    m = parse_manifest(raw, sha256_digest(raw))
    assert check_config_platform(m, b"{}", Platform.parse("linux/arm64")) is None
    assert check_config_platform(m, b'{"os":"linux","architecture":"arm","variant":"v7"}',
                                 Platform.parse("linux/arm")) == Platform("linux", "arm", "v7")
    with pytest.raises(ManifestError, match="is for linux/arm/v6 .* not the platform linux/arm/v7 asked for"):
        check_config_platform(m, b'{"os":"linux","architecture":"arm","variant":"v6"}', Platform.parse("linux/arm"))
    with pytest.raises(ManifestError, match="malformed platform"):
        config_platform(b'{"os":"linux\\n#","architecture":"amd64"}')
