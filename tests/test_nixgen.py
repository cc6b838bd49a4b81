"""docker2nix's output: golden files for the templates, Nix-parsable, and the CLI against the real registry."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hocker_fetch.digest import to_nix_base32
from hocker_fetch.manifest import Platform, parse_manifest
from hocker_fetch.nixgen import nix_string, pin_from_parts, registry_uri, render_json, render_nix, split_repository
from hocker_fetch.reference import resolve_reference

GOLDEN = Path(__file__).resolve().parent / "golden"
BIN = Path(sys.executable).parent
UPDATE = os.environ.get("HOCKER_UPDATE_GOLDEN") == "1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fake_manifest(label: str, layers: int, media_type: str = OCI_MANIFEST):
    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(f"config {label}".encode()),
              "size": 1000 + len(label)}
    doc = {"schemaVersion": 2, "mediaType": media_type, "config": config,
           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "digest": sha(f"layer {label} {i}".encode()), "size": 5000 * (i + 1)} for i in range(layers)]}
    raw = json.dumps(doc, sort_keys=True).encode()
    return parse_manifest(raw, sha(raw))


def index_blob(label: str):
    raw = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [], "label": label}).encode()
    return parse_manifest(raw, sha(raw))


def cases() -> dict[str, str]:
    hub = resolve_reference("debian", "jessie")
    local = resolve_reference("a/b/c", "nested", "http://127.0.0.1:5000")
    multi = resolve_reference("library/multi", "oci", "http://127.0.0.1:5000")
    by_digest = resolve_reference(f"ghcr.io/o/app@{fake_manifest('app', 1).digest}")
    idx = index_blob("multi")
    idx_blob = idx.descriptor
    single = pin_from_parts(hub, registry_uri(hub), [(fake_manifest("debian", 2, DOCKER_MANIFEST), None)])
    nested = pin_from_parts(local, registry_uri(local), [(fake_manifest("nested", 1), None)])
    alt = pin_from_parts(hub, registry_uri(hub), [(fake_manifest("debian", 2, DOCKER_MANIFEST), None)],
                         alt_image_name='my "odd" ${name}')
    two = pin_from_parts(multi, registry_uri(multi),
                         [(fake_manifest("amd64", 2), Platform.parse("linux/amd64")),
                          (fake_manifest("arm64", 2), Platform.parse("linux/arm64"))], idx_blob)
    one_of_index = pin_from_parts(multi, registry_uri(multi),
                                  [(fake_manifest("arm64", 2), Platform.parse("linux/arm64"))], idx_blob)
    digest_only = pin_from_parts(by_digest, registry_uri(by_digest), [(fake_manifest("app", 1), None)])
    return {
        "hub-base32.nix": render_nix(single),
        "hub-sri.nix": render_nix(single, "sri"),
        "hub-alt-name.nix": render_nix(alt),
        "nested.nix": render_nix(nested),
        "multi.nix": render_nix(two),
        "multi-sri.nix": render_nix(two, "sri"),
        "one-platform-of-index.nix": render_nix(one_of_index),
        "digest-only.nix": render_nix(digest_only),
        "multi.lock.json": render_json(two),
    }


@pytest.mark.parametrize("name", sorted(cases()))
def test_golden(name: str) -> None:
    text = cases()[name]
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}: run with HOCKER_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


def test_hocker_shape_is_kept() -> None:
    """The single-platform file is hocker's expression plus new attributes: same header, names and nesting."""
    text = (GOLDEN / "hub-base32.nix").read_text()
    body = text[text.index("{ fetchDockerConfig"):]
    assert body.startswith("{ fetchDockerConfig, fetchDockerLayer, fetchdocker }:\nfetchdocker rec {\n"
                           '  name = "debian";\n  registry = "https://registry-1.docker.io/v2/";\n'
                           '  repository = "library";\n  imageName = "debian";\n  tag = "jessie";\n')
    for snippet in ("  imageConfig = fetchDockerConfig {\n    inherit tag registry repository imageName imageDigest;\n",
                    "  imageLayers = let\n    layer0 = fetchDockerLayer {\n"
                    "      inherit registry repository imageName;\n",
                    "  in [ layer0 layer1 ];\n}\n"):
        assert snippet in body


