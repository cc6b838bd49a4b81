"""Issue 11: hocker-lock, the lock file of a fleet of images (add, list, check, update, remove).

A plain registry of the module's own (`fleet`) holds images pushed with skopeo from the fixture layout plus
two versioned builds of one app (config `created` and `org.opencontainers.image.version` differ); tests move
tags by pushing another image onto them and delete tags through the registry API. The private cases use the
session's token registry and its token server's request log; "HEAD only" is read from the registry's access
log. Every run is the installed console script in a subprocess, as users and bots run it.
"""
from __future__ import annotations

import base64
import difflib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import requests
from support.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    OciLayout,
    canonical_json,
    layer,
    push_ref,
    seeded_bytes,
    sha256_digest,
)
from support.registry import RegistryServer

from hocker_fetch import lockfile

BIN = Path(sys.executable).parent
AMD, ARM = "linux/amd64", "linux/arm64/v8"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def env(**extra: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_USER", "DOCKER_PASS", "DOCKER_TOKEN", "REGISTRY_AUTH_FILE", "DOCKER_CONFIG")}
    out["HOME"] = "/nonexistent-home"
    out.update(extra)
    return out


def lock(lockpath: Path, *args: str, stdin: Optional[str] = None, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "hocker-lock"), "--file", str(lockpath), *args], capture_output=True,
                          text=True, env=env(**extra), timeout=120, input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def failed(proc: subprocess.CompletedProcess, code: int) -> str:
    """The one stderr line of a failed run (exit `code`), with the program's prefix."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("usage:")
             and not line.startswith(" ")]
    assert len(lines) == 1 and lines[0].startswith("hocker-lock"), proc.stderr
    return lines[0]


def versioned_layout(directory: Path) -> dict[str, dict]:
    """Two builds of one app whose configs carry `created` and the OCI version label."""
    lay = OciLayout()
    refs = {}
    for version, created in (("1.0", "2024-01-01T00:00:00Z"), ("1.1", "2024-02-01T00:00:00Z")):
        top = layer([("app/version", version.encode()), ("app/data.bin", seeded_bytes(version, 4096))])
        config = {"architecture": "amd64", "os": "linux", "created": created,
                  "config": {"Labels": {"org.opencontainers.image.version": version}},
                  "rootfs": {"type": "layers", "diff_ids": [top.diff_id]}}
        cdesc = lay.add_blob(canonical_json(config), OCI_CONFIG)
        ldesc = lay.add_blob(top.blob, top.media_type)
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": cdesc, "layers": [ldesc]}
        refs[version] = lay.add_blob(canonical_json(manifest), OCI_MANIFEST)
        lay.tag(version, refs[version])
    lay.write(directory)
    return refs


class FleetRegistry(RegistryServer):
    """The reference registry, told to accept manifests whose foreign layers carry `urls` (as Docker Hub's)."""

    def _write_files(self) -> None:
        super()._write_files()
        with open(self.config_file, "a") as f:
            f.write("validation:\n  manifests:\n    urls:\n      allow:\n        - ^https?://\n")


class Fleet:
    def __init__(self, reg: RegistryServer, layout: Path, versioned: Path, policy: Path,
                 refs: dict[str, dict]) -> None:
        self.reg, self.layout, self.versioned, self.policy, self.refs = reg, layout, versioned, policy, refs

    def push(self, ref: str, target: str) -> None:
        """Push a layout image onto `repo:tag` (ref "1.0"/"1.1": the versioned app; else the fixture layout)."""
        layout = self.versioned if ref in ("1.0", "1.1") else self.layout
        flags = ["--preserve-digests", "--all"] if ref == "multi" else ["--preserve-digests"]
        push_ref(self.reg, layout, ref, target, flags, self.policy)

    def ref(self, path: str) -> str:
        return f"{self.reg.host}/{path}"

    def put_blob(self, repo: str, data: bytes) -> dict[str, Any]:
        r = self.reg.http("POST", f"/v2/{repo}/blobs/uploads/")
        assert r.status_code == 202, r.text
        loc = r.headers["Location"]
        loc = self.reg.url + loc if loc.startswith("/") else loc
        r = requests.put(f"{loc}{'&' if '?' in loc else '?'}digest={sha256_digest(data)}", data=data, timeout=30)
        assert r.status_code == 201, r.text
        return {"digest": sha256_digest(data), "size": len(data)}

    def put_manifest(self, repo_tag: str, doc: dict[str, Any]) -> None:
        repo, tag = repo_tag.split(":")
        r = self.reg.http("PUT", f"/v2/{repo}/manifests/{tag}", data=canonical_json(doc),
                          headers={"Content-Type": doc["mediaType"]})
        assert r.status_code == 201, r.text

    def mark(self) -> int:
        return self.reg.log_file.stat().st_size

    def requests(self, mark: int) -> list[tuple[str, str]]:
        log = self.reg.log_file.read_bytes()[mark:].decode(errors="replace")
        return re.findall(r'"(GET|HEAD|POST|PUT|DELETE|PATCH) (\S+) HTTP', log)


@pytest.fixture(scope="module")
def fleet(test_layout: Path, skopeo_policy: Path, test_pki,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    versioned = root / "versioned"
    refs = versioned_layout(versioned)
    reg = FleetRegistry(root / "registry", "plain", test_pki).start()
    try:
        f = Fleet(reg, test_layout, versioned, skopeo_policy, refs)
        for ref, target in (("hello", "lock/hello:1"), ("multi", "lock/multi:1"), ("nested", "deep/a/b/c:1"),
                            ("1.0", "lock/app:stable")):
            f.push(ref, target)
        yield f
    finally:
        reg.stop()


def entries_of(path: Path) -> dict[str, Any]:
    text = path.read_text()
    assert text == lockfile.dumps(lockfile.loads(text, str(path))), "not in the stable dump form"
    return json.loads(text)["images"]


def manifest_digest(reg: RegistryServer, path: str, tag: str) -> str:
    r = reg.http("GET", f"/v2/{path}/manifests/{tag}", headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    r.raise_for_status()
    return sha256_digest(r.content)


# -- add and list --------------------------------------------------------------------------------------------

def test_add_single_multi_all_nested_and_list(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "images.lock.json"
    r = lock(path, "add", "--platform", AMD, fleet.ref("lock/hello:1"))
    ok(r)
    assert "added hello" in r.stderr
    ok(lock(path, "add", "--platform", AMD, "--platform", "linux/arm64", fleet.ref("lock/multi:1")))
    ok(lock(path, "add", "--name", "multi_all", "--platform", "all", fleet.ref("lock/multi:1")))
    ok(lock(path, "add", "--platform", AMD, fleet.ref("deep/a/b/c:1")))
    ok(lock(path, "add", "--name", "app", "--platform", AMD, fleet.ref("lock/app:stable")))
    images = entries_of(path)
    assert sorted(images) == ["app", "c", "hello", "multi", "multi_all"]

    hello = images["hello"]
    assert (hello["host"], hello["registry"], hello["repository"], hello["tag"]) == \
        (fleet.reg.host, f"http://{fleet.reg.host}/v2/", "lock/hello", "1")
    assert hello["index"] is None and hello["platforms"] == [AMD]
    [(system, pin)] = hello["systems"].items()
    assert system == "x86_64-linux" and pin["platform"] == AMD
    assert pin["manifest"]["digest"] == manifest_digest(fleet.reg, "lock/hello", "1")
    served = json.loads(fleet.reg.http("GET", f"/v2/lock/hello/manifests/{pin['manifest']['digest']}",
                                       headers={"Accept": OCI_MANIFEST}).content)
    assert pin["config"] == served["config"]
    assert pin["layers"] == served["layers"]
    assert pin["created"] == "2023-11-14T22:13:20Z" and pin["version"] is None

    multi = images["multi"]
    assert multi["index"]["digest"] == manifest_digest(fleet.reg, "lock/multi", "1")
    assert sorted(multi["systems"]) == ["aarch64-linux", "x86_64-linux"]
    assert multi["platforms"] == [AMD, ARM]  # normalised
    assert multi["systems"]["aarch64-linux"]["platform"] == ARM
    # `all`: what Nix builds for (the attestation entry is skipped), the same pins as the explicit two
    assert images["multi_all"]["platforms"] == "all"
    assert images["multi_all"]["systems"] == multi["systems"]

    c = images["c"]
    assert c["repository"] == "deep/a/b/c" and list(c["systems"]) == ["x86_64-linux"]
    app = images["app"]["systems"]["x86_64-linux"]
    assert (app["created"], app["version"]) == ("2024-01-01T00:00:00Z", "1.0")

    # list: text and json
    text = ok(lock(path, "list"))
    assert len(text.splitlines()) == 5
    assert re.search(rf"^app  {re.escape(fleet.reg.host)}/lock/app:stable  [0-9a-f]{{12}}  x86_64-linux version 1.0",
                     text, re.M), text
    after = subprocess.run([str(BIN / "hocker-lock"), "list", "--file", str(path)], capture_output=True, text=True,
                           env=env(), timeout=60, cwd=tmp_path.parent)  # --file also after the command
    assert ok(after) == text
    listed = json.loads(ok(lock(path, "list", "--json")))["images"]
    assert [e["name"] for e in listed] == sorted(images)
    m = next(e for e in listed if e["name"] == "multi")
    assert m["systems"] == ["aarch64-linux", "x86_64-linux"] and m["digest"] == multi["index"]["digest"]
    assert m["reference"] == f"{fleet.reg.host}/lock/multi:1"

    # add of an existing name replaces it; remove removes one
    r = lock(path, "add", "--name", "hello", "--platform", AMD, fleet.ref("lock/app:stable"))
    ok(r)
    assert "replaced hello" in r.stderr
    assert entries_of(path)["hello"]["repository"] == "lock/app"
    ok(lock(path, "remove", "c"))
    assert "c" not in entries_of(path)


def test_single_platform_image_keyed_by_its_config(fleet: Fleet, tmp_path: Path) -> None:
    """A single-platform manifest is keyed by the platform its config declares; another platform is refused."""
    path = tmp_path / "l.json"
    ok(lock(path, "add", "--platform", "all", fleet.ref("lock/hello:1")))
    assert list(entries_of(path)["hello"]["systems"]) == ["x86_64-linux"]
    line = failed(lock(path, "add", "--name", "x", "--platform", ARM, fleet.ref("lock/hello:1")), 7)
    assert "linux/amd64" in line and ARM in line
    assert list(entries_of(path)) == ["hello"]


# -- check and update ----------------------------------------------------------------------------------------

def test_check_and_update_move_exactly_one_entry(fleet: Fleet, tmp_path: Path) -> None:
    fleet.push("1.0", "move/app:stable")
    fleet.push("hello", "move/hello:1")
    fleet.push("multi", "move/multi:1")
    path = tmp_path / "images.lock.json"
    for ref in ("move/app:stable", "move/hello:1", "move/multi:1"):
        ok(lock(path, "add", "--platform", AMD, fleet.ref(ref)))

    mark = fleet.mark()
    r = lock(path, "check")
    assert r.returncode == 0 and r.stdout == "", r
    # nothing moved: one HEAD per entry, no GET (no manifest, no config)
    reqs = fleet.requests(mark)
    assert sorted(p for _m, p in reqs) == [f"/v2/move/{n}/manifests/{t}" for n, t in
                                          (("app", "stable"), ("hello", "1"), ("multi", "1"))]
    assert {m for m, _p in reqs} == {"HEAD"}

    before = path.read_text()
    fleet.push("1.1", "move/app:stable")
    r = lock(path, "check")
    assert r.returncode == 1, r
    old = fleet.refs["1.0"]["digest"][7:19]
    new = fleet.refs["1.1"]["digest"][7:19]
    assert r.stdout == (f"app stable: {old} -> {new}, created 2024-01-01T00:00:00Z -> 2024-02-01T00:00:00Z, "
                        "version 1.0 -> 1.1\n")
    assert path.read_text() == before  # check writes nothing
    report = json.loads(ok_or(lock(path, "check", "--json"), 1))
    assert [m["name"] for m in report["moved"]] == ["app"] and report["written"] is False
    assert report["moved"][0]["new"] == {"digest": fleet.refs["1.1"]["digest"], "created": "2024-02-01T00:00:00Z",
                                         "version": "1.1"}
    assert report["unchanged"] == ["hello", "multi"]

    mark = fleet.mark()
    r = lock(path, "update")
    assert ok(r).startswith("app stable: ")
    reqs = fleet.requests(mark)
    others = [(m, p) for m, p in reqs if "/move/app/" not in p]
    assert {m for m, _p in others} == {"HEAD"} and len(others) == 2, reqs  # unmoved: HEAD only
    after = path.read_text()
    changed = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), n=0, lineterm="")
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed
    app_lines = _entry_lines(after, "app") | _entry_lines(before, "app")
    assert all(line[1:] in app_lines for line in changed), changed
    images = entries_of(path)
    assert images["app"]["systems"]["x86_64-linux"]["manifest"]["digest"] == fleet.refs["1.1"]["digest"]
    assert json.loads(before)["images"]["hello"] == images["hello"]

    r = lock(path, "check")
    assert r.returncode == 0 and r.stdout == ""
    r = lock(path, "update", "--json")
    assert json.loads(ok(r)) == {"moved": [], "unchanged": ["app", "hello", "multi"], "written": False}
    assert path.read_text() == after


def ok_or(proc: subprocess.CompletedProcess, code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


def _entry_lines(text: str, name: str) -> set[str]:
    """The lines of one entry in a dumped lock file (from its key line to the closing brace at its depth)."""
    lines = text.splitlines()
    start = lines.index(f'    "{name}": {{')
    end = next(i for i in range(start + 1, len(lines)) if lines[i] in ("    },", "    }"))
    return set(lines[start:end + 1])


def test_deleted_tag_fails_and_leaves_the_file(fleet: Fleet, tmp_path: Path) -> None:
    fleet.push("hello", "gone/x:1")
    fleet.push("nested", "gone/y:1")
    path = tmp_path / "l.json"
    ok(lock(path, "add", "--platform", AMD, fleet.ref("gone/x:1")))
    ok(lock(path, "add", "--platform", AMD, fleet.ref("gone/y:1")))
    fleet.push("1.1", "gone/y:1")  # y moved: an update would rewrite it, if x did not fail
    digest = manifest_digest(fleet.reg, "gone/x", "1")
    assert fleet.reg.http("DELETE", f"/v2/gone/x/manifests/{digest}").status_code == 202
    before = path.read_bytes()
    for cmd in ("update", "check"):
        line = failed(lock(path, cmd), 4)
        assert line.startswith("hocker-lock: x: "), line
        assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["l.json"]  # no temporary file left either
    ok(lock(path, "update", "y"))  # naming the good one works
    assert entries_of(path)["y"]["systems"]["x86_64-linux"]["manifest"]["digest"] == fleet.refs["1.1"]["digest"]


def test_head_without_digest_falls_back_to_get_and_failures_keep_their_codes(fleet: Fleet, tmp_path: Path) -> None:
    """A registry whose HEAD sends no Docker-Content-Digest costs a GET (verified); a 5xx is exit 6, file kept."""
    from support.faultproxy import FaultProxy

    fleet.push("1.0", "head/app:1")
    with FaultProxy(fleet.reg.url) as proxy:
        host = proxy.url.split("//", 1)[1]
        path = tmp_path / "l.json"
        ok(lock(path, "add", "--platform", AMD, f"{host}/head/app:1"))
        manifests = r"/v2/head/app/manifests/"
        rule = proxy.on("HEAD", manifests, times=3).header("Docker-Content-Digest", None)  # check, check, update
        before = len(proxy.requests("GET", manifests))
        r = lock(path, "check")
        assert r.returncode == 0, r
        assert rule.hits == 1 and len(proxy.requests("GET", manifests)) == before + 1
        fleet.push("1.1", "head/app:1")
        assert lock(path, "check").returncode == 1
        ok(lock(path, "update"))
        assert entries_of(path)["app"]["systems"]["x86_64-linux"]["version"] == "1.1" and rule.hits == 3

        fleet.push("1.0", "head/app:1")
        proxy.on("HEAD", manifests).status(500)
        before_bytes = path.read_bytes()
        line = failed(lock(path, "update", "--retries", "0"), 6)
        assert line.startswith("hocker-lock: app: ")
        assert path.read_bytes() == before_bytes


def test_add_by_digest_and_jobs(fleet: Fleet, tmp_path: Path) -> None:
    """IMAGE@DIGEST pins without a tag (update then has nothing to follow); --jobs must be positive."""
    path = tmp_path / "l.json"
    digest = fleet.refs["1.0"]["digest"]
    ok(lock(path, "add", "--platform", AMD, fleet.ref(f"lock/app@{digest}")))
    entry = entries_of(path)["app"]
    assert entry["tag"] is None and entry["systems"]["x86_64-linux"]["manifest"]["digest"] == digest
    assert lock(path, "check").returncode == 0
    assert "--jobs" in failed(lock(path, "check", "-j", "0"), 2)


def test_artifacts_refused_and_foreign_layers_kept(fleet: Fleet, tmp_path: Path) -> None:
    """As docker2nix: an artifact is refused (7); a foreign layer the registry does not serve too, naming it;
    one it serves is pinned with its foreign media type and urls (the Nix side fetches it from the registry)."""
    path = tmp_path / "l.json"
    chart = fleet.put_blob("art/chart", b"chart-bytes")
    cfg = fleet.put_blob("art/chart", b'{"name": "x"}')
    fleet.put_manifest("art/chart:1", {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", **cfg},
        "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", **chart}]})
    assert "OCI artifact" in failed(lock(path, "add", "--platform", "all", fleet.ref("art/chart:1")), 7)

    base_tar = layer([("Files/base.txt", b"foreign base\n")])
    top = layer([("app.txt", b"app\n")])
    config = canonical_json({"architecture": "amd64", "os": "linux", "config": {},
                             "rootfs": {"type": "layers", "diff_ids": [base_tar.diff_id, top.diff_id]}})
    url = "https://example.invalid/base.tar.gz"
    base = {"mediaType": FOREIGN, "digest": sha256_digest(base_tar.blob), "size": len(base_tar.blob), "urls": [url]}
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
           "config": {"mediaType": DOCKER_CONFIG, **fleet.put_blob("win/app", config)},
           "layers": [base, {"mediaType": DOCKER_LAYER_GZIP, **fleet.put_blob("win/app", top.blob)}]}
    fleet.put_manifest("win/app:1", doc)
    line = failed(lock(path, "add", "--platform", AMD, fleet.ref("win/app:1")), 7)
    assert "foreign" in line and base["digest"] in line and url in line
    assert not path.exists()
    fleet.put_blob("win/app", base_tar.blob)  # now the registry serves it
    ok(lock(path, "add", "--platform", AMD, fleet.ref("win/app:1")))
    layers = entries_of(path)["app"]["systems"]["x86_64-linux"]["layers"]
    assert layers[0] == base and "urls" not in layers[1]


