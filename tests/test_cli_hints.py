"""Issue 18 items 9, 10, 11 and 13 (-v): errors that point at the fix, and which host served what.

Real processes against the session's plain registry; a refused port is a free port nobody listens on. Name
resolution is made to fail without any packet leaving the machine: `unshare -m` with /etc/nsswitch.conf
bind-mounted to `hosts: files` (no such host: EAI_NONAME), or `unshare -n` (no network at all: EAI_AGAIN,
a temporary failure). Those tests are skipped where namespaces cannot be made.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support.clitools import clean_env, run, tool
from support.registry import ProxyRegistryServer, free_port

REPO, TAG = "library/hello", "oci"


def last_line(r, prog: str) -> str:
    err = r.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("usage:", " "))]
    assert lines and lines[-1].startswith(f"{prog}: "), err
    assert "Traceback" not in err and "urllib3" not in err and "object at 0x" not in err, err
    return lines[-1]


# -- item 9: --registry without a scheme ---------------------------------------------------------------------

def test_registry_without_scheme_finds_plain_http_on_loopback(plain_registry):
    """`--registry 127.0.0.1:PORT` is found like a docker reference's host: https, then http on loopback."""
    r = run("hocker-manifest", "--registry", plain_registry.host, REPO, TAG)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == plain_registry.images[f"{REPO}:{TAG}"].raw


def test_https_to_a_plain_http_registry_says_http_is_missing(plain_registry):
    r = run("hocker-manifest", "--registry", f"https://{plain_registry.host}", REPO, TAG)
    assert r.returncode == 6
    line = last_line(r, "hocker-manifest")
    assert "WRONG_VERSION_NUMBER" not in line
    assert f"http:// is missing (--registry http://{plain_registry.host})" in line


# -- item 10: a full reference where a repository path belongs ------------------------------------------------

def test_full_reference_with_registry_shows_both_forms(plain_registry):
    r = run("hocker-manifest", "--registry", plain_registry.url, f"{plain_registry.host}/{REPO}:{TAG}")
    assert r.returncode == 2
    line = last_line(r, "hocker-manifest")
    assert "full image reference" in line and "lowercase" not in line
    assert f"--registry {plain_registry.url} {REPO}:{TAG}" in line
    assert f"or {plain_registry.host}/{REPO}:{TAG} without --registry" in line


# -- item 11: mistakes fail at once, temporary failures are retried on short lines -----------------------------

def test_refused_loopback_port_fails_at_once():
    port = free_port()
    r = run("hocker-manifest", "--retries", "5", f"127.0.0.1:{port}/{REPO}", TAG)
    assert r.returncode == 6
    line = last_line(r, "hocker-manifest")
    assert line == (f"hocker-manifest: nothing listens on 127.0.0.1:{port} (connection refused): is the registry "
                    "running, and is the port right?")
    assert "retry" not in r.stderr.decode()


def _can(*cmd: str) -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", *cmd, "true"], capture_output=True).returncode == 0


def run_without_dns(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """A tool run where host names resolve from /etc/hosts only (an unknown name: EAI_NONAME, no packet)."""
    nss = tmp_path / "nsswitch.conf"
    nss.write_text("hosts: files\n")
    script = 'mount --bind "$1" /etc/nsswitch.conf && shift && exec "$@"'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(nss), *args], capture_output=True,
                          env=clean_env(), stdin=subprocess.DEVNULL, timeout=120)


@pytest.mark.skipif(not _can("-m"), reason="needs a mount namespace (unshare -m) to hide DNS")
def test_forgotten_host_fails_at_once_naming_docker_hub(tmp_path):
    """The issue's case: `docker2nix library/medium 1` went to Docker Hub, was retried for 16 s."""
    r = run_without_dns(tmp_path, tool("docker2nix"), "--retries", "5", "library/medium", "1")
    assert r.returncode == 6
    line = last_line(r, "docker2nix")
    assert line.startswith("docker2nix: cannot resolve registry-1.docker.io: the image names no registry host, "
                           "so it went to Docker Hub; forgot the host")
    assert "retry" not in r.stderr.decode()
    r = run_without_dns(tmp_path, tool("hocker-config"), "--retries", "5", "no-such-host.example:5000/a/b", "1")
    assert last_line(r, "hocker-config") == ("hocker-config: cannot resolve no-such-host.example: no such host "
                                             "(a typo in the registry's name?)")


@pytest.mark.skipif(not _can("-n"), reason="needs a network namespace (unshare -n)")
def test_temporary_resolution_failure_is_retried_on_one_short_line_each():
    r = subprocess.run(["unshare", "-n", tool("hocker-manifest"), "--retries", "2", "registry.example/a/b", "1"],
                       capture_output=True, env=clean_env(), stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 6
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 3, lines
    for n, line in enumerate(lines[:2], 1):
        assert re.fullmatch(rf"hocker-manifest: manifest a/b:1: cannot resolve registry.example \([^()]+\); "
                            rf"retry {n}/2 in [0-9.]+s", line), line
    assert lines[2].endswith("(gave up after 2 retries)") and "object at" not in lines[2]


# -- item 13: -v says which host served what, and how long it took --------------------------------------------

def test_verbose_names_mirror_and_origin_per_manifest_and_blob(plain_registry, tmp_path):
    info = plain_registry.images[f"{REPO}:{TAG}"].single
    with ProxyRegistryServer(tmp_path / "mirror", plain_registry.url) as mirror:
        args = ["--registry", plain_registry.url, "--mirror", mirror.host, "--platform", "linux/amd64",
                "-o", str(tmp_path / "img.tar"), REPO, TAG]
        quiet = run("hocker-image", *args, env=clean_env(XDG_CONFIG_HOME=str(tmp_path)))
        assert quiet.returncode == 0 and quiet.stderr == b"", quiet.stderr  # no -v: nothing of this
        r = run("hocker-image", "-v", *args, env=clean_env(XDG_CONFIG_HOME=str(tmp_path)))
    assert r.returncode == 0, r.stderr.decode()
    lines = r.stderr.decode().splitlines()
    seconds = r" in [0-9]+\.[0-9]{2}s"
    origin, via = re.escape(f"{plain_registry.host} (origin)"), re.escape(f"{mirror.host} (mirror)")
    head = rf"hocker-image: HEAD manifest {REPO}:{TAG} from {origin}{seconds}"
    assert any(re.fullmatch(head, x) for x in lines), lines
    assert any(re.fullmatch(rf"hocker-image: manifest {REPO}@{info.manifest_digest} from {via}, "
                            rf"{len(info.manifest_bytes)} bytes{seconds}", x) for x in lines), lines
    for digest, _type, size in info.layers:
        assert any(re.fullmatch(rf"hocker-image: blob {digest} from {via}, {size} bytes{seconds}", x)
                   for x in lines), (digest, lines)
