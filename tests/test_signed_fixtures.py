"""containers/image's real cosign fixtures (made by real cosign, Fulcio and Rekor) through our tools (issue 20).

The reference registry will not store a manifest whose layers it lacks, so a small read-only registry of our own
on 127.0.0.1 serves the fixture manifests, their `.sig` attachments and the payloads. Our tools must accept them
with the keys, CA and Rekor key policy_eval_sigstore_test.go uses, and refuse the variants that break one rule.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from support.clitools import clean_env, run
from support.cosign import read_dir_signature, sig_manifest, sig_tag
from support.signedenv import write_policy, write_registries_d

FIXTURES = Path(__file__).parent / "fixtures" / "sigstore"
SIGNED_HOST = "192.168.64.2:5000"  # what the fixtures' payloads name
KEYED_REPO = "cosign-signed-single-sample"
KEYLESS_REPO = "cosign-signed/fulcio-rekor-1"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FixtureRegistry:
    """GET/HEAD /v2/<repo>/manifests/<tag|digest> and /v2/<repo>/blobs/<digest>; nothing else, never a write."""

    def __init__(self) -> None:
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.blobs: dict[tuple[str, str], bytes] = {}
        for repo, name in ((KEYED_REPO, "keyed"), (KEYLESS_REPO, "fulcio-rekor")):
            manifest = (FIXTURES / f"{name}-manifest.json").read_bytes()
            media_type = json.loads(manifest)["mediaType"]
            digest = _digest(manifest)
            self.manifests[(repo, "latest")] = self.manifests[(repo, digest)] = (manifest, media_type)
            sig, blobs = sig_manifest([read_dir_signature(FIXTURES / f"{name}-signature-1")])
            self.manifests[(repo, sig_tag(digest))] = (sig, OCI_MANIFEST)
            self.blobs.update({(repo, d): b for d, b in blobs.items()})
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def answer(self, body: bool) -> None:
                found = registry.lookup(self.path)
                if found is None:
                    data, media_type, status = b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json", 404
                else:
                    (data, media_type), status = found, 200
                self.send_response(status)
                self.send_header("Content-Type", media_type)
                self.send_header("Content-Length", str(len(data)))
                if status == 200:
                    self.send_header("Docker-Content-Digest", _digest(data))
                self.end_headers()
                if body:
                    self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def lookup(self, path: str) -> Any:
        if path.rstrip("/") == "/v2":
            return b"{}", "application/json"
        for kind in ("manifests", "blobs"):
            marker = f"/{kind}/"
            if path.startswith("/v2/") and marker in path:
                repo, ref = path[len("/v2/"):].rsplit(marker, 1)
                if kind == "manifests":
                    return self.manifests.get((repo, ref))
                blob = self.blobs.get((repo, ref))
                return None if blob is None else (blob, "application/octet-stream")
        return None


@pytest.fixture(scope="module")
def fixture_registry() -> Iterator[FixtureRegistry]:
    reg = FixtureRegistry()
    reg.thread.start()
    yield reg
    reg.server.shutdown()
    reg.server.server_close()
    reg.thread.join(10)


def b64(name: str) -> str:
    return base64.b64encode((FIXTURES / name).read_bytes()).decode()


KEYED = {"type": "sigstoreSigned", "keyPath": str(FIXTURES / "cosign.pub"),
         "signedIdentity": {"type": "exactRepository", "dockerRepository": f"{SIGNED_HOST}/{KEYED_REPO}"}}
KEYLESS = {"type": "sigstoreSigned",
           "fulcio": {"caPath": str(FIXTURES / "fulcio_v1.crt.pem"), "oidcIssuer": "https://github.com/login/oauth",
                      "subjectEmail": "mitr@redhat.com"},
           "rekorPublicKeyPath": str(FIXTURES / "rekor.pub"),
           "signedIdentity": {"type": "exactRepository", "dockerRepository": f"{SIGNED_HOST}/{KEYLESS_REPO}"}}


def judge(reg: FixtureRegistry, tmp_path: Path, repo: str, req: dict, reference: str = ":latest"):
    policy = write_policy(tmp_path / "policy.json", {reg.host: [req]})
    d = write_registries_d(tmp_path / "registries.d")
    return run("hocker-manifest", f"{reg.host}/{repo}{reference}", "--policy", str(policy), "--registries.d", str(d),
               env=clean_env())


def test_keyed_fixture_is_accepted(fixture_registry, tmp_path):
    r = judge(fixture_registry, tmp_path, KEYED_REPO, KEYED)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (FIXTURES / "keyed-manifest.json").read_bytes()
    as_data = {k: v for k, v in KEYED.items() if k != "keyPath"} | {"keyData": b64("cosign.pub")}
    assert judge(fixture_registry, tmp_path, KEYED_REPO, as_data).returncode == 0


def test_repository_only_identity_needs_a_repository_match(fixture_registry, tmp_path):
    """cosign signs the bare repository (no tag): matchRepoDigestOrExact, even remapped to the host the signature
    names and pulled by digest, never accepts a name-only identity (containers/image's rule); matchRepository
    semantics (here exactRepository) do."""
    digest = _digest((FIXTURES / "keyed-manifest.json").read_bytes())
    remap = dict(KEYED, signedIdentity={"type": "remapIdentity", "prefix": fixture_registry.host,
                                        "signedPrefix": SIGNED_HOST})
    r = judge(fixture_registry, tmp_path, KEYED_REPO, remap, f"@{digest}")
    assert r.returncode == 8 and f"names '{SIGNED_HOST}/{KEYED_REPO}'" in r.stderr.decode(), r.stderr
    assert judge(fixture_registry, tmp_path, KEYED_REPO, KEYED, f"@{digest}").returncode == 0


def test_keyless_fixture_is_accepted(fixture_registry, tmp_path):
    r = judge(fixture_registry, tmp_path, KEYLESS_REPO, KEYLESS)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (FIXTURES / "fulcio-rekor-manifest.json").read_bytes()


@pytest.mark.parametrize("change", [
    {"keyPath": str(FIXTURES / "cosign2.pub")},
    {"signedIdentity": {"type": "exactRepository", "dockerRepository": f"{SIGNED_HOST}/other"}},
    {"signedIdentity": {"type": "matchRepository"}},
    {"rekorPublicKeyPath": str(FIXTURES / "rekor.pub")},  # keys plus Rekor: the keyed fixture has no bundle
])
def test_keyed_variants_are_refused(fixture_registry, tmp_path, change):
    r = judge(fixture_registry, tmp_path, KEYED_REPO, {**KEYED, **change})
    assert r.returncode == 8, r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1


@pytest.mark.parametrize("change", [
    {"fulcio": dict(KEYLESS["fulcio"], subjectEmail="someone@example.com")},
    {"fulcio": dict(KEYLESS["fulcio"], oidcIssuer="https://accounts.google.com")},
    {"fulcio": dict(KEYLESS["fulcio"], caPath=str(FIXTURES / "cosign.pub"))},
    {"rekorPublicKeyPath": str(FIXTURES / "cosign.pub")},
    {"signedIdentity": {"type": "matchRepository"}},
])
def test_keyless_variants_are_refused(fixture_registry, tmp_path, change):
    r = judge(fixture_registry, tmp_path, KEYLESS_REPO, {**KEYLESS, **change})
    assert r.returncode in (2, 8), r.stderr  # a CA file that is no certificate is a policy fault (2)
    assert r.stdout == b""
    assert len(r.stderr.decode().strip().splitlines()) == 1