# -- bad input -----------------------------------------------------------------------------------------------

def test_bad_lock_files_and_names(fleet: Fleet, tmp_path: Path) -> None:
    path = tmp_path / "l.json"
    assert "no such lock file" in failed(lock(path, "check"), 2)
    assert "no such lock file" in failed(lock(path, "list"), 2)
    ok(lock(path, "add", "--platform", AMD, fleet.ref("lock/hello:1")))
    good = path.read_text()
    entry = json.loads(good)["images"]["hello"]

    cases = {
        "{not json": "not valid JSON",
        "[]": "not a lock file",
        json.dumps({"images": {}, "version": 2}): "written by a newer hocker-fetch (version 2); upgrade",
        json.dumps({"images": {}}): "no integer `version`",
        '{"version": 1, "images": {"a": %s, "a": %s}}' % (json.dumps(entry), json.dumps(entry)): "duplicate key 'a'",
        json.dumps({"images": {"a": {**entry, "systems": {}}}, "version": 1}): "entry 'a': `systems`",
        json.dumps({"images": {"a": {**entry, "index": {"digest": "sha256:xyz", "mediaType": "m", "size": 1}}},
                    "version": 1}): "entry 'a': index:",
        json.dumps({"images": {"1a": entry}, "version": 1}): "invalid name '1a'",
        json.dumps({"images": {"a": {**entry, "repository": "Up/Per"}}, "version": 1}): "entry 'a': invalid image",
        json.dumps({"images": {"a": {**entry, "host": "docker.io", "repository": "debian"}}, "version": 1}):
            "entry 'a': `host` and `repository` are not in normal form (expected 'registry-1.docker.io' and "
            "'library/debian')",
        json.dumps({"images": {"a": {**entry, "tag": "a b"}}, "version": 1}): "entry 'a': `tag` must be a tag",
    }
    for text, message in cases.items():
        with pytest.raises(lockfile.LockFileError, match=re.escape(message)):
            lockfile.loads(text, "l.json")
    # through the command line: every command refuses (before any network), one line, file untouched
    for i, (text, message) in enumerate(cases.items()):
        path.write_text(text)
        for cmd in ([["check"], ["update"], ["list"], ["add", fleet.ref("lock/hello:1")]] if i == 0 else
                    [[("check", "update", "list")[i % 3]]]):
            line = failed(lock(path, *cmd), 2)
            assert message in line and str(path) in line, (cmd, line)
            assert path.read_text() == text

    path.write_text(good)
    assert "no entry named 'nope'" in failed(lock(path, "check", "hello", "nope"), 2)
    assert "no entry named 'nope'" in failed(lock(path, "update", "nope"), 2)
    assert "no entry named 'nope'" in failed(lock(path, "remove", "nope"), 2)
    for bad in ("1x", "a.b", "a b", "if", "x$"):
        assert "invalid name" in failed(lock(path, "add", "--name", bad, fleet.ref("lock/hello:1")), 2)
    assert "--platform all cannot be combined" in failed(
        lock(path, "add", "--platform", "all", "--platform", AMD, fleet.ref("lock/hello:1")), 2)
    assert path.read_text() == good


