"""A corpus of hostile manifests, indexes and registry answers, SERVED by a tiny registry on 127.0.0.1.

Every tool that reads manifests (hocker-manifest to stdout and to --out, hocker-config, hocker-image in all
three --format, docker2nix fetching and docker2nix --manifest FILE) runs as a real process, in a fresh working
directory, against each document. The promise: a clear one-line `<prog>: ...` error with the documented exit
code (7 unusable manifest, 5 verification, 4 not found), no traceback, nothing on stdout, and the whole tmp
tree (cwd, --out's directory, the input directory) byte-for-byte unchanged: nothing written outside --out and
no partial --out. Cases with path-traversal digests also run under strace: no file whose name contains
`passwd` is ever opened or stat'ed.

The server is deliberately dumb (a dict of path -> answer): hostile registries do not follow the spec.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import pytest
from support.clitools import clean_env, tool

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
REPO, TAG = "evil/image", "t"
MANIFEST_PATH = f"/v2/{REPO}/manifests/{TAG}"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# the hostile registry


@dataclass
class Answer:
    body: bytes
    content_type: str = "application/json"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # no Content-Length: the client must bound what it reads itself


class HostileRegistry:
    """Serves `routes[path]` for GET/HEAD; anything else is a registry-style 404. Logs every path asked for."""

    def __init__(self) -> None:
        self.routes: dict[str, Answer] = {}
        self.asked: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                owner._serve(self, body=True)

            def do_HEAD(self) -> None:  # noqa: N802
                owner._serve(self, body=False)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "HostileRegistry":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _serve(self, h: BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        self.asked.append(path)
        h.close_connection = True
        if path in ("/v2", "/v2/"):
            answer = Answer(b"{}")
        else:
            answer = self.routes.get(path) or Answer(
                b'{"errors":[{"code":"NAME_UNKNOWN","message":"nothing here"}]}', status=404)
        h.send_response_only(answer.status)
        h.send_header("Content-Type", answer.content_type)
        h.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in answer.headers.items():
            h.send_header(k, v)
        if answer.chunked:
            h.send_header("Transfer-Encoding", "chunked")
        elif "Content-Length" not in answer.headers:
            h.send_header("Content-Length", str(len(answer.body)))
        h.send_header("Connection", "close")
        h.end_headers()
        if not body:
            return
        try:
            if answer.chunked:
                for i in range(0, len(answer.body), 65536):
                    part = answer.body[i:i + 65536]
                    h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                h.wfile.write(b"0\r\n\r\n")
            else:
                h.wfile.write(answer.body)
        except OSError:
            pass  # the client gave up (e.g. a manifest over the limit): that is the point


@pytest.fixture(scope="module")
def server():
    s = HostileRegistry().start()
    yield s
    s.stop()


# ---------------------------------------------------------------------------------------------------------
# a small real image, then the corpus built from it

def _layer_bytes() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        data = b"hostile test\n"
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(data), 0
        tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


LAYER = _layer_bytes()
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [sha(gzip.decompress(LAYER))]}}).encode()


def desc(media_type: str, data: Optional[bytes] = None, *, digest: Optional[str] = None, size: object = None,
         **extra: object) -> dict:
    d = {"mediaType": media_type, "digest": digest or sha(data or b""),
         "size": size if size is not None else len(data or b"")}
    d.update(extra)
    return d


def manifest(*, config: Optional[dict] = None, layers: Optional[list] = None, drop: tuple = (), **top: object) -> dict:
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
           "config": config if config is not None else desc(OCI_CONFIG, CONFIG),
           "layers": layers if layers is not None else [desc(OCI_LAYER, LAYER)]}
    doc.update(top)
    for k in drop:
        doc.pop(k, None)
    return doc


def j(doc: object) -> bytes:
    return json.dumps(doc).encode()


def index(entries: list) -> dict:
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}


def platform_entry(raw: bytes, os_: str = "linux", arch: str = "amd64", media_type: str = OCI_MANIFEST,
                   **extra: object) -> dict:
    return desc(media_type, raw, platform={"os": os_, "architecture": arch}, **extra)


BLOBS = {f"/v2/{REPO}/blobs/{sha(CONFIG)}": Answer(CONFIG, "application/octet-stream"),
         f"/v2/{REPO}/blobs/{sha(LAYER)}": Answer(LAYER, "application/octet-stream")}

TRAVERSAL = "sha256:../../../../../../etc/passwd"
GOOD = j(manifest())
BIG_ANNOTATION = "x" * (4 * 1024 * 1024 + 10)

SCHEMA1 = {"schemaVersion": 1, "name": REPO, "tag": TAG, "architecture": "amd64",
           "fsLayers": [{"blobSum": sha(LAYER)}], "history": [{"v1Compatibility": "{}"}]}
SCHEMA1_SIGNED = dict(SCHEMA1, signatures=[{"header": {"jwk": {"crv": "P-256", "kty": "EC"}, "alg": "ES256"},
                                             "signature": "c2lnbmF0dXJl", "protected": "e30"}])


def nested_indexes(depth: int) -> tuple[bytes, dict[str, Answer]]:
    """index -> index -> ... (depth levels) -> the good manifest, every level served by digest."""
    routes = {f"/v2/{REPO}/manifests/{sha(GOOD)}": Answer(GOOD, OCI_MANIFEST)}
    raw, media = GOOD, OCI_MANIFEST
    for _ in range(depth):
        raw = j(index([platform_entry(raw, media_type=media)]))
        media = OCI_INDEX
        routes[f"/v2/{REPO}/manifests/{sha(raw)}"] = Answer(raw, OCI_INDEX)
    return raw, routes


@dataclass
class Case:
    id: str
    top: Answer                                   # what the tag answers
    code: int = 7                                 # expected exit code of every manifest-reading tool
    message: str = ""                             # regex the error line must contain
    routes: dict[str, Answer] = field(default_factory=dict)
    expect: dict[str, tuple[int, str]] = field(default_factory=dict)   # per-tool overrides
    traversal: bool = False                       # also run under strace: never touch a *passwd* path


def _cases() -> list[Case]:
    cases = [
        Case("invalid-json", Answer(b'{"schemaVersion": 2, "config": '), message="not valid JSON"),
        Case("html-captive-portal", Answer(b"<html><body>Please log in</body></html>", "text/html"),
             message="not valid JSON"),
        Case("json-array", Answer(b"[1, 2, 3]"), message="not a JSON object"),
        Case("json-string", Answer(b'"sha256:abc"'), message="not a JSON object"),
        Case("schemaVersion-3", Answer(j(manifest(schemaVersion=3))), message="schemaVersion"),
        Case("schemaVersion-string", Answer(j(manifest(schemaVersion="2"))), message="schemaVersion"),
        Case("schemaVersion-missing", Answer(j(manifest(drop=("schemaVersion",)))), message="schemaVersion"),
        Case("schema1-unsigned", Answer(j(SCHEMA1), "application/vnd.docker.distribution.manifest.v1+json"),
             message="schema1"),
        Case("schema1-signed", Answer(j(SCHEMA1_SIGNED), "application/vnd.docker.distribution.manifest.v1+prettyjws"),
             message="schema1"),
        Case("schema1-mislabelled-as-schema2", Answer(j(SCHEMA1_SIGNED), DOCKER_MANIFEST), message="schema1"),
        Case("missing-config", Answer(j(manifest(drop=("config",))), OCI_MANIFEST), message="no config|media type"),
        Case("config-not-an-object", Answer(j(manifest(config="sha256:" + "a" * 64))), message="not a JSON object"),
        Case("layers-missing", Answer(j(manifest(drop=("layers",)))), message="no layers"),
        Case("negative-layer-size", Answer(j(manifest(layers=[desc(OCI_LAYER, LAYER, size=-1)]))),
             message="invalid size"),
        Case("enormous-layer-size", Answer(j(manifest(layers=[desc(OCI_LAYER, LAYER, size=1 << 62)]))),
             message="invalid size"),
        Case("float-layer-size", Answer(j(manifest(layers=[desc(OCI_LAYER, LAYER, size=1.5)]))),
             message="invalid size"),
        Case("enormous-config-size", Answer(j(manifest(config=desc(OCI_CONFIG, CONFIG, size=1 << 40)))),
             message="implausibly large"),
        Case("layer-size-smaller-than-blob", Answer(j(manifest(layers=[desc(OCI_LAYER, LAYER, size=10)]))),
             code=5, message=re.escape(sha(LAYER)),
             expect={"manifest": (0, ""), "manifest-out": (0, ""), "config": (0, ""), "docker2nix": (0, ""),
                     "docker2nix-file": (0, "")}),
        # every tool runs with an explicit --platform, so even hocker-manifest and docker2nix fetch the config of
        # a single-platform manifest to check its platform (issue 10 item 5): a bad config fails them too
        Case("config-size-larger-than-blob", Answer(j(manifest(config=desc(OCI_CONFIG, CONFIG, size=len(CONFIG) + 7)))),
             code=5, message=re.escape(sha(CONFIG))),
        Case("layer-digest-traversal", Answer(j(manifest(layers=[desc(OCI_LAYER, digest=TRAVERSAL, size=10)]))),
             message="malformed digest", traversal=True),
        Case("config-digest-traversal", Answer(j(manifest(config=desc(OCI_CONFIG, digest=TRAVERSAL, size=10)))),
             message="malformed digest", traversal=True),
        Case("index-entry-digest-traversal", Answer(j(index([desc(OCI_MANIFEST, digest=TRAVERSAL, size=10,
                                                                  platform={"os": "linux",
                                                                            "architecture": "amd64"})]))),
             message="malformed digest", traversal=True),
        Case("digest-wrong-length", Answer(j(manifest(layers=[desc(OCI_LAYER, digest="sha256:" + "a" * 63)]))),
             message="malformed digest"),
        Case("digest-uppercase", Answer(j(manifest(layers=[desc(OCI_LAYER, digest="sha256:" + "A" * 64)]))),
             message="malformed digest"),
        Case("digest-wrong-algorithm", Answer(j(manifest(layers=[desc(OCI_LAYER, digest="sha512:" + "a" * 128)]))),
             message="algorithm"),
        Case("digest-not-a-string", Answer(j(manifest(layers=[desc(OCI_LAYER, digest=12345)]))),  # type: ignore
             message="malformed digest"),
        Case("foreign-layer-not-served",
             Answer(j(manifest(layers=[desc(FOREIGN, digest="sha256:" + "f" * 64, size=1234,
                                            urls=["https://example.invalid/layer.tar.gz"]),
                                       desc(OCI_LAYER, LAYER)]))),
             code=4, message=r"sha256:f{64}.*foreign",
             # docker2nix asks the registry (HEAD) and refuses up front, instead of a file whose build fails
             expect={"manifest": (0, ""), "manifest-out": (0, ""), "config": (0, ""),
                     "docker2nix": (7, r"foreign.*sha256:f{64}.*example\.invalid/layer\.tar\.gz"),
                     "docker2nix-file": (7, r"foreign.*sha256:f{64}.*example\.invalid/layer\.tar\.gz")}),
        Case("index-only-attestations",
             Answer(j(index([platform_entry(GOOD, "unknown", "unknown",
                                            annotations={"vnd.docker.reference.type": "attestation-manifest",
                                                         "vnd.docker.reference.digest": sha(GOOD)})])), OCI_INDEX),
             message="only attestations",
             routes={f"/v2/{REPO}/manifests/{sha(GOOD)}": Answer(GOOD, OCI_MANIFEST)}),
        Case("index-no-matching-platform", Answer(j(index([platform_entry(GOOD, arch="s390x")])), OCI_INDEX),
             message="no manifest for platform"),
        Case("index-empty", Answer(j(index([])), OCI_INDEX), message="none"),
        Case("index-manifests-not-a-list", Answer(j({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": {}}),
                                                  OCI_INDEX), message="no manifests list"),
        Case("index-child-bytes-do-not-match-digest",
             Answer(j(index([platform_entry(GOOD)])), OCI_INDEX), code=5, message="content has digest",
             routes={f"/v2/{REPO}/manifests/{sha(GOOD)}": Answer(GOOD + b" ", OCI_MANIFEST)}),
        Case("index-child-not-found", Answer(j(index([platform_entry(GOOD)])), OCI_INDEX), code=4,
             message="not found"),
        Case("index-child-is-schema1",
             Answer(j(index([platform_entry(j(SCHEMA1))])), OCI_INDEX), message="schema1",
             routes={f"/v2/{REPO}/manifests/{sha(j(SCHEMA1))}": Answer(j(SCHEMA1), OCI_MANIFEST)}),
        Case("manifest-over-4MiB", Answer(j(manifest(annotations={"a": BIG_ANNOTATION}))),
             message="more than the 4194304|larger than the 4194304",
             expect={"docker2nix-file": (0, "")}),  # a file the user gives is not bounded by the network limit
        Case("manifest-over-4MiB-chunked", Answer(j(manifest(annotations={"a": BIG_ANNOTATION})), chunked=True),
             message="larger than the 4194304", expect={"docker2nix-file": (0, "")}),
        Case("content-length-lies-huge", Answer(GOOD, headers={"Content-Length": str(1 << 40)}),
             message="more than the 4194304", expect={"docker2nix-file": (0, "")}),
        Case("config-blob-tampered", Answer(GOOD), code=5, message=re.escape(sha(CONFIG)),
             routes={f"/v2/{REPO}/blobs/{sha(CONFIG)}": Answer(CONFIG.replace(b"amd64", b"arm64"))}),
        Case("layer-blob-is-an-html-page", Answer(GOOD), code=5, message=re.escape(sha(LAYER)),
             routes={f"/v2/{REPO}/blobs/{sha(LAYER)}": Answer(b"<html>" + b"x" * (len(LAYER) - 6), "text/html")},
             expect={"manifest": (0, ""), "manifest-out": (0, ""), "config": (0, ""), "docker2nix": (0, ""),
                     "docker2nix-file": (0, "")}),
    ]
    deep, routes = nested_indexes(3)
    cases.append(Case("index-nested-3-deep", Answer(deep, OCI_INDEX), message="index", routes=routes))
    return cases


CASES = _cases()

# every tool that reads a manifest; (argv after the program, the --out path relative to out/ or None)
TOOLS: dict[str, tuple[str, list[str], Optional[str]]] = {
    "manifest": ("hocker-manifest", [], None),
    "manifest-out": ("hocker-manifest", ["--out", "{out}/m.json"], "m.json"),
    "config": ("hocker-config", ["--out", "{out}/c.json"], "c.json"),
    "image-docker-archive": ("hocker-image", ["--out", "{out}/img.tar"], "img.tar"),
    "image-oci": ("hocker-image", ["--format", "oci", "--out", "{out}/layout"], "layout"),
    "image-oci-archive": ("hocker-image", ["--format", "oci-archive", "--out", "{out}/img.oci.tar"], "img.oci.tar"),
    "docker2nix": ("docker2nix", ["--out", "{out}/image.nix"], "image.nix"),
    "docker2nix-file": ("docker2nix", ["--manifest", "{inp}/manifest.json", "--out", "{out}/image.nix"],
                        "image.nix"),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every path under root (dirs too) with the sha256 of file contents: any write shows."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = "dir"
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = "link" if os.path.islink(p) else hashlib.sha256(
                Path(p).read_bytes()).hexdigest()
    return out


def run_tool(server: HostileRegistry, case: Case, name: str, root: Path, strace: bool = False):
    prog, extra, _ = TOOLS[name]
    cwd, out, inp = root / "cwd", root / "out", root / "in"
    extra = [a.format(out=out, inp=inp) for a in extra]
    argv = [tool(prog), "--registry", server.url, "--platform", "linux/amd64", "--retries", "0", "--timeout", "10",
            "-q", *extra, REPO, TAG]
    if strace:
        argv = ["strace", "-f", "-qq", "-e", "trace=%file", "-o", str(root / "strace.log"), *argv]
    env = clean_env(PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run(argv, cwd=cwd, capture_output=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", list(TOOLS))
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_document(server: HostileRegistry, tmp_path: Path, case: Case, name: str) -> None:
    server.routes = {**BLOBS, MANIFEST_PATH: case.top, **case.routes}
    for d in ("cwd", "out", "in"):
        (tmp_path / d).mkdir()
    (tmp_path / "in" / "manifest.json").write_bytes(case.top.body)
    (tmp_path / "out" / "unrelated.txt").write_bytes(b"keep me")
    before = snapshot(tmp_path)
    r = run_tool(server, case, name, tmp_path)
    code, message = case.expect.get(name, (case.code, case.message))
    prog, _, out_name = TOOLS[name]
    err = r.stderr.decode(errors="replace")
    assert "Traceback" not in err, err
    assert r.returncode == code, (r.returncode, err)
    after = snapshot(tmp_path)
    if code != 0:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"{prog}: "), err
        assert re.search(message, lines[0]), lines[0]
        assert r.stdout == b""
        assert after == before  # no partial --out, no temp file, nothing in cwd or anywhere else
    else:
        new = {k for k in after if k not in before}
        changed = {k for k in before if after.get(k) != before[k]}
        assert not changed
        if out_name is None:
            assert not new
        else:
            assert new and all(k == f"out/{out_name}" or k.startswith(f"out/{out_name}/") for k in new), new


TRAVERSAL_CASES = [c for c in CASES if c.traversal]


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
@pytest.mark.parametrize("name", ["manifest", "config", "image-oci", "image-docker-archive", "docker2nix-file"])
@pytest.mark.parametrize("case", TRAVERSAL_CASES, ids=[c.id for c in TRAVERSAL_CASES])
def test_traversal_digest_never_touches_the_named_path(server, tmp_path, case: Case, name: str) -> None:
    server.routes = {**BLOBS, MANIFEST_PATH: case.top, **case.routes}
    for d in ("cwd", "out", "in"):
        (tmp_path / d).mkdir()
    (tmp_path / "in" / "manifest.json").write_bytes(case.top.body)
    r = run_tool(server, case, name, tmp_path, strace=True)
    assert r.returncode == case.code, r.stderr
    log = (tmp_path / "strace.log").read_text()
    assert "execve(" in log  # strace really traced the tool
    touched = [line for line in log.splitlines() if "passwd" in line and "/etc/passwd" not in line.split('"')[0]]
    assert not touched, touched[:5]


# ---------------------------------------------------------------------------------------------------------
# hostile error bodies and hostile platform strings (each was a bug, now fixed)


def test_registry_error_message_stays_one_line(server, tmp_path: Path) -> None:
    """A 404 whose registry error message carries newlines and terminal escapes: still one line on stderr."""
    body = j({"errors": [{"code": "MANIFEST_UNKNOWN",
                          "message": "gone\nhocker-manifest: fake second line\x1b[2K\x1b[1A\r"}]})
    server.routes = {MANIFEST_PATH: Answer(body, status=404)}
    (tmp_path / "cwd").mkdir()
    r = subprocess.run([tool("hocker-manifest"), "--registry", server.url, "-q", REPO, TAG], cwd=tmp_path / "cwd",
                       capture_output=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 4
    assert len(r.stderr.decode().splitlines()) == 1 and b"\x1b" not in r.stderr, r.stderr


def test_deeply_nested_json_manifest_is_a_clear_error(server, tmp_path: Path) -> None:
    server.routes = {MANIFEST_PATH: Answer(b"[" * 200_000)}
    (tmp_path / "cwd").mkdir()
    r = subprocess.run([tool("hocker-manifest"), "--registry", server.url, "-q", REPO, TAG], cwd=tmp_path / "cwd",
                       capture_output=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert b"Traceback" not in r.stderr and r.returncode == 7, r.stderr[-500:]


def test_deeply_nested_json_error_body_is_a_clear_error(server, tmp_path: Path) -> None:
    server.routes = {MANIFEST_PATH: Answer(b'{"errors":' + b"[" * 200_000, status=404)}
    (tmp_path / "cwd").mkdir()
    r = subprocess.run([tool("hocker-manifest"), "--registry", server.url, "-q", REPO, TAG], cwd=tmp_path / "cwd",
                       capture_output=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert b"Traceback" not in r.stderr and r.returncode == 4, r.stderr[-500:]


def test_registry_option_with_a_bad_bracket_is_a_usage_error(tmp_path: Path) -> None:
    r = subprocess.run([tool("hocker-manifest"), "--registry", "http://[", "x", "1"], capture_output=True,
                       env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert b"Traceback" not in r.stderr and r.returncode == 2, r.stderr[-500:]


def test_docker2nix_hostile_platform_cannot_inject_nix_code(server, tmp_path: Path) -> None:
    """`docker2nix --platform all` on an index whose only platform carries a newline: the generated file's
    header must stay comments (today the platform is copied unescaped into the first comment line, so the
    registry can append arbitrary Nix code, e.g. `assert builtins.abort "pwned";` before the function)."""
    payload = 'linux\nassert builtins.abort "pwned-by-registry";\n#'
    raw = j(index([desc(OCI_MANIFEST, GOOD, platform={"os": payload, "architecture": "amd64"})]))
    server.routes = {**BLOBS, MANIFEST_PATH: Answer(raw, OCI_INDEX),
                     f"/v2/{REPO}/manifests/{sha(GOOD)}": Answer(GOOD, OCI_MANIFEST)}
    r = subprocess.run([tool("docker2nix"), "--registry", server.url, "--platform", "all", "-q", REPO, TAG],
                       capture_output=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    if r.returncode != 0:  # refusing the platform is fine too, as a clear one-line error
        assert b"Traceback" not in r.stderr and len(r.stderr.decode().splitlines()) == 1
        return
    text = r.stdout.decode()
    header = text.split("{ fetchDockerConfig", 1)[0]
    assert all(line.startswith("#") or not line.strip() for line in header.splitlines()), header
    assert "pwned-by-registry" not in text.replace('\\"', '"').split("platform = ", 1)[0]


