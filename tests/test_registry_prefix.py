"""Issue 17, defect 5: a registry under a path prefix, in hocker's form `--registry https://HOST/PREFIX/v2/`.

Artifactory's repository path (`/artifactory/api/docker/<repo-key>/v2/`) is reproduced by tests/support/prefixfront
in front of the real token registry: the API answers only under the prefix, and the Bearer flow (realm on the token
server) runs as it does at the root. Every tool, and a Nix build of a docker2nix expression, gets the registry's
exact bytes through it; nothing is asked outside the prefix.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

import pytest
from support import nixenv
from support.clitools import clean_env, cred_env, run
from support.faultproxy import MANIFEST
from support.nixenv import Nix, docker2nix, file_sha
from support.prefixfront import PrefixFront

from hocker_fetch.errors import UsageError
from hocker_fetch.reference import parse_registry_base, resolve_reference

nix = nixenv.nix
gen_dir = nixenv.gen_dir
HELLO = "library/hello:oci"
AMD = ["--platform", "linux/amd64"]


@pytest.fixture
def front(token_registry) -> Iterator[PrefixFront]:
    with PrefixFront(token_registry.url) as f:
        yield f


@pytest.mark.parametrize("uri, prefix", [
    ("https://h/artifactory/api/docker/key/v2/", "/artifactory/api/docker/key"),
    ("https://h/artifactory/api/docker/key", "/artifactory/api/docker/key"),
    ("http://127.0.0.1:5000/nexus/repository/docker-group/v2", "/nexus/repository/docker-group"),
    ("http://127.0.0.1:5000/v2/", ""),
])
def test_a_registry_uri_may_carry_a_path_prefix(uri, prefix):
    scheme, host, got = parse_registry_base(uri)
    assert got == prefix
    ref = resolve_reference("library/debian", "12", uri)
    assert ref.base_url == f"{scheme}://{host}{prefix}" and ref.registry == host


@pytest.mark.parametrize("bad", ["https://h/a/../b/v2/", "https://h/a%2fb", "https://h/a//b/v2/", "https://h/x/v1/",
                                 "https://registry-1.docker.io/mirror/v2/"])
def test_a_malformed_prefix_is_a_usage_error(bad):
    with pytest.raises(UsageError):
        parse_registry_base(bad)


def test_every_tool_through_the_prefix(front, token_registry, tmp_path):
    info = token_registry.images[HELLO].single
    repo, tag = HELLO.split(":")
    r = run("hocker-manifest", "--registry", front.registry, *AMD, repo, tag)
    assert r.returncode == 0, r.stderr
    assert r.stdout == info.manifest_bytes
    r = run("hocker-config", "--registry", front.registry, *AMD, repo, tag)
    assert r.stdout == info.config_bytes, r.stderr
    digest, _, _ = info.layers[0]
    r = run("hocker-layer", "--registry", front.registry, "--layer", digest, "--out", str(tmp_path / "l"), repo)
    assert r.returncode == 0, r.stderr
    assert file_sha(tmp_path / "l") == digest
    r = run("hocker-image", "--registry", front.registry, *AMD, "--out", str(tmp_path / "i.tar"), repo, tag)
    assert r.returncode == 0, r.stderr
    r = run("docker2nix", "--registry", front.registry, *AMD, repo, tag)
    assert r.returncode == 0, r.stderr
    assert f'registry = "{front.registry}"'.encode() in r.stdout
    assert front.outside == []
    assert front.requests("GET", MANIFEST)  # the API was reached, under the prefix


def test_credentials_and_head_fallback_under_the_prefix(front, token_registry, token_server):
    """A private repository (Basic to the token realm, Bearer to the prefixed API), and Artifactory's 405 HEAD."""
    front.on("HEAD", MANIFEST).status(405)
    r = run("hocker-manifest", "--registry", front.registry, "--digest", "private/secret", "1",
            env=cred_env(token_registry))
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == token_registry.images["private/secret:1"].digest
    assert {t.user for t in token_server.snapshot()} == {token_registry.username}
    assert front.outside == []


def test_without_the_prefix_nothing_is_found(front):
    r = run("hocker-manifest", "--registry", front.url, "--retries", "0", *HELLO.split(":"), env=clean_env())
    assert r.returncode != 0
    assert front.outside


def test_a_prefixed_registry_builds_under_nix(nix: Nix, gen_dir: Path, front, token_registry) -> None:
    info = token_registry.images[HELLO].single
    repo, tag = HELLO.split(":")

    class Reg:  # docker2nix() takes a registry with a url
        url = front.registry

    expr = docker2nix(Reg, HELLO, gen_dir / "prefixed.nix", *AMD)
    assert f'registry = "{front.registry}"' in expr.read_text()
    layers = nix.build_paths(expr, attr="imageLayers")
    assert [file_sha(p) for p in layers] == [d for d, _, _ in info.layers]
    [config] = nix.build_paths(expr, attr="imageConfig")
    assert Path(config).read_bytes() == info.config_bytes
    [result] = nix.build_paths(expr)
    assert sorted(os.listdir(result)) == ["compositeImage.sh", "image.json"]
    loaded = json.loads((Path(result) / "image.json").read_text())
    assert loaded  # the image description was written from the prefixed registry's pins
    assert front.outside == []
    assert front.requests("GET", rf"/v2/{repo}/blobs/")
