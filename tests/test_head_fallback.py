"""Issue 17, defects 2 and 3: the digest a tag names, where a registry refuses HEAD or sends no digest.

Some Nexus and Artifactory versions answer a manifest HEAD with 405 (or 501); distribution's client and
`crane digest` then GET. Some registries answer HEAD without Docker-Content-Digest. One rule for every tool
(client.manifest_digest): the digest is then the sha256 of the bytes a GET serves. A HEAD refused once is not
asked again in that run; any other status keeps its meaning (no GET behind a 403 or 404).
The registry is the real one, behind a FaultProxy that refuses or strips only what a test names.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.clitools import clean_env, run
from support.faultproxy import MANIFEST, FaultProxy

MULTI, HELLO = "library/multi:oci", "library/hello:oci"


def digest_of(proxy: FaultProxy, image: str) -> subprocess.CompletedProcess:
    repo, tag = image.split(":")
    return run("hocker-manifest", "--registry", proxy.url, "--retries", "0", "--digest", repo, tag)


def lock(path: Path, *args: str) -> subprocess.CompletedProcess:
    return run("hocker-lock", "--file", str(path), *args, "--retries", "0", env=clean_env())


@pytest.mark.parametrize("status", [405, 501])
def test_manifest_digest_falls_back_to_get_when_head_is_refused(proxy, plain_registry, status):
    rule = proxy.on("HEAD", MANIFEST).status(status)
    r = digest_of(proxy, MULTI)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == plain_registry.images[MULTI].digest  # the index's, as with a HEAD
    assert rule.hits == 1 and len(proxy.requests("GET", MANIFEST)) == 1


@pytest.mark.parametrize("status, code", [(403, 3), (404, 4), (400, 6)])
def test_other_head_failures_are_not_papered_over_with_a_get(proxy, status, code):
    proxy.on("HEAD", MANIFEST).status(status)
    r = digest_of(proxy, MULTI)
    assert r.returncode == code, r.stderr
    assert proxy.requests("GET", MANIFEST) == [] and r.stdout == b""


def test_a_head_without_docker_content_digest_means_the_sha256_of_the_get(proxy, plain_registry):
    rule = proxy.on("HEAD", MANIFEST).header("Docker-Content-Digest", None)
    r = digest_of(proxy, HELLO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode().strip() == plain_registry.images[HELLO].digest
    assert rule.hits == 1 and len(proxy.requests("GET", MANIFEST)) == 1


def test_a_get_with_a_lying_digest_header_is_still_hashed(proxy, plain_registry):
    """The header of the GET is never trusted (the HEAD's is the registry's word on the tag)."""
    proxy.on("HEAD", MANIFEST).status(405)
    proxy.on("GET", MANIFEST).header("Docker-Content-Digest", "sha256:" + "0" * 64)
    r = digest_of(proxy, HELLO)
    assert r.stdout.decode().strip() == plain_registry.images[HELLO].digest, r.stderr


def test_hocker_lock_add_check_update_ask_head_once_per_run(proxy, tmp_path):
    host = proxy.url.split("//", 1)[1]
    expected = tmp_path / "expected.json"
    for image in (HELLO, MULTI):  # the same lock file made where HEAD works
        r = lock(expected, "add", "--platform", "linux/amd64", f"{host}/{image}")
        assert r.returncode == 0, r.stderr
    proxy.clear()

    rule = proxy.on("HEAD", MANIFEST).status(405)
    path = tmp_path / "images.lock.json"
    for image in (HELLO, MULTI):
        r = lock(path, "add", "--platform", "linux/amd64", f"{host}/{image}")
        assert r.returncode == 0, r.stderr
    assert json.loads(path.read_text()) == json.loads(expected.read_text())
    assert rule.hits == 2  # one per run

    for command in ("check", "update"):
        hits, gets = rule.hits, len(proxy.requests("GET", MANIFEST))
        r = lock(path, command, "-j", "1")
        assert r.returncode == 0, (command, r.stderr)
        assert rule.hits == hits + 1, command  # two entries, one registry: HEAD asked once
        assert len(proxy.requests("GET", MANIFEST)) == gets + 2, command  # one GET per tag, nothing more
    assert json.loads(path.read_text()) == json.loads(expected.read_text())