def test_compiled_templates_are_current_and_render_identically(tmp_path: Path, monkeypatch) -> None:
    """Issue 13: docker2nix renders from templates compiled ahead of time (jinja2 ModuleLoader). They must be what
    this jinja2 compiles the .j2 sources to (else: bash scripts/compile-templates), be the ones used, and render
    every golden case exactly as the sources do."""
    from hocker_fetch import nixgen

    assert nixgen.compiled_current(), "stale hocker_fetch/templates/compiled: run bash scripts/compile-templates"
    fresh = tmp_path / "fresh"
    nixgen.compile_templates(str(fresh))
    committed = Path(nixgen.COMPILED)
    assert sorted(p.name for p in fresh.iterdir()) == sorted(p.name for p in committed.iterdir()
                                                             if p.name != "__pycache__")
    for p in fresh.iterdir():
        assert p.read_bytes() == (committed / p.name).read_bytes(), p.name
    for name in ("image.nix.j2", "multi.nix.j2", "_blobs.nix.j2"):
        assert nixgen._environment().get_template(name).filename.startswith(str(committed)), name
        assert nixgen._environment(compiled=False).get_template(name).filename.endswith(f"templates/{name}")

    compiled = cases()
    original = nixgen._environment
    monkeypatch.setattr(nixgen, "_environment", lambda compiled=True: original(compiled=False))
    assert cases() == compiled

    # an edited .j2 whose compiled form was not regenerated is never used
    copy = tmp_path / "templates"
    shutil.copytree(nixgen.TEMPLATES, copy)
    monkeypatch.setattr(nixgen, "TEMPLATES", str(copy))
    monkeypatch.setattr(nixgen, "COMPILED", str(copy / "compiled"))
    assert nixgen.compiled_current()
    (copy / "image.nix.j2").write_text((copy / "image.nix.j2").read_text() + "# edited\n")
    assert not nixgen.compiled_current()


@pytest.fixture(scope="module")
def nix_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("nix-instantiate") is None:
        pytest.fail("nix is missing: run scripts/setup-deps", pytrace=False)
    root = tmp_path_factory.mktemp("nixgen-nix")
    (root / "nix.conf").write_text("substituters =\nsandbox = false\nbuild-users-group =\n")
    return {"NIX_CONF_DIR": str(root), "PATH": "/usr/bin:/bin", "HOME": str(root),
            "NIX_STORE_DIR": str(root / "store"), "NIX_STATE_DIR": str(root / "state")}


def nix_eval(nix_env: dict[str, str], expr: str):
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--json", "--expr", expr], capture_output=True,
                         text=True, env=nix_env, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


STUBS = "{ fetchDockerConfig = a: a; fetchDockerLayer = a: a; fetchdocker = a: a; }"


