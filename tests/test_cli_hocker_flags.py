"""Issue 18 items 7, 8, 13 (--version) and 17: hocker's own command lines, run as its READMEs document them.

The usage lines are those of awakesecurity/hocker's tool READMEs (optparse-generic/optparse-applicative):

  hocker-manifest|hocker-config|hocker-image [--registry URI] [(-u|--username U) (-p|--password P) |
      (-t|--token BEARER TOKEN) | (-f|--credentials-file PATH)] [--out STRING] IMAGE-NAME IMAGE-TAG
  hocker-layer ... [--out STRING] (-l|--layer SHA256) IMAGE-NAME IMAGE-TAG
  docker2nix [--registry URI] [--manifest STRING] [--altName TEXT | --altImageName TEXT] IMAGE-NAME IMAGE-TAG

Each runs against the session's token registry (private/secret:1 needs credentials, so each credential form
is really used) and its output is checked against what the registry serves.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from support.clitools import clean_env, run
from support.images import sha256_digest

from hocker_fetch import __version__, lockfile
from hocker_fetch.lockresolve import top_digest

SECRET = "private/secret:1"
HOCKER_FLAGS = ["--registry", "-u", "--username", "-p", "--password", "-t", "--token", "-f", "--credentials-file",
                "--out"]
TOOLS = ["hocker-manifest", "hocker-config", "hocker-layer", "hocker-image", "docker2nix", "hocker-lock"]


def ok(r) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout.decode()


def token_for(reg, repo: str) -> str:
    return reg.session_auth(f"repository:{repo}:pull")["Authorization"].split(" ", 1)[1]


@pytest.mark.parametrize("prog", TOOLS)
def test_version(prog):
    r = run(prog, "--version")
    assert ok(r).strip() == f"{prog} {__version__}"


@pytest.mark.parametrize("prog, extra", [
    ("hocker-manifest", []), ("hocker-config", []), ("hocker-image", []), ("hocker-layer", ["-l", "--layer"]),
])
def test_help_lists_every_hocker_flag(prog, extra):
    text = ok(run(prog, "--help"))
    for flag in HOCKER_FLAGS + extra:
        assert f"{flag} " in text or f"{flag}," in text, flag


def test_docker2nix_help_lists_hocker_flags():
    text = ok(run("docker2nix", "--help"))
    for flag in ("--registry", "--manifest", "--altImageName", "--altName"):
        assert flag in text


def test_hocker_manifest_usage_line_basic_credentials(token_registry, tmp_path):
    out = tmp_path / "manifest.json"
    r = run("hocker-manifest", "--registry", token_registry.url, "-u", token_registry.username,
            "-p", token_registry.password, "--out", str(out), "private/secret", "1")
    assert ok(r).strip() == str(out)
    assert out.read_bytes() == token_registry.images[SECRET].raw


def test_hocker_config_usage_line_bearer_token(token_registry, tmp_path):
    out = tmp_path / "config.json"
    r = run("hocker-config", f"--registry={token_registry.url}", "-t", token_for(token_registry, "private/secret"),
            f"--out={out}", "private/secret", "1")
    ok(r)
    assert sha256_digest(out.read_bytes()) == token_registry.images[SECRET].single.config_digest


def test_hocker_layer_usage_line_short_layer_flag_and_credentials_file(token_registry, tmp_path):
    """The issue's case: `-l SHA256` (bare hex, as hocker's readSHA256 took it) was refused."""
    creds = tmp_path / "creds"
    creds.write_text(f"USERNAME={token_registry.username}\nPASSWORD={token_registry.password}\n")
    digest = token_registry.images[SECRET].single.layers[0][0]
    out = tmp_path / "layer.tar.gz"
    r = run("hocker-layer", "--registry", token_registry.url, "-f", str(creds), "--out", str(out),
            "-l", digest.split(":", 1)[1], "private/secret", "1")
    assert ok(r).strip() == str(out)
    assert sha256_digest(out.read_bytes()) == digest
    out.unlink()
    ok(run("hocker-layer", "--registry", token_registry.url, "--credentials-file", str(creds), "--out", str(out),
           f"--layer={digest}", "private/secret", "1"))
    assert sha256_digest(out.read_bytes()) == digest


def test_hocker_image_usage_line(token_registry, tmp_path):
    out = tmp_path / "secret.tar"
    r = run("hocker-image", "--registry", token_registry.url, "--username", token_registry.username,
            "--password", token_registry.password, f"--out={out}", "private/secret", "1")
    assert ok(r).strip() == str(out)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["Config"].endswith(token_registry.images[SECRET].single.config_digest.split(":")[1] + ".json")


def test_docker2nix_usage_lines(token_registry, tmp_path):
    """hocker's quickstart `hocker-manifest IMAGE TAG | docker2nix IMAGE TAG`, then --manifest and --altName."""
    info = token_registry.images[SECRET]
    manifest = tmp_path / "m.json"
    manifest.write_bytes(info.raw)
    env = clean_env(DOCKER_USER=token_registry.username, DOCKER_PASS=token_registry.password)
    piped = ok(run("docker2nix", "--registry", token_registry.url, "private/secret", "1", input=info.raw, env=env))
    from_file = ok(run("docker2nix", "--registry", token_registry.url, "--manifest", str(manifest),
                       "private/secret", "1", env=env))
    assert piped == from_file and info.single.layers[0][0].split(":")[1] in piped
    for flag in ("--altName", "--altImageName"):
        text = ok(run("docker2nix", "--registry", token_registry.url, "--manifest", str(manifest), flag,
                      "renamed", "private/secret", "1", env=env))
        assert '"renamed"' in text