# -- credentials and tokens ----------------------------------------------------------------------------------

def _docker_config(tmp_path: Path, reg: RegistryServer, password: str) -> Path:
    d = tmp_path / "docker"
    d.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{reg.username}:{password}".encode()).decode()
    (d / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
    return d


def test_private_registry_credentials_and_one_token_per_scope(token_registry: RegistryServer, token_server,
                                                                fleet: Fleet, tmp_path: Path) -> None:
    reg = token_registry
    assert reg.password is not None
    path = tmp_path / "l.json"
    secret = f"{reg.host}/private/secret:1"
    # -u with --password-stdin
    ok(lock(path, "add", "--platform", AMD, "-u", str(reg.username), "--password-stdin", secret,
            stdin=reg.password + "\n"))
    # the docker config's per-registry login
    cfg = _docker_config(tmp_path, reg, reg.password)
    ok(lock(path, "add", "--name", "secret2", "--platform", AMD, secret, DOCKER_CONFIG=str(cfg)))
    ok(lock(path, "add", "--platform", AMD, f"{reg.host}/library/hello:oci", DOCKER_CONFIG=str(cfg)))
    ok(lock(path, "add", "--platform", AMD, f"{reg.host}/library/multi:oci", DOCKER_CONFIG=str(cfg)))
    assert entries_of(path)["secret"] == entries_of(path)["secret2"]
    assert password_free(path, reg.password)

    token_server.clear_requests()
    r = lock(path, "check", "-j", "8", DOCKER_CONFIG=str(cfg))
    assert r.returncode == 0, r
    scopes = sorted(s for req in token_server.snapshot() for s in req.query.get("scope", []))
    assert scopes == ["repository:library/hello:pull", "repository:library/multi:pull",
                      "repository:private/secret:pull"]  # one token per scope for the run (two entries share one)

    # wrong password: exit 3, file untouched
    before = path.read_bytes()
    bad = _docker_config(tmp_path / "bad", reg, "wrong-password")
    line = failed(lock(path, "update", "secret", DOCKER_CONFIG=str(bad)), 3)
    assert line.startswith("hocker-lock: secret: ") and "wrong-password" not in line
    line = failed(lock(path, "check", "-u", str(reg.username), "-p", "wrong-password"), 3)
    assert "wrong-password" not in line
    assert path.read_bytes() == before

    # generic credentials with entries on two registries: refused, with advice
    ok(lock(path, "add", "--platform", AMD, fleet.ref("lock/hello:1"), "--name", "other"))
    line = failed(lock(path, "check", "-u", str(reg.username), "-p", reg.password), 2)
    assert "every registry" in line and "docker login" in line
    line = failed(lock(path, "check", DOCKER_USER=str(reg.username), DOCKER_PASS=reg.password), 2)
    assert "DOCKER_USER" in line and reg.password not in line
    # naming entries on one registry makes them fine
    ok(lock(path, "check", "secret", "hello", "-u", str(reg.username), "-p", reg.password))
    ok(lock(path, "check", "secret", DOCKER_USER=str(reg.username), DOCKER_PASS=reg.password))


def test_tls_registry_with_ca_file_and_basic_auth(basic_registry: RegistryServer, tmp_path: Path) -> None:
    """https with --ca-file and Basic auth: the same connection options as the other tools."""
    reg = basic_registry
    assert reg.ca_file and reg.password
    path = tmp_path / "l.json"
    creds = ["--ca-file", reg.ca_file, "-u", str(reg.username), "--password-stdin"]
    ok(lock(path, "add", "--platform", AMD, *creds, f"{reg.host}/a/b/c:nested", stdin=reg.password + "\n"))
    entry = entries_of(path)["c"]
    assert entry["registry"] == f"https://{reg.host}/v2/" and entry["repository"] == "a/b/c"
    assert password_free(path, reg.password)
    assert lock(path, "check", *creds, stdin=reg.password + "\n").returncode == 0
    # without the CA the certificate cannot be verified: a network/TLS failure naming the entry, not a traceback
    line = failed(lock(path, "check", "--retries", "0", "-u", str(reg.username), "-p", reg.password), 6)
    assert line.startswith("hocker-lock: c: ")


def password_free(path: Path, password: str) -> bool:
    return password not in path.read_text()


# -- concurrency ---------------------------------------------------------------------------------------------

def test_concurrent_updates_and_adds_keep_every_change(fleet: Fleet, tmp_path: Path) -> None:
    names = [f"app{i}" for i in range(5)]
    for n in names + ["new0", "new1"]:
        fleet.push("1.0", f"race/{n}:1")
    path = tmp_path / "l.json"
    ok(lock(path, "add", "--platform", AMD, fleet.ref("race/app0:1")))
    first = entries_of(path)["app0"]  # the others pin the same image in their own repositories
    path.write_text(lockfile.dumps({n: {**first, "repository": f"race/{n}"} for n in names}))
    for n in names:
        fleet.push("1.1", f"race/{n}:1")

    seen_bad: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                lockfile.loads(path.read_text(), str(path))
            except Exception as exc:  # noqa: BLE001 (any failure is the finding)
                seen_bad.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        procs = [subprocess.Popen([str(BIN / "hocker-lock"), "--file", str(path), "update", n], env=env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
                 for n in names]
        procs += [subprocess.Popen([str(BIN / "hocker-lock"), "--file", str(path), "add", "--platform", AMD,
                                    fleet.ref(f"race/{n}:1")], env=env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
                  for n in ("new0", "new1")]
        for p in procs:
            _out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        stop.set()
        t.join()
    assert not seen_bad
    images = entries_of(path)
    assert sorted(images) == sorted(names + ["new0", "new1"])
    for n in names:
        assert images[n]["systems"]["x86_64-linux"]["version"] == "1.1", n
    assert sorted(os.listdir(tmp_path)) == ["l.json"]