def test_golden_files_evaluate(nix_env: dict[str, str]) -> None:
    """With identity fetchers the files evaluate to exactly the arguments the Nix functions will get."""
    single = nix_eval(nix_env, f"import {GOLDEN / 'hub-base32.nix'} {STUBS}")
    m = fake_manifest("debian", 2, DOCKER_MANIFEST)
    assert single["imageDigest"] == m.digest
    assert single["imageConfig"] == {"configDigest": m.config.digest, "imageDigest": m.digest,
                                     "imageName": "debian", "registry": "https://registry-1.docker.io/v2/",
                                     "repository": "library", "tag": "jessie",
                                     "sha256": to_nix_base32(m.config.digest)}
    assert [layer["layerDigest"] for layer in single["imageLayers"]] == [d.digest[7:] for d in m.layers]
    assert [layer["sha256"] for layer in single["imageLayers"]] == [to_nix_base32(d.digest) for d in m.layers]

    alt = nix_eval(nix_env, f"import {GOLDEN / 'hub-alt-name.nix'} {STUBS}")
    assert alt["image"] == 'my "odd" ${name}:jessie'  # escaped: nothing interpolated
    assert alt["name"] == "my-odd-name"

    nested = nix_eval(nix_env, f"import {GOLDEN / 'nested.nix'} {STUBS}")
    assert (nested["repository"], nested["imageName"], nested["registry"]) == ("a/b", "c", "http://127.0.0.1:5000/v2/")

    for system, label in (("x86_64-linux", "amd64"), ("aarch64-linux", "arm64"), ("aarch64-darwin", "arm64")):
        multi = nix_eval(nix_env, f'import {GOLDEN / "multi.nix"} ({STUBS} // {{ system = "{system}"; }})')
        assert multi["imageDigest"] == fake_manifest(label, 2).digest
        assert multi["imageConfig"]["configDigest"] == fake_manifest(label, 2).config.digest
    out = subprocess.run(["nix-instantiate", "--eval", "--strict", "--expr",
                          f'import {GOLDEN / "multi.nix"} ({STUBS} // {{ system = "i686-linux"; }})'],
                         capture_output=True, text=True, env=nix_env, timeout=60)
    assert out.returncode != 0
    assert "pinned for x86_64-linux, aarch64-linux only, not for i686-linux" in out.stderr


def test_nix_string_escaping() -> None:
    assert nix_string('a"b\\c${d}e$f\n') == '"a\\"b\\\\c\\${d}e$f\\n"'
    assert nix_string(None) == "null"


def test_multi_template_escapes_the_source_inside_its_error_message() -> None:
    """The `throw` for an unpinned system splices the source into a string literal: it must be escaped there too."""
    import dataclasses

    ref = dataclasses.replace(resolve_reference("library/multi", "oci", "http://127.0.0.1:5000"),
                              tag='x"${builtins.abort "pwned"}')
    pin = pin_from_parts(ref, registry_uri(ref), [(fake_manifest("amd64", 1), Platform.parse("linux/amd64")),
                                                  (fake_manifest("arm64", 1), Platform.parse("linux/arm64"))])
    line = next(line for line in render_nix(pin).splitlines() if "was pinned for" in line)
    assert 'x\\"\\${builtins.abort \\"pwned\\"}' in line
    assert "${hostSystem}" in line  # the template's own interpolation stays live


def test_split_repository_round_trips() -> None:
    for path in ("library/debian", "a/b/c", "x", "o/app"):
        repo, name = split_repository(path)
        assert (f"{repo}/{name}" if repo else name) == path


# -- the CLI against the real registry ------------------------------------------------------------------------


