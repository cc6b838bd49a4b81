"""Issue 17: the registries' auth quirks that the per-front matrix does not show by itself: tokens revoked mid-pull,
Docker Hub's rate-limit headers, GHCR's anonymous tokens, private registries refusing anonymous pulls, a wrong
ECR password, Harbor robot names from the environment. Every run is the installed tool against a front
(support/fronts.py); the fronts' header logs are the evidence.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest
from support.front_setup import IMAGE, Fronts, fronts  # noqa: F401 (fixture)
from support.fronts import basic_value, credential_violations
from support.images import ACCEPT_ALL


def test_tokens_revoked_mid_pull_are_renewed(fronts: Fronts, tmp_path: Path,  # noqa: F811
                                             blob_bytes: Callable[..., bytes]) -> None:
    """Every second authorized request finds all tokens revoked (401 invalid_token): the image still arrives whole,
    with fresh tokens from the token endpoint."""
    front = fronts.fronts["short-lived"]
    front.clear()
    front.revoke_every = 2
    try:
        proc = fronts.run("hocker-image", "--ca-file", fronts.ca_file, "-j", "1", "--format", "oci", "--out",
                          str(tmp_path / "oci"), fronts.ref("short-lived"))
    finally:
        front.revoke_every = None
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    info = fronts.upstream.images[IMAGE].single
    for digest, _t, _s in info.layers:
        assert (tmp_path / "oci" / "blobs" / "sha256" / digest[7:]).read_bytes() == blob_bytes(
            fronts.upstream, "library/hello", digest)
    seen = front.requests()
    rejected = [s for s in seen if s.role == "registry" and s.status == 401 and s.authorization]
    assert rejected, "no token was revoked under the tool: the test tested nothing"
    assert len([s for s in seen if s.role == "auth"]) > len(rejected) // 2 + 1
    assert credential_violations(front, fronts.decoys) == []


def test_docker_hub_rate_limit_headers(fronts: Fronts) -> None:  # noqa: F811
    proc = fronts.run("hocker-manifest", "--ca-file", fronts.ca_file, "--rate-limit", fronts.ref("dockerhub"))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert "99 of 100 pulls left per 6 hours" in proc.stdout.decode()


def test_ghcr_anonymous_token_for_a_public_image(fronts: Fronts, tmp_path: Path) -> None:  # noqa: F811
    """No login at all: GHCR hands out an anonymous pull token (`{"token": ...}` only); nothing carries Basic."""
    front = fronts.fronts["ghcr"]
    front.clear()
    proc = fronts.run("hocker-config", "--ca-file", fronts.ca_file, fronts.ref("ghcr"),
                      env=fronts.env(HOME=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == fronts.upstream.images[IMAGE].single.config_bytes
    auth = front.requests("auth")
    assert auth and all(s.authorization is None for s in auth)
    assert credential_violations(front) == []


@pytest.mark.parametrize("name", ["ecr", "gar", "acr"])
def test_private_registry_refuses_anonymous_pulls(fronts: Fronts, tmp_path: Path, name: str) -> None:  # noqa: F811
    proc = fronts.run("hocker-manifest", "--ca-file", fronts.ca_file, fronts.ref(name),
                      env=fronts.env(HOME=str(tmp_path)))
    err = proc.stderr.decode()
    assert proc.returncode == 3 and err.count("\n") == 1 and "hocker-manifest: " in err, err
    assert proc.stdout == b""


def test_wrong_ecr_password_is_an_auth_error_that_shows_no_secret(fronts: Fronts, tmp_path: Path) -> None:  # noqa: F811
    front = fronts.fronts["ecr"]
    front.clear()
    wrong = fronts.logins["ecr"].password[:-8] + "AAAAAAAA"
    proc = fronts.run("hocker-layer", "--ca-file", fronts.ca_file, "--layer",
                      fronts.upstream.images[IMAGE].single.layers[0][0], "--out", str(tmp_path / "l"),
                      fronts.ref("ecr"), env=fronts.env(HOME=str(tmp_path), DOCKER_USER="AWS", DOCKER_PASS=wrong))
    err = proc.stderr.decode()
    assert proc.returncode == 3 and "AWS" in err and wrong not in err and wrong[:40] not in err, err
    assert not (tmp_path / "l").exists()
    assert front.requests("blob") == []  # refused before any redirect


def test_harbor_robot_account_from_the_environment(fronts: Fronts, tmp_path: Path) -> None:  # noqa: F811
    """Harbor's robot names hold `$` and `+` (`robot$library+ci`): given as DOCKER_USER, not via a shell."""
    front, login = fronts.fronts["harbor"], fronts.logins["harbor"]
    front.clear()
    proc = fronts.run("hocker-manifest", "--ca-file", fronts.ca_file, fronts.ref("harbor"),
                      env=fronts.env(HOME=str(tmp_path), **login.env()))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == fronts.upstream.images[IMAGE].raw
    assert any(s.role == "auth" and s.authorization for s in front.requests())
    assert credential_violations(front, fronts.decoys) == []


def test_fronts_are_strict_about_tokens(fronts: Fronts) -> None:  # noqa: F811
    """The matrix means something only if a front refuses what the real registry would: a token it never issued,
    one for another repository, one past its lifetime, a password sent straight to a Bearer registry."""
    import requests

    front, login = fronts.fronts["harbor"], fronts.logins["harbor"]
    url = f"{front.url}/v2/library/hello/manifests/oci"

    def get(value: str) -> requests.Response:
        return requests.get(url, headers={"Authorization": value, "Accept": ACCEPT_ALL}, verify=fronts.ca_file,
                            timeout=30)

    assert 'error="invalid_token"' in get("Bearer not-issued").headers["WWW-Authenticate"]
    realm = f"{front.url}/service/token"
    other = requests.get(realm, params={"service": "harbor-registry", "scope": "repository:library/other:pull"},
                         auth=(login.user, login.password), verify=fronts.ca_file, timeout=30).json()["token"]
    refused = get(f"Bearer {other}")
    assert refused.status_code == 401 and 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert get(basic_value(login.user, login.password)).status_code == 401
    wrong = requests.get(realm, params={"service": "harbor-registry"}, auth=(login.user, "nope"),
                         verify=fronts.ca_file, timeout=30)
    assert wrong.status_code == 401
    good = requests.get(realm, params={"service": "harbor-registry", "scope": "repository:library/hello:pull"},
                        auth=(login.user, login.password), verify=fronts.ca_file, timeout=30).json()["token"]
    assert get(f"bearer {good}").status_code == 200  # the scheme is case-insensitive (RFC 7235)
    front.revoke_all()
    assert get(f"Bearer {good}").status_code == 401
    assert get(f"Bearer {good}").headers["WWW-Authenticate"].startswith('Bearer realm="')
