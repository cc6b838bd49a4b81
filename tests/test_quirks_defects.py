"""Issue 17's defects, each reproduced through the registry front that shows it in the wild.

Each of these tests failed on the code before its fix (issue 17, checked with the fixes reverted).
Defects 2 (HEAD 405) and 3 (no Docker-Content-Digest)
are in the per-front matrices (test_quirks_pull.py, test_quirks_lock.py); here: 1 (netrc on blob redirects),
4 (a multi-line --password-stdin) and 5 (a registry under a path prefix).
"""
from __future__ import annotations

import secrets
import shutil
from pathlib import Path
from typing import Callable

import pytest
from support.front_setup import IMAGE, Fronts, fronts  # noqa: F401 (fixture)
from support.fronts import basic_value, credential_violations


def netrc_home(fr: Fronts, where: Path, blob_host: str) -> tuple[Path, list[str]]:
    """A HOME with the fronts' docker config and a ~/.netrc with an entry for the blob host and a `default`."""
    home = where / "home"
    shutil.copytree(fr.home, home)
    for_cdn, default = f"netrc-cdn-{secrets.token_hex(8)}", f"netrc-default-{secrets.token_hex(8)}"
    (home / ".netrc").write_text(f"machine {blob_host.split(':')[0]} login cdn-user password {for_cdn}\n"
                                 f"default login netrc-user password {default}\n")
    (home / ".netrc").chmod(0o600)
    return home, [for_cdn, default]


def _tool_args(tool: str, fr: Fronts, out: Path, ref: str) -> list[str]:
    info = fr.upstream.images[IMAGE].single
    return {"config": ["hocker-config"], "manifest": ["hocker-manifest"], "docker2nix": ["docker2nix"],
            "layer": ["hocker-layer", "--layer", info.layers[0][0], "--out", str(out / "layer")],
            "image": ["hocker-image", "--format", "oci", "--out", str(out / "oci")],
            "lock": ["hocker-lock", "--file", str(out / "images.lock.json"), "add"]}[tool] + [
        "--ca-file", fr.ca_file, ref]


@pytest.mark.parametrize("name", ["dockerhub", "ecr"])
@pytest.mark.parametrize("tool", ["config", "layer", "image", "lock", "manifest", "docker2nix"])
def test_netrc_never_reaches_the_blob_host(fronts: Fronts, tmp_path: Path, name: str, tool: str,  # noqa: F811
                                           blob_bytes: Callable[..., bytes]) -> None:
    """Defect 1: with a ~/.netrc (an entry for the CDN's host and a `default`), a blob GET that redirects to the CDN
    (Docker Hub) or S3 (ECR) must carry no Authorization there; S3 would answer 400. The tools that fetch no blob
    pass today and keep passing. (The docker config case is every cell of test_quirks_pull.py.)"""
    front = fronts.fronts[name]
    home, netrc_secrets = netrc_home(fronts, tmp_path, front.netloc("blob"))
    front.clear()
    args = _tool_args(tool, fronts, tmp_path, fronts.ref(name))
    proc = fronts.run(args[0], *args[1:], env=fronts.env(HOME=str(home)))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    blob_log = front.requests("blob")
    assert not [s for s in blob_log if s.authorization is not None], [s.headers for s in blob_log]
    assert credential_violations(front, fronts.decoys + (netrc_secrets[0],)) == []
    info = fronts.upstream.images[IMAGE].single
    if tool == "layer":
        assert (tmp_path / "layer").read_bytes() == blob_bytes(fronts.upstream, "library/hello", info.layers[0][0])
    if tool in ("config", "layer", "image", "lock"):  # hocker-lock add reads the config for its Nix system
        assert blob_log, "the blob really came through the redirect"


