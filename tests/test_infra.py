"""The real-component fixtures really work: what we recorded is what the registries serve, auth is
enforced the way real registries enforce it, and the images are byte-reproducible."""
from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
import requests
from support import images as im
from support.images import ACCEPT_ALL, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_LAYER_TAR, OCI_MANIFEST
from support.registry import RegistryServer

COMMON = ["library/hello:oci", "library/hello:v2s2", "library/hello2:oci", "library/multi:oci",
          "library/multi:list", "a/b/c:nested", "library/plain:uncompressed"]


def skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, timeout=60, stdin=subprocess.DEVNULL)


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_every_registry_has_the_full_image_set(any_registry: RegistryServer) -> None:
    expected = set(COMMON) | ({"private/secret:1"} if any_registry.mode == "token" else set())
    assert set(any_registry.images) == expected


def test_recorded_bytes_are_what_skopeo_and_http_see(any_registry: RegistryServer, skopeo_args) -> None:
    reg = any_registry
    for ref, info in reg.images.items():
        assert sha(info.raw) == info.digest
        out = skopeo("inspect", "--raw", *skopeo_args(reg), f"docker://{reg.host}/{ref}")
        assert out.returncode == 0, out.stderr
        assert out.stdout == info.raw, ref
        r = im.manifest_http(reg, info.repo, info.tag)
        assert r.status_code == 200
        assert r.content == info.raw
        assert r.headers["Docker-Content-Digest"] == info.digest
        assert r.headers["Content-Type"] == info.media_type
        for pi in list(info.platforms.values()) + list(info.attestations.values()):
            assert sha(pi.manifest_bytes) == pi.manifest_digest
            assert sha(pi.config_bytes) == pi.config_digest
            r = im.manifest_http(reg, info.repo, pi.manifest_digest)
            assert r.content == pi.manifest_bytes


