"""Mirrors: every tool fetching through a real pull-through cache, and surviving a dead, failing or lying one.

The mirror is the reference registry in proxy mode (distribution's `proxy: remoteurl:`) in front of the
seeded origin registry, both real processes on 127.0.0.1. Evidence is the two access logs: a pull-through
cache fetches from the origin what it does not hold yet, so each test that claims "the bytes came from the
mirror" first warms the cache, then marks both logs and checks that the tool's run made the mirror serve the
blobs while the origin served none. Faulty mirrors are tests/support/faultproxy.py in front of the origin
(HTTP 500, a flipped byte) or a closed port. Outputs are compared byte for byte with a fetch that ignores
mirrors (--no-mirrors).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from support.clitools import clean_env, run
from support.faultproxy import BLOB, FaultProxy, blob_path
from support.registry import ProxyRegistryServer, RegistryServer, access_log, free_port

REPO, TAG = "library/hello", "oci"
PLATFORM = ["--platform", "linux/amd64"]
BY_DIGEST = r"/v2/.+/manifests/sha256:[0-9a-f]{64}$"
TOOLS = ("hocker-manifest", "hocker-config", "hocker-layer", "hocker-image")


@pytest.fixture(scope="module")
def mirror(plain_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyRegistryServer]:
    """A pull-through cache of the plain registry (started and stopped here)."""
    with ProxyRegistryServer(tmp_path_factory.mktemp("mirror"), plain_registry.url) as reg:
        yield reg


def conf(tmp_path: Path, text: str, name: str = "registries.conf") -> dict[str, str]:
    """An environment whose registries.conf is `text` (and no user config: HOME does not exist)."""
    path = tmp_path / name
    path.write_text(text)
    return clean_env(CONTAINERS_REGISTRIES_CONF=str(path), XDG_CONFIG_HOME=str(tmp_path / "xdg"))


def mirror_conf(origin: str, *mirrors: str, mode: str = "") -> str:
    lines = ["[[registry]]", f'location = "{origin}"']
    for m in mirrors:
        lines += ["[[registry.mirror]]", f'location = "{m}"'] + ([f'pull-from-mirror = "{mode}"'] if mode else [])
    return "\n".join(lines) + "\n"


def tool_args(tool: str, registry: RegistryServer, out: Path) -> list[str]:
    """The command line that makes `tool` fetch library/hello:oci (its layer: the base layer)."""
    base = ["--registry", registry.url, REPO, TAG]
    if tool == "hocker-layer":
        digest = registry.images[f"{REPO}:{TAG}"].single.layers[0][0]
        return base + ["--layer", digest, "-o", str(out)]
    return base + PLATFORM + ["-o", str(out)]


def fetch(tool: str, registry: RegistryServer, out: Path, *extra: str, env: dict[str, str]) -> bytes:
    r = run(tool, *tool_args(tool, registry, out), *extra, env=env)
    assert r.returncode == 0, r.stderr.decode()
    return out.read_bytes()


def direct(tool: str, registry: RegistryServer, tmp_path: Path) -> bytes:
    return fetch(tool, registry, tmp_path / f"direct-{tool}", "--no-mirrors", env=clean_env())


def blob_gets(log: list[tuple[str, str, int]]) -> list[str]:
    return [path for method, path, status in log if method == "GET" and "/blobs/" in path and status == 200]


def skipped_lines(stderr: bytes, host: str) -> list[str]:
    return [line for line in stderr.decode().splitlines() if f"skipping mirror {host}" in line]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_gets_the_blobs_from_a_warm_mirror(plain_registry, mirror, tool, tmp_path):
    env = conf(tmp_path, mirror_conf(plain_registry.host, mirror.host))
    warm = fetch(tool, plain_registry, tmp_path / "warm", env=env)  # a cold cache fetches from the origin
    origin_mark, mirror_mark = plain_registry.log_file.stat().st_size, mirror.log_file.stat().st_size
    out = fetch(tool, plain_registry, tmp_path / "out", env=env)
    origin, via_mirror = access_log(plain_registry, origin_mark), access_log(mirror, mirror_mark)
    assert blob_gets(via_mirror), via_mirror  # every tool fetches a blob (hocker-manifest: the config)
    assert blob_gets(origin) == [], origin
    assert out == warm == direct(tool, plain_registry, tmp_path)


def test_mirror_flag_is_digest_only_the_tag_resolves_at_the_origin(plain_registry, mirror, tmp_path):
    env = conf(tmp_path, "")  # no configured mirrors: only --mirror
    fetch("hocker-image", plain_registry, tmp_path / "warm", "--mirror", mirror.host, env=env)
    origin_mark, mirror_mark = plain_registry.log_file.stat().st_size, mirror.log_file.stat().st_size
    out = fetch("hocker-image", plain_registry, tmp_path / "out", "--mirror", mirror.host, env=env)
    origin, via_mirror = access_log(plain_registry, origin_mark), access_log(mirror, mirror_mark)
    assert out == direct("hocker-image", plain_registry, tmp_path)
    # the tag is resolved at the origin with a HEAD (which Docker Hub does not count); nothing else goes there
    assert [(m, p) for m, p, _ in origin] == [("HEAD", f"/v2/{REPO}/manifests/{TAG}")], origin
    assert not [p for _, p, _ in via_mirror if p.endswith(f"/manifests/{TAG}")], via_mirror
    digest = plain_registry.images[f"{REPO}:{TAG}"].single.manifest_digest
    assert ("GET", f"/v2/{REPO}/manifests/{digest}", 200) in via_mirror
    assert len(blob_gets(via_mirror)) == 3  # config and two layers


def test_digest_only_mirror_in_registries_conf(plain_registry, mirror, tmp_path):
    env = conf(tmp_path, mirror_conf(plain_registry.host, mirror.host, mode="digest-only"))
    fetch("hocker-config", plain_registry, tmp_path / "warm", env=env)
    origin_mark = plain_registry.log_file.stat().st_size
    out = fetch("hocker-config", plain_registry, tmp_path / "out", env=env)
    assert out == plain_registry.images[f"{REPO}:{TAG}"].single.config_bytes
    origin = access_log(plain_registry, origin_mark)
    assert ("HEAD", f"/v2/{REPO}/manifests/{TAG}", 200) in origin
    assert blob_gets(origin) == [] and not [p for m, p, _ in origin if m == "GET" and "/manifests/" in p]


def test_docker2nix_through_a_mirror_pins_the_same(plain_registry, mirror, tmp_path):
    args = ["--registry", plain_registry.url, REPO, TAG, *PLATFORM]
    plain = run("docker2nix", *args, "--no-mirrors", env=clean_env())
    assert plain.returncode == 0, plain.stderr.decode()
    env = conf(tmp_path, mirror_conf(plain_registry.host, mirror.host, mode="digest-only"))
    run("docker2nix", *args, env=env)  # warm
    origin_mark = plain_registry.log_file.stat().st_size
    through = run("docker2nix", *args, env=env)
    assert through.returncode == 0, through.stderr.decode()
    assert through.stdout == plain.stdout
    assert plain_registry.url.encode() in through.stdout and mirror.host.encode() not in through.stdout
    origin = access_log(plain_registry, origin_mark)
    assert [(m, p) for m, p, _ in origin] == [("HEAD", f"/v2/{REPO}/manifests/{TAG}")], origin


# -- mirrors that fail ------------------------------------------------------------------------------------

@pytest.fixture
def broken(plain_registry) -> Iterator[FaultProxy]:
    """A mirror that is the origin behind a fault proxy (each test says how it breaks)."""
    with FaultProxy(plain_registry.url) as p:
        yield p


def _faults(kind: str, proxy: FaultProxy) -> str:
    """Break `proxy` the way `kind` says; return the mirror's host:port."""
    if kind == "down":
        return f"127.0.0.1:{free_port()}"  # nothing listens there
    if kind == "500":
        proxy.on(None, ".*").status(500)
    elif kind == "404":  # not a mirror of this registry after all
        proxy.on(None, ".*").status(404)
    elif kind == "stall":  # accepts, reads the request, never answers: --timeout ends the wait
        proxy.on(None, ".*").stall(60)
    elif kind == "corrupt":  # everything it serves by digest (a tag's answer cannot be checked: see below)
        proxy.on("GET", BLOB).flip(offset=100)
        proxy.on("GET", BY_DIGEST).flip(offset=10)
    return f"127.0.0.1:{proxy.port}"