def test_s3_front_refuses_and_logs_an_authorization_header(fronts: Fronts,  # noqa: F811
                                                           blob_bytes: Callable[..., bytes]) -> None:
    """The evidence can fail: a blob GET that follows ECR's redirect with the Authorization header gets S3's 400,
    and credential_violations names it."""
    import requests

    front, login = fronts.fronts["ecr"], fronts.logins["ecr"]
    front.clear()
    digest = fronts.upstream.images[IMAGE].single.layers[0][0]
    auth = {"Authorization": basic_value("AWS", login.password)}
    first = requests.get(f"{front.url}/v2/library/hello/blobs/{digest}", headers=auth, verify=fronts.ca_file,
                         allow_redirects=False, timeout=30)
    assert first.status_code == 307
    leaked = requests.get(first.headers["Location"], headers=auth, verify=fronts.ca_file, timeout=30)
    assert leaked.status_code == 400 and b"Only one auth mechanism allowed" in leaked.content
    clean = requests.get(first.headers["Location"], verify=fronts.ca_file, timeout=30)
    assert clean.status_code == 200 and clean.content == blob_bytes(fronts.upstream, "library/hello", digest)
    violations = credential_violations(front)
    assert len(violations) == 2 and all("blob" in v for v in violations), violations  # the header, the secret
    front.clear()


@pytest.mark.parametrize("prog", ["hocker-manifest", "hocker-lock"])
def test_password_stdin_takes_a_multi_line_json_key(fronts: Fronts, tmp_path: Path, prog: str) -> None:  # noqa: F811
    """Defect 4: Google's `cat key.json | docker login -u _json_key --password-stdin`: the key spans many lines;
    all of standard input is the password (one trailing newline stripped)."""
    key = fronts.logins["gar"].password
    assert key.count("\n") > 10, key
    front = fronts.fronts["gar"]
    front.clear()
    ca = ["--ca-file", fronts.ca_file]
    auth = ["-u", "_json_key", "--password-stdin"]
    empty_home = fronts.env(HOME=str(tmp_path))  # no docker config: the key on stdin is the only login
    if prog == "hocker-lock":
        args = ["--file", str(tmp_path / "l.json"), "add", *ca, *auth, fronts.ref("gar")]
    else:
        args = [*ca, *auth, fronts.ref("gar")]
    proc = fronts.run(prog, *args, env=empty_home, input=key.encode() + b"\n")  # cat key.json
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    if prog == "hocker-manifest":
        assert proc.stdout == fronts.upstream.images[IMAGE].raw
    assert credential_violations(front, fronts.decoys) == []


def test_password_stdin_one_line_access_token(fronts: Fronts, tmp_path: Path) -> None:  # noqa: F811
    """GAR's other documented form, `gcloud auth print-access-token | docker login -u oauth2accesstoken
    --password-stdin`, is one line and works today."""
    front = fronts.fronts["gar"]
    token = f"ya29.{secrets.token_urlsafe(60)}"
    front.add_user("oauth2accesstoken", token)
    front.clear()
    proc = fronts.run("hocker-config", "--ca-file", fronts.ca_file, "-u", "oauth2accesstoken", "--password-stdin",
                      fronts.ref("gar"), env=fronts.env(HOME=str(tmp_path)), input=token.encode() + b"\n")
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert proc.stdout == fronts.upstream.images[IMAGE].single.config_bytes
    assert credential_violations(front) == []


@pytest.mark.parametrize("tool", ["manifest", "image", "docker2nix"])
def test_artifactory_repository_path_prefix(fronts: Fronts, tmp_path: Path, tool: str) -> None:  # noqa: F811
    """Defect 5: Artifactory's repository path method, hocker's form `--registry
    https://HOST/artifactory/api/docker/<repo-key>/v2/ REPOSITORY TAG`: the API (and the token realm) live under
    the prefix."""
    front = fronts.fronts["artifactory"]
    front.clear()
    repo, tag = IMAGE.split(":")
    args = _tool_args(tool, fronts, tmp_path, repo)[:-1] + ["--registry", front.prefixed_url, repo, tag]
    proc = fronts.run(args[0], *args[1:])
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    top = fronts.upstream.images[IMAGE]
    if tool == "manifest":
        assert proc.stdout == top.raw
    elif tool == "image":
        assert (tmp_path / "oci" / "blobs" / "sha256" / top.digest[7:]).read_bytes() == top.raw
    else:
        assert top.digest in proc.stdout.decode() and front.profile.prefix in proc.stdout.decode()
    seen = front.requests()
    assert seen and all(s.path.startswith(front.profile.prefix + "/v2/") for s in seen), [s.path for s in seen]
    assert credential_violations(front, fronts.decoys) == []