def test_media_types_and_platforms(plain_registry: RegistryServer, test_layout: Path) -> None:
    imgs = plain_registry.images
    assert imgs["library/hello:oci"].media_type == OCI_MANIFEST
    assert imgs["library/hello:v2s2"].media_type == DOCKER_MANIFEST
    assert set(imgs["library/hello:oci"].platforms) == {"linux/amd64"}
    multi = imgs["library/multi:oci"]
    assert multi.media_type == OCI_INDEX
    assert set(multi.platforms) == {"linux/amd64", "linux/arm64/v8"}
    assert len(multi.attestations) == 1
    entries = json.loads(multi.raw)["manifests"]
    att = [e for e in entries if e["platform"] == {"architecture": "unknown", "os": "unknown"}]
    assert att and att[0]["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
    assert att[0]["annotations"]["vnd.docker.reference.digest"] == multi.platforms["linux/amd64"].manifest_digest
    lst = imgs["library/multi:list"]
    assert lst.media_type == DOCKER_LIST
    assert set(lst.platforms) == {"linux/amd64", "linux/arm64/v8"}
    assert all(p.media_type == DOCKER_MANIFEST for p in lst.platforms.values())
    assert json.loads(lst.platforms["linux/arm64/v8"].config_bytes)["variant"] == "v8"
    # --preserve-digests: the OCI pushes serve exactly the bytes in our layout
    index = json.loads((test_layout / "index.json").read_bytes())
    by_ref = {m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"] for m in index["manifests"]}
    assert imgs["library/hello:oci"].digest == by_ref["hello"]
    assert imgs["library/multi:oci"].digest == by_ref["multi"]


def test_layer_sharing_and_uncompressed_layer(any_registry: RegistryServer, blob_bytes) -> None:
    imgs = any_registry.images
    hello = imgs["library/hello:oci"].single.layers
    hello2 = imgs["library/hello2:oci"].single.layers
    assert hello[0][0] == hello2[0][0] and hello[1][0] != hello2[1][0]
    # the schema2 copy reuses the very same (gzip) blobs under docker media types
    assert [layer[0] for layer in imgs["library/hello:v2s2"].single.layers] == [layer[0] for layer in hello]
    plain = imgs["library/plain:uncompressed"].single
    digest, mt, size = plain.layers[0]
    assert mt == OCI_LAYER_TAR
    data = blob_bytes(any_registry, "library/plain", digest)
    assert len(data) == size and data[:2] != b"\x1f\x8b"
    assert tarfile.open(fileobj=io.BytesIO(data)).getnames()[-1] == "plain/raw.bin"
    gz = blob_bytes(any_registry, "library/hello", hello[0][0])
    diff_id = json.loads(imgs["library/hello:oci"].single.config_bytes)["rootfs"]["diff_ids"][0]
    assert sha(gzip.decompress(gz)) == diff_id


def test_images_are_byte_reproducible(tmp_path: Path, test_layout: Path) -> None:
    a = im.build_test_layout(tmp_path / "a")
    b = im.build_test_layout(tmp_path / "b")
    assert a == b
    # every file of a fresh build is byte-identical to the session layout the registries were seeded from
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(tmp_path / "a") == files(tmp_path / "b") == files(test_layout)


def test_basic_registry_enforces_tls_and_password(basic_registry: RegistryServer, skopeo_args, tmp_path: Path) -> None:
    reg = basic_registry
    assert reg.url.startswith("https://") and reg.ca_file
    r = requests.get(f"{reg.url}/v2/", verify=reg.ca_file, timeout=10)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(f"{reg.url}/v2/", verify=reg.ca_file, auth=(reg.username, reg.password),
                        timeout=10).status_code == 200
    assert requests.get(f"{reg.url}/v2/", verify=reg.ca_file, auth=(reg.username, "wrong"),
                        timeout=10).status_code == 401
    with pytest.raises(requests.exceptions.SSLError):  # the system bundle does not trust our CA
        requests.get(f"{reg.url}/v2/", verify="/etc/ssl/certs/ca-certificates.crt", timeout=10)
    bad = tmp_path / "bad-auth.json"
    bad.write_text(json.dumps({"auths": {reg.host: {"auth": base64.b64encode(
        f"{reg.username}:wrong".encode()).decode()}}}))
    out = skopeo("inspect", "--raw", f"--cert-dir={reg.cert_dir}", f"--authfile={bad}",
                 f"docker://{reg.host}/library/hello:oci")
    assert out.returncode != 0
    assert b"401" in out.stderr or b"unauthorized" in out.stderr.lower(), out.stderr
    out = skopeo("inspect", "--raw", *skopeo_args(reg), f"docker://{reg.host}/library/hello:oci")
    assert out.returncode == 0


def test_token_flow_and_policy(token_registry: RegistryServer, token_server, skopeo_args) -> None:
    reg, ts = token_registry, token_server
    r = requests.get(f"{reg.url}/v2/library/hello/manifests/oci", headers={"Accept": ACCEPT_ALL}, timeout=10)
    assert r.status_code == 401
    chal = r.headers["WWW-Authenticate"]
    assert chal.startswith("Bearer ") and f'realm="{ts.realm}"' in chal
    assert f'service="{ts.service}"' in chal and 'scope="repository:library/hello:pull"' in chal
    # wrong password: refused by the token server itself
    r = requests.get(ts.realm, params={"service": ts.service, "scope": "repository:private/secret:pull"},
                     auth=(reg.username, "wrong"), timeout=10)
    assert r.status_code == 401 and r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    # anonymous: public pull works, private gets a token without access -> insufficient_scope
    for repo, ok in (("library/hello", True), ("private/secret", False)):
        t = requests.get(ts.realm, params={"service": ts.service, "scope": f"repository:{repo}:pull"},
                         timeout=10).json()
        assert t["token"] == t["access_token"] and t["expires_in"] == 300 and "issued_at" in t
        tag = "oci" if ok else "1"
        r = requests.get(f"{reg.url}/v2/{repo}/manifests/{tag}",
                         headers={"Accept": ACCEPT_ALL, "Authorization": f"Bearer {t['token']}"}, timeout=10)
        if ok:
            assert r.status_code == 200 and r.content == reg.images["library/hello:oci"].raw
        else:
            assert r.status_code == 401 and 'error="insufficient_scope"' in r.headers["WWW-Authenticate"]
    # a token for another repository does not open this one
    t = requests.get(ts.realm, params={"service": ts.service, "scope": "repository:library/hello:pull"},
                     auth=(reg.username, reg.password), timeout=10).json()["token"]
    r = requests.get(f"{reg.url}/v2/private/secret/manifests/1",
                     headers={"Accept": ACCEPT_ALL, "Authorization": f"Bearer {t}"}, timeout=10)
    assert r.status_code == 401 and "insufficient_scope" in r.headers["WWW-Authenticate"]
    # with credentials (skopeo as the peer) the private image is readable; anonymously it is not
    ts.clear_requests()
    out = skopeo("inspect", "--raw", *skopeo_args(reg), f"docker://{reg.host}/private/secret:1")
    assert out.returncode == 0 and out.stdout == reg.images["private/secret:1"].raw
    assert any(q.has_authorization and q.user == reg.username for q in ts.snapshot())
    out = skopeo("inspect", "--raw", "--tls-verify=false", "--no-creds", f"docker://{reg.host}/private/secret:1")
    assert out.returncode != 0
    out = skopeo("inspect", "--raw", "--tls-verify=false", "--no-creds", f"docker://{reg.host}/library/hello:oci")
    assert out.returncode == 0 and out.stdout == reg.images["library/hello:oci"].raw
    last = ts.snapshot()[-1]
    assert not last.has_authorization and last.scopes == ["repository:library/hello:pull"]


def test_token_expiry_is_configurable(token_registry: RegistryServer, token_server) -> None:
    ts = token_server
    ts.expires_in = 2
    assert requests.get(ts.realm, params={"service": ts.service}, timeout=10).json()["expires_in"] == 2
    ts.expires_in = None
    assert "expires_in" not in requests.get(ts.realm, params={"service": ts.service}, timeout=10).json()
    ts.jwt_lifetime = -120  # beyond the registry's 60 s leeway: the registry must reject it
    t = requests.get(ts.realm, params={"service": ts.service, "scope": "repository:library/hello:pull"},
                     timeout=10).json()["token"]
    r = requests.get(f"{token_registry.url}/v2/library/hello/manifests/oci",
                     headers={"Accept": ACCEPT_ALL, "Authorization": f"Bearer {t}"}, timeout=10)
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["WWW-Authenticate"]


def test_reference_registry_negotiation_facts(plain_registry: RegistryServer) -> None:
    """What the reference registry does that client tests rely on: OCI content is a 404 when Accept lacks the
    OCI type, a docker list asked for as a manifest gives the linux/amd64 one, HEAD gives Docker-Content-Digest,
    blobs honour Range, and a blob is only served through a repository that links it."""
    reg = plain_registry
    r = im.manifest_http(reg, "library/hello", "oci", accept=DOCKER_MANIFEST)
    assert r.status_code == 404  # OCI content without the OCI type in Accept
    r = im.manifest_http(reg, "library/multi", "list", accept=DOCKER_MANIFEST)
    amd64 = reg.images["library/multi:list"].platforms["linux/amd64"]
    assert r.status_code == 200 and r.content == amd64.manifest_bytes
    r = im.manifest_http(reg, "library/hello", "oci", method="HEAD")
    assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == reg.images["library/hello:oci"].digest
    layer = reg.images["library/hello:oci"].single.layers[0][0]
    r = reg.http("GET", f"/v2/library/hello/blobs/{layer}", headers={"Range": "bytes=10-"})
    assert r.status_code == 206
    nested_layer = reg.images["a/b/c:nested"].single.layers[0][0]
    assert reg.http("GET", f"/v2/library/hello/blobs/{nested_layer}").status_code == 404  # per-repo links


def test_registry_factory_and_logs(registry_factory) -> None:
    reg = registry_factory("plain")
    assert requests.get(f"{reg.url}/v2/_catalog", timeout=10).json() == {"repositories": []}
    reg.stop()
    assert reg.proc is None
    assert "listening on 127.0.0.1" in reg.log_tail()