@pytest.mark.parametrize("kind", ["down", "500", "404", "corrupt", "stall"])
@pytest.mark.parametrize("tool", TOOLS)
def test_a_failing_mirror_is_skipped_with_one_line(plain_registry, broken, tool, kind, tmp_path):
    host = _faults(kind, broken)
    env = conf(tmp_path, mirror_conf(plain_registry.host, host))
    out = tmp_path / "out"
    r = run(tool, *tool_args(tool, plain_registry, out), "--timeout", "2", env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert out.read_bytes() == direct(tool, plain_registry, tmp_path)
    lines = skipped_lines(r.stderr, host)
    assert len(lines) == 1, r.stderr.decode()
    assert lines[0].startswith(f"{tool}: ") and f"trying {plain_registry.host}" in lines[0]
    if kind == "corrupt":
        assert "digest" in lines[0] or "size" in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_quiet_keeps_only_the_skip_line(plain_registry, tmp_path):
    """-q hides progress and retries, not a broken mirror: the Nix builders run with -q, and their log is where a
    dead mirror must be named."""
    host = f"127.0.0.1:{free_port()}"
    env = conf(tmp_path, mirror_conf(plain_registry.host, host))
    r = run("hocker-config", *tool_args("hocker-config", plain_registry, tmp_path / "o"), "-q", env=env)
    assert r.returncode == 0, r.stderr.decode()
    [line] = r.stderr.decode().splitlines()
    assert line.startswith("hocker-config: ") and f"skipping mirror {host}" in line, line


def test_no_mirrors_ignores_a_broken_config(plain_registry, tmp_path):
    env = conf(tmp_path, "[[registry\n")
    bad = run("hocker-config", *tool_args("hocker-config", plain_registry, tmp_path / "o"), env=env)
    assert bad.returncode == 2
    [line] = bad.stderr.decode().splitlines()
    assert line.startswith("hocker-config: ") and "registries.conf: malformed TOML" in line
    ok = run("hocker-config", *tool_args("hocker-config", plain_registry, tmp_path / "o"), "--no-mirrors", env=env)
    assert ok.returncode == 0, ok.stderr.decode()
    both = run("hocker-config", *tool_args("hocker-config", plain_registry, tmp_path / "o"), "--no-mirrors",
               "--mirror", "127.0.0.1:1", env=env)
    assert both.returncode == 2 and b"--mirror or --no-mirrors" in both.stderr


def test_blocked_registry_is_refused(plain_registry, tmp_path):
    env = conf(tmp_path, f'[[registry]]\nlocation = "{plain_registry.host}"\nblocked = true\n')
    mark = plain_registry.log_file.stat().st_size
    r = run("hocker-manifest", "--registry", plain_registry.url, REPO, TAG, env=env)
    assert r.returncode == 2
    assert "is blocked by" in r.stderr.decode() and len(r.stderr.decode().splitlines()) == 1
    assert access_log(plain_registry, mark) == []


# -- credentials and TLS per mirror host -----------------------------------------------------------------

def test_mirror_gets_its_own_credentials_from_the_auth_file(plain_registry, basic_registry, tmp_path):
    """basic_registry (https, htpasswd, same images) as a mirror: its login comes from the auth file."""
    env = conf(tmp_path, "", name="empty.conf")
    env["REGISTRY_AUTH_FILE"] = basic_registry.authfile
    mark = basic_registry.log_file.stat().st_size
    origin_mark = plain_registry.log_file.stat().st_size
    out = fetch("hocker-layer", plain_registry, tmp_path / "layer", "--mirror", basic_registry.host,
                "--ca-file", basic_registry.ca_file, env=env)
    assert out == direct("hocker-layer", plain_registry, tmp_path)
    assert len(blob_gets(access_log(basic_registry, mark))) == 1
    assert blob_gets(access_log(plain_registry, origin_mark)) == [direct_layer_path(plain_registry)]  # direct()


def direct_layer_path(registry: RegistryServer) -> str:
    return f"/v2/{REPO}/blobs/{registry.images[f'{REPO}:{TAG}'].single.layers[0][0]}"


def test_origin_credentials_never_reach_a_mirror(plain_registry, basic_registry, tmp_path):
    """DOCKER_USER/DOCKER_PASS are for the image's registry: the mirror asks for a login, gets none, is skipped."""
    env = conf(tmp_path, "", name="empty.conf")
    env.update(DOCKER_USER=basic_registry.username, DOCKER_PASS=basic_registry.password)
    r = run("hocker-layer", *tool_args("hocker-layer", plain_registry, tmp_path / "layer"),
            "--mirror", basic_registry.host, "--ca-file", basic_registry.ca_file, env=env)
    assert r.returncode == 0, r.stderr.decode()
    [line] = skipped_lines(r.stderr, basic_registry.host)
    assert "access denied" in line and "auth file" in line and basic_registry.password not in r.stderr.decode()


def test_insecure_mirror_skips_tls_verification(plain_registry, basic_registry, tmp_path):
    env = conf(tmp_path, mirror_conf(plain_registry.host, basic_registry.host).replace(
        "[[registry.mirror]]\n", "[[registry.mirror]]\ninsecure = true\n"))
    env["REGISTRY_AUTH_FILE"] = basic_registry.authfile
    mark = basic_registry.log_file.stat().st_size
    r = run("hocker-config", *tool_args("hocker-config", plain_registry, tmp_path / "c"), env=env)
    assert r.returncode == 0 and not skipped_lines(r.stderr, basic_registry.host), r.stderr.decode()
    assert blob_gets(access_log(basic_registry, mark))
    secure = run("hocker-config", *tool_args("hocker-config", plain_registry, tmp_path / "c"),
                 "--mirror", basic_registry.host, env=conf(tmp_path, "", name="empty.conf"))
    [line] = skipped_lines(secure.stderr, basic_registry.host)  # an unknown CA without insecure: skipped
    assert secure.returncode == 0 and "TLS" in line


def test_location_rewrite_moves_the_origin(plain_registry, tmp_path):
    """prefix 127.0.0.1:1 (nothing listens there) -> location ORIGIN/library: 127.0.0.1:1/hello is fetched from
    ORIGIN/library/hello, as podman rewrites it."""
    env = conf(tmp_path, f'[[registry]]\nprefix = "127.0.0.1:1"\nlocation = "{plain_registry.host}/library"\n')
    r = run("hocker-config", f"127.0.0.1:1/hello:{TAG}", "--platform", "linux/amd64", env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == plain_registry.images[f"{REPO}:{TAG}"].single.config_bytes



def test_a_pinned_fetch_needs_no_origin(plain_registry, mirror, tmp_path):
    """With the origin down, everything by digest still comes from the (warm) mirror: a pinned build survives."""
    env = conf(tmp_path, "", name="empty.conf")
    pi = plain_registry.images[f"{REPO}:{TAG}"].single
    fetch("hocker-layer", plain_registry, tmp_path / "warm", "--mirror", mirror.host, env=env)
    dead = f"http://127.0.0.1:{free_port()}"
    r = run("hocker-layer", "--registry", dead, REPO, TAG, "--layer", pi.layers[0][0], "-o", str(tmp_path / "l"),
            "--mirror", mirror.host, env=env)
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()
    assert (tmp_path / "l").read_bytes() == direct("hocker-layer", plain_registry, tmp_path)
    r = run("hocker-manifest", "--registry", dead, f"{REPO}@{pi.manifest_digest}", "--mirror", mirror.host, env=env)
    assert r.returncode == 0 and r.stdout == pi.manifest_bytes, r.stderr.decode()


def test_a_head_without_digest_falls_back_to_the_tag(plain_registry, mirror, proxy, tmp_path):
    """Digest-only mirrors: the origin's HEAD names no digest, so the tag itself is fetched from the origin."""
    proxy.on("HEAD", f"/manifests/{TAG}$").header("Docker-Content-Digest", None)
    env = conf(tmp_path, "", name="empty.conf")
    r = run("hocker-manifest", "--registry", proxy.url, REPO, TAG, "--index", "--mirror", mirror.host, env=env)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout == plain_registry.images[f"{REPO}:{TAG}"].raw
    assert [(e.method, e.path) for e in proxy.requests(path="/manifests/")] == [
        ("HEAD", f"/v2/{REPO}/manifests/{TAG}"), ("GET", f"/v2/{REPO}/manifests/{TAG}")]


@pytest.mark.parametrize("fmt", ["docker-archive", "oci", "oci-archive"])
def test_a_corrupt_layer_from_a_mirror_is_replaced_in_every_format(plain_registry, broken, fmt, tmp_path):
    """Only the big layer is corrupted, so its bytes do land in the layout's file (FileSink) or the archive's
    tar region (RegionSink) before the digest check fails; the origin's copy must replace them."""
    base = plain_registry.images[f"{REPO}:{TAG}"].single.layers[0][0]
    broken.on("GET", blob_path(base)).flip(offset=300_000)
    host = f"127.0.0.1:{broken.port}"
    env = conf(tmp_path, mirror_conf(plain_registry.host, host))
    args = ["--registry", plain_registry.url, REPO, TAG, *PLATFORM, "--format", fmt, "-j", "3"]
    r = run("hocker-image", *args, "-o", str(tmp_path / "via"), env=env)
    [line] = skipped_lines(r.stderr, host)
    assert r.returncode == 0 and f"blob {base}" in line and "bytes do not match" in line, r.stderr.decode()
    assert len(broken.requests("GET", blob_path(base))) == 1
    assert run("hocker-image", *args, "-o", str(tmp_path / "direct"), "--no-mirrors").returncode == 0

    def tree(path: Path) -> dict[str, bytes]:
        if path.is_file():
            return {"": path.read_bytes()}
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}

    assert tree(tmp_path / "via") == tree(tmp_path / "direct")


@pytest.mark.parametrize("kind", ["down", "500", "corrupt"])
def test_docker2nix_pins_the_same_past_a_failing_mirror(plain_registry, broken, kind, tmp_path):
    """The multi-arch index resolves by tag, its platform manifest by digest (the request the lying mirror
    corrupts); the pin is byte-identical to one made without mirrors."""
    host = _faults(kind, broken)
    args = ["--registry", plain_registry.url, "library/multi", "oci", *PLATFORM]
    r = run("docker2nix", *args, env=conf(tmp_path, mirror_conf(plain_registry.host, host)))
    assert r.returncode == 0, r.stderr.decode()
    assert len(skipped_lines(r.stderr, host)) == 1, r.stderr.decode()
    assert r.stdout == run("docker2nix", *args, "--no-mirrors").stdout
