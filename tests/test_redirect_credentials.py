"""Issue 17, defect 1: no credential reaches a host other than the one it was given for.

Every tool runs as a real process against the token registry behind a FaultProxy on 127.0.0.1 whose manifest and
blob GETs answer 307 to an object store on 127.0.0.2 (another host, like a CDN or S3) that logs every header.
HOME holds a ~/.netrc with a `default` entry and one for the object store's host: netrc is no credential source
(as in skopeo), so neither the registry, its token server nor the object store may see a netrc user. With a
docker config login, the token server gets the user (intended: it is the realm the registry named) and the
object store nothing.
"""
from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from support.clitools import clean_env, run
from support.faultproxy import STORE_HOST, FaultProxy

REPO, TAG = "library/hello", "oci"
CONTENT = r"/v2/.+/(manifests|blobs)/[^/]+$"
NETRC_USERS = ("netrc-default", "netrc-cdn")


def make_home(tmp_path: Path, proxy: FaultProxy, login: tuple[str, str] | None) -> Path:
    """A HOME with the netrc entries (and, with `login`, a docker config login for the proxy's host)."""
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text(f"machine {STORE_HOST} login netrc-cdn password netrc-cdn-pw\n"
                     "machine 127.0.0.1 login netrc-default password netrc-default-pw\n"
                     "default login netrc-default password netrc-default-pw\n")
    netrc.chmod(0o600)
    if login is not None:
        (home / ".docker").mkdir()
        auth = base64.b64encode(f"{login[0]}:{login[1]}".encode()).decode()
        host = proxy.url.split("//", 1)[1]
        (home / ".docker" / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return home


def run_tool(tool: str, proxy: FaultProxy, tmp_path: Path, home: Path) -> subprocess.CompletedProcess:
    env = clean_env(HOME=str(home), XDG_RUNTIME_DIR=str(home))
    reg = ["--registry", proxy.url, "--platform", "linux/amd64", "--retries", "1"]
    if tool == "hocker-lock":
        host = proxy.url.split("//", 1)[1]
        return run("hocker-lock", "--file", str(tmp_path / "l.json"), "add", "--platform", "linux/amd64",
                   f"{host}/{REPO}:{TAG}", env=env)
    if tool == "fetchblob":  # the Nix fixed-output builder's entry point
        import sys

        layer = _first_layer(tmp_path, proxy, env)
        return subprocess.run([sys.executable, "-m", "hocker_fetch.fetchblob", *reg, "--layer", layer,
                               "--out", str(tmp_path / "layer"), REPO, TAG],
                              capture_output=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    out = ["--out", str(tmp_path / "out")] if tool in ("hocker-image", "hocker-config") else []
    return run(tool, *reg, *out, REPO, TAG, env=env)


def _first_layer(tmp_path: Path, proxy: FaultProxy, env: dict[str, str]) -> str:
    r = run("hocker-manifest", "--registry", proxy.url, "--platform", "linux/amd64", REPO, TAG, env=env)
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["layers"][0]["digest"])


TOOLS = ("hocker-manifest", "hocker-config", "fetchblob", "hocker-image", "docker2nix", "hocker-lock")


@pytest.mark.parametrize("source", ["docker-config", "netrc-only"])
@pytest.mark.parametrize("tool", TOOLS)
def test_no_credential_follows_a_redirect_to_another_host(tool, source, token_proxy, token_registry, token_server,
                                                          tmp_path):
    login = (str(token_registry.username), str(token_registry.password)) if source == "docker-config" else None
    home = make_home(tmp_path, token_proxy, login)
    token_proxy.on("GET", CONTENT).redirect()
    r = run_tool(tool, token_proxy, tmp_path, home)
    assert r.returncode == 0, r.stderr
    store = token_proxy.store.requests()
    assert store and all(s.status in (200, 206) for s in store), [(s.path, s.status) for s in store]
    assert not any(s.authorization for s in store), [s.headers for s in store]
    users = {t.user for t in token_server.snapshot()}
    assert not users & set(NETRC_USERS), users  # netrc is no credential source, not even for the realm
    assert users == ({login[0]} if login else {None}), users  # the docker config login went to its realm
    assert all(e.auth_scheme in (None, "Bearer") for e in token_proxy.log), [e.auth_scheme for e in token_proxy.log]


def test_a_basic_login_stays_on_its_registry(basic_registry, tmp_path):
    """A Basic registry (TLS upstream, the proxy on loopback): the password goes to it, not to the CDN."""
    with FaultProxy(basic_registry.url, ca_file=basic_registry.ca_file) as proxy:
        home = make_home(tmp_path, proxy, (str(basic_registry.username), str(basic_registry.password)))
        proxy.on("GET", CONTENT).redirect()
        r = run_tool("hocker-image", proxy, tmp_path, home)
        assert r.returncode == 0, r.stderr
        assert any(e.auth_scheme == "Basic" for e in proxy.log)
        store = proxy.store.requests()
        assert store and not any(s.authorization for s in store), [s.headers for s in store]


def test_a_token_server_redirect_to_another_host_gets_no_credential(token_registry, token_server, tmp_path):
    """The registry's Basic credentials go to the token realm it names (intended), and no further."""
    with FaultProxy(token_server.url) as realm, \
            FaultProxy(token_registry.url, rewrite={token_server.url: realm.url}) as proxy:
        home = make_home(tmp_path, proxy, (str(token_registry.username), str(token_registry.password)))
        realm.on("GET", r"^/token$").redirect()
        r = run_tool("hocker-manifest", proxy, tmp_path, home)
        assert r.returncode == 0, r.stderr
        assert any(e.auth_scheme == "Basic" for e in realm.log)
        store = realm.store.requests()
        assert store and not any(s.authorization for s in store), [s.headers for s in store]
        assert {t.user for t in token_server.snapshot()} == {token_registry.username}


def test_a_refresh_token_is_not_posted_to_another_host(token_registry, tmp_path):
    """An identity token (ACR's refresh token) is POSTed to the realm; a 307 elsewhere would repeat the POST
    with its body: refused, and the other host sees nothing."""
    with FaultProxy(token_registry.token_server.url) as realm, \
            FaultProxy(token_registry.url, rewrite={token_registry.token_server.url: realm.url}) as proxy:
        home = tmp_path / "home"
        (home / ".docker").mkdir(parents=True)
        host = proxy.url.split("//", 1)[1]
        (home / ".docker" / "config.json").write_text(json.dumps(
            {"auths": {host: {"auth": base64.b64encode(b"<token>:").decode(), "identitytoken": "refresh-s3cret"}}}))
        target = realm.store.put(b"{}")
        realm.on("POST", r"^/token$").status(307, headers={"Location": target})
        r = run("hocker-manifest", "--registry", proxy.url, "--retries", "0", REPO, TAG,
                env=clean_env(HOME=str(home), XDG_RUNTIME_DIR=str(home)))
        assert r.returncode == 6, r.stderr
        assert b"redirected a POST request" in r.stderr and b"refresh-s3cret" not in r.stderr
        assert realm.requests("POST", "/token") and realm.store.requests() == []