def run(*args: str, input: bytes | None = None, stdin=subprocess.DEVNULL, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_USER", "DOCKER_PASS", "DOCKER_TOKEN")}
    env["HOME"] = "/nonexistent-home"
    env.update(env_extra or {})
    return subprocess.run([str(BIN / "docker2nix"), *args], capture_output=True, env=env, timeout=60,
                          input=input, stdin=None if input is not None else stdin)


def test_json_lock_matches_the_registry(plain_registry) -> None:
    reg = plain_registry
    info = reg.images["library/multi:oci"]
    out = run("--registry", reg.url, "--platform", "all", "--json", "library/multi", "oci")
    assert out.returncode == 0, out.stderr
    lock = json.loads(out.stdout)
    assert lock["index"]["digest"] == info.digest and lock["index"]["mediaType"] == info.media_type
    assert lock["registry"] == f"{reg.url}/v2/"
    assert [p["platform"] for p in lock["platforms"]] == ["linux/amd64", "linux/arm64/v8"]  # attestation skipped
    assert [p["system"] for p in lock["platforms"]] == ["x86_64-linux", "aarch64-linux"]
    for p in lock["platforms"]:
        pi = info.platforms[p["platform"]]
        assert p["manifest"]["digest"] == pi.manifest_digest
        assert p["manifest"]["size"] == len(pi.manifest_bytes)
        assert p["config"]["digest"] == pi.config_digest and p["config"]["size"] == len(pi.config_bytes)
        assert [(d["digest"], d["mediaType"], d["size"]) for d in p["layers"]] == [tuple(x) for x in pi.layers]
        assert all(d["sha256"] == to_nix_base32(d["digest"]) for d in p["layers"])


def test_manifest_file_stdin_and_fetch_agree(plain_registry, tmp_path: Path) -> None:
    reg = plain_registry
    info = reg.images["library/hello:v2s2"]
    fetched = run("--registry", reg.url, "library/hello", "v2s2")
    assert fetched.returncode == 0, fetched.stderr
    (tmp_path / "m.json").write_bytes(info.raw)
    from_file = run("--registry", reg.url, "--manifest", str(tmp_path / "m.json"), "library/hello", "v2s2")
    piped = run("--registry", reg.url, "library/hello", "v2s2", input=info.raw)
    empty_pipe = run("--registry", reg.url, "library/hello", "v2s2", input=b"")  # CI: a pipe with nothing
    devnull = run("--registry", reg.url, "library/hello", "v2s2")
    with open(tmp_path / "m.json", "rb") as f:
        redirected = run("--registry", reg.url, "library/hello", "v2s2", stdin=f)
    for other in (from_file, piped, empty_pipe, devnull, redirected):
        assert other.returncode == 0, other.stderr
        assert other.stdout == fetched.stdout
    assert f'imageDigest = "{info.digest}"'.encode() in fetched.stdout


def test_manifest_given_needs_no_registry(tmp_path: Path) -> None:
    """A single-platform manifest from a file: nothing is fetched (the registry below does not exist)."""
    m = fake_manifest("offline", 1)
    (tmp_path / "m.json").write_bytes(m.raw)
    out = run("--registry", "http://127.0.0.1:9", "--manifest", str(tmp_path / "m.json"), "library/x", "1")
    assert out.returncode == 0, out.stderr
    assert f'imageDigest = "{m.digest}"'.encode() in out.stdout


def test_errors(plain_registry, tmp_path: Path) -> None:
    reg = plain_registry
    out = run("--registry", reg.url, "--platform", "linux/s390x", "library/multi", "oci")
    assert out.returncode == 7 and b"no manifest for platform linux/s390x" in out.stderr
    out = run("--registry", reg.url, "--platform", "linux/amd64", "--platform", "linux/arm64", "library/hello", "oci")
    assert out.returncode == 7 and b"single-platform image" in out.stderr
    other = reg.images["library/hello2:oci"].digest
    out = run("--registry", reg.url, f"library/hello@{other}", input=reg.images["library/hello:oci"].raw)
    assert out.returncode == 7 and b"not the" in out.stderr
    out = run("--registry", reg.url, "library/nope", "1")
    assert out.returncode == 4 and out.stderr.count(b"\n") == 1
    out = run("--registry", reg.url, "--hash-format", "hex", "library/hello", "oci")
    assert out.returncode == 2
    (tmp_path / "empty").write_bytes(b"")
    out = run("--registry", reg.url, "--manifest", str(tmp_path / "empty"), "library/hello", "oci")
    assert out.returncode == 2 and b"empty" in out.stderr


def test_one_platform_of_an_index_pins_the_platform_manifest(plain_registry) -> None:
    reg = plain_registry
    info = reg.images["library/multi:list"]
    out = run("--registry", reg.url, "--platform", "linux/arm64", "library/multi", "list")
    assert out.returncode == 0, out.stderr
    text = out.stdout.decode()
    assert f'imageDigest = "{info.platforms["linux/arm64/v8"].manifest_digest}"' in text
    assert f'indexDigest = "{info.digest}"' in text
    assert 'platform = "linux/arm64/v8"' in text