# -- hocker-lock add: hocker's form (item 8) and adopting a pin (item 17) ---------------------------------

def lock(path: Path, *args: str):
    return run("hocker-lock", "--file", str(path), *args)


def test_lock_add_takes_hockers_form(plain_registry, tmp_path):
    path = tmp_path / "images.lock.json"
    r = lock(path, "add", "--registry", plain_registry.url, "library/hello", "v2s2")
    ok(r)
    entry = lockfile.read(str(path))["hello"]  # type: ignore[index]
    assert (entry["host"], entry["repository"], entry["tag"]) == (plain_registry.host, "library/hello", "v2s2")
    assert top_digest(entry) == plain_registry.images["library/hello:v2s2"].digest
    # the docker form with the tag as a second argument, like the other tools
    ok(lock(path, "add", "--name", "hello2", f"{plain_registry.host}/library/hello2", "oci"))
    assert lockfile.read(str(path))["hello2"]["tag"] == "oci"  # type: ignore[index]


def test_lock_add_adopts_a_pin_without_moving_it(plain_registry, tmp_path):
    """`add NAME IMAGE@DIGEST --tag TAG` keeps DIGEST (not what TAG names now); check then sees TAG moved."""
    path = tmp_path / "images.lock.json"
    old = plain_registry.images["library/hello:v2s2"].digest
    new = plain_registry.images["library/hello:oci"].digest
    assert old != new
    ok(lock(path, "add", "web", f"{plain_registry.host}/library/hello@{old}", "--tag", "oci"))
    entry = lockfile.read(str(path))["web"]  # type: ignore[index]
    assert (entry["tag"], top_digest(entry)) == ("oci", old)
    r = lock(path, "check")
    assert r.returncode == 1 and f"web oci: {old.split(':')[1][:12]} -> {new.split(':')[1][:12]}" in r.stdout.decode()
    ok(lock(path, "update"))
    assert top_digest(lockfile.read(str(path))["web"]) == new  # type: ignore[index]


@pytest.mark.parametrize("args, says", [
    (["web", "HOST/library/hello:oci@DIGEST", "--tag", "v2s2"], "tag given twice"),
    (["HOST/library/hello", "--tag", "oci"], "give the image with its digest"),
    (["--name", "a", "b", "HOST/library/hello@DIGEST"], "name given twice"),
])
def test_lock_add_form_mistakes(plain_registry, tmp_path, args, says):
    digest = plain_registry.images["library/hello:oci"].digest
    args = [a.replace("HOST", plain_registry.host).replace("DIGEST", digest) for a in args]
    path = tmp_path / "images.lock.json"
    r = lock(path, "add", *args)
    assert r.returncode == 2 and says in r.stderr.decode()
    assert not path.exists()
