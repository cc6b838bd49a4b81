"""Mirrors inside Nix builds (issue 12): nix/default.nix's `mirrors` argument, the impure
CONTAINERS_REGISTRIES_CONF, and the daemon wiring of the NixOS option `services.hocker-images.mirrors` (its
evaluation, the overlay and the TOML writer: test_mirrors_nix_eval.py).

Real components: the origin is the seeded reference registry; the mirror is a second reference registry in
pull-through cache mode (distribution's `proxy: remoteurl:`) in front of it, both on 127.0.0.1. Evidence comes
from their access logs: after the cache is warmed through the proxy, a build through the mirror makes no blob
GET at the origin. Builds run in a private single-user Nix 2.8 store (support/nixenv.py) and under a real
nix-daemon with build users and the sandbox on, as an unprivileged user (support/nixdaemon.py).

A mirror setting must never change an output path: checked on every derivation of an image (the fixed-output
config, layers and manifest, and the composite, archive and layout built from them).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import tomllib
from support import nixdaemon, nixenv
from support.nixdaemon import NixDaemon
from support.nixenv import NIX_DIR, VENV, Nix, docker2nix, file_sha, skopeo_config_digest, stream_image
from support.registry import ProxyRegistryServer, RegistryServer, access_log, free_port

nix = nixenv.nix  # module-scoped: one throw-away store for this module
gen_dir = nixenv.gen_dir
nix_daemon = nixdaemon.nix_daemon

BLOB = re.compile(r"/blobs/(sha256:[0-9a-f]{64})$")
BLOB_PATH = r"/v2/.+/blobs/sha256:[0-9a-f]{64}$"  # support.faultproxy's rule pattern for blob requests
WARNING = "hocker-fetch: CONTAINERS_REGISTRIES_CONF="


# -- the pull-through cache and the access logs --------------------------------------------------------------


class PullThrough(ProxyRegistryServer):
    """support.registry's pull-through cache, plus warming it the way distribution needs."""

    def warm(self, repo: str, digests: list[str], timeout: float = 60) -> None:
        """Pull each blob through the cache, then wait until the cache has committed it (distribution stores a
        proxied blob in the background, with a second fetch from the origin): from then on it serves it alone."""
        for digest in digests:
            r = self.http("GET", f"/v2/{repo}/blobs/{digest}")
            assert r.status_code == 200 and nixenv.sha(r.content) == digest, r.status_code
        links = [self.storage / "docker/registry/v2/repositories" / repo / "_layers/sha256" / d[7:] / "link"
                 for d in digests]
        deadline = time.monotonic() + timeout
        while not all(p.exists() for p in links):
            assert time.monotonic() < deadline, f"the cache did not store {[str(p) for p in links if not p.exists()]}"
            time.sleep(0.05)


@pytest.fixture
def mirror(plain_registry: RegistryServer, tmp_path: Path) -> Iterator[PullThrough]:
    """A fresh (empty) pull-through cache of the seeded plain registry, stopped at test end."""
    proxy = PullThrough(tmp_path / "mirror", plain_registry.url)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()


def mark(reg: RegistryServer) -> int:
    return reg.log_file.stat().st_size


def blob_gets(reg: RegistryServer, offset: int) -> Counter:
    """Blob digests served (GET 200/206) since `offset`."""
    out: Counter = Counter()
    for method, path, status in access_log(reg, offset):
        m = BLOB.search(path)
        if m and method == "GET" and status in (200, 206):
            out[m.group(1)] += 1
    return out


def image_blobs(reg: RegistryServer, image: str) -> list[str]:
    info = reg.images[image].single
    return [info.config_digest, *(d for d, _, _ in info.layers)]


# -- registries.conf as Nix values ---------------------------------------------------------------------------


def to_nix(value: Any) -> str:
    """A Python value (str, bool, int, list, dict) as a Nix expression."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[ " + " ".join(f"({to_nix(v)})" for v in value) + " ]"
    if isinstance(value, dict):
        return "{ " + " ".join(f"{json.dumps(k)} = {to_nix(v)};" for k, v in value.items()) + " }"
    raise TypeError(value)


def mirrors_conf(origin: RegistryServer, *locations: str, mode: Optional[str] = None) -> dict[str, Any]:
    """registries.conf for the origin (http: insecure) with these mirrors, in order."""
    mirror = [{"location": loc, "insecure": True, **({"pull-from-mirror": mode} if mode else {})}
              for loc in locations]
    return {"registry": [{"prefix": origin.host, "location": origin.host, "insecure": True, "mirror": mirror}]}


def write_build_nix(root: Path, nix_dir: Path = NIX_DIR) -> Path:
    """build.nix with `mirrors` (any Nix value) passed to nix/default.nix."""
    path = root / "mirrors-build.nix"
    path.write_text(f"""
{{ file, mirrors ? null }}:
let fetchers = import {nix_dir}/default.nix {{ hocker = {json.dumps(str(VENV))}; inherit mirrors; }};
in import file {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}
""")
    return path


def build_args(build_nix: Path, expr: Path, mirrors: Optional[str], *extra: str) -> list[str]:
    args = ["nix-build", str(build_nix), "--no-out-link", "--arg", "file", str(expr), *extra]
    return args + (["--arg", "mirrors", mirrors] if mirrors is not None else [])


def derivations(nix: Nix, build_nix: Path, expr: Path, mirrors: Optional[str]) -> dict[str, dict]:
    """Every derivation of the image (composite, archive, layout and their inputs) by output path: its env."""
    attrs = ["", "dockerArchive", "ociLayout"]
    drvs = []
    for attr in attrs:
        args = ["nix-instantiate", str(build_nix), "--arg", "file", str(expr)]
        args += (["--arg", "mirrors", mirrors] if mirrors is not None else []) + (["-A", attr] if attr else [])
        drvs.append(nix.run(*args).stdout.strip())
    shown = json.loads(nix.run("nix", "show-derivation", "--recursive", *drvs).stdout)
    return {drv["outputs"]["out"]["path"]: drv["env"] for drv in shown.values()}


# -- output paths ------------------------------------------------------------------------------------------


def test_mirrors_never_change_an_output_path(nix: Nix, gen_dir: Path, plain_registry, tmp_path: Path) -> None:
    """With no mirrors, an attribute set, a file (path literal and string) and `{ }`: every derivation of the
    image has the same output path; only the fixed-output .drv files differ, and each of them carries the one
    registries.conf store file (whose text is the rendered TOML), the others carry nothing."""
    expr = docker2nix(plain_registry, "library/hello:oci", gen_dir / "hello.nix")
    build_nix = write_build_nix(tmp_path)
    conf = mirrors_conf(plain_registry, "127.0.0.1:9", mode="digest-only")
    conf_file = tmp_path / "registries.conf"
    conf_file.write_text(f'[[registry]]\nprefix = "{plain_registry.host}"\nlocation = "{plain_registry.host}"\n')
    variants = {"none": None, "attrs": to_nix(conf), "path": str(conf_file), "string": json.dumps(str(conf_file)),
                "empty": "{ }"}
    envs = {name: derivations(nix, build_nix, expr, m) for name, m in variants.items()}
    base = envs["none"]
    fixed = {p for p, env in base.items() if "outputHash" in env}
    assert len(fixed) == 2 + len(plain_registry.images["library/hello:oci"].single.layers)  # config, manifest
    assert len(base) == len(fixed) + 3  # composite, docker archive, OCI layout
    for name, env in envs.items():
        assert set(env) == set(base), name
        confs = {e.get("hockerRegistriesConf") for p, e in env.items() if p in fixed}
        others = {e.get("hockerRegistriesConf") for p, e in env.items() if p not in fixed}
        assert others == {None}
        assert all("CONTAINERS_REGISTRIES_CONF" in env[p]["impureEnvVars"].split() for p in fixed)
        if name == "none":
            assert confs == {None}
            continue
        [path] = confs
        assert path.startswith(str(nix.store) + "/") and path.endswith("-registries.conf")
        text = Path(path).read_text()
        if name == "attrs":
            assert tomllib.loads(text) == conf
        elif name == "empty":
            assert text == ""
        else:
            assert text == conf_file.read_text()


# -- single-user builds --------------------------------------------------------------------------------------


def test_single_user_build_through_a_pull_through_cache(nix: Nix, gen_dir: Path, plain_registry, mirror: PullThrough,
                                                         tmp_path: Path) -> None:
    """The `mirrors` argument: every blob comes from the warmed cache (the origin's log shows no blob GET), the
    store paths are those of the build without mirrors, and the image is the origin's. Then the mirror is down:
    `--check` fetches everything again, from the origin, and matches."""
    reg, image = plain_registry, "library/hello:oci"
    expr = docker2nix(reg, image, gen_dir / "hello-mirror.nix")
    build_nix = write_build_nix(tmp_path)
    blobs = image_blobs(reg, image)
    mirror.warm("library/hello", blobs)
    conf = to_nix(mirrors_conf(reg, mirror.host))
    expected = {p: e for p, e in derivations(nix, build_nix, expr, None).items()}
    origin, proxy = mark(reg), mark(mirror)
    proc = nix.run(*build_args(build_nix, expr, conf))
    [result] = proc.stdout.split()
    assert result in expected
    layers = nix.run(*build_args(build_nix, expr, conf, "-A", "imageLayers")).stdout.split()
    assert set(layers) <= set(expected) and [file_sha(p) for p in layers] == blobs[1:]
    for attr in ("imageConfig", "imageLayers"):  # fetched again, whatever this store already held
        nix.run(*build_args(build_nix, expr, conf, "--check", "-A", attr))
    assert blob_gets(reg, origin) == Counter(), access_log(reg, origin)
    assert set(blob_gets(mirror, proxy)) == set(blobs)
    archive = stream_image(result, tmp_path / "hello.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == reg.images[image].single.config_digest

    # the mirror down: the same outputs, from the origin
    dead = f"127.0.0.1:{free_port()}"
    origin = mark(reg)
    for attr in ("imageConfig", "imageLayers"):
        nix.run(*build_args(build_nix, expr, to_nix(mirrors_conf(reg, dead)), "--check", "-A", attr))
    assert set(blob_gets(reg, origin)) == set(blobs)


def test_impure_containers_registries_conf_single_user(nix: Nix, gen_dir: Path, plain_registry, mirror: PullThrough,
                                                       tmp_path: Path) -> None:
    """Without `mirrors`: CONTAINERS_REGISTRIES_CONF from nix-build's environment is used when readable; a file
    that cannot be read is one line on stderr and the fetch goes to the origin; `mirrors = { }` ignores it."""
    reg, image = plain_registry, "a/b/c:nested"
    expr = docker2nix(reg, image, gen_dir / "nested-impure.nix")
    build_nix = write_build_nix(tmp_path)
    blobs = image_blobs(reg, image)
    mirror.warm("a/b/c", blobs)
    conf = tmp_path / "registries.conf"
    conf.write_text(
        f'[[registry]]\nprefix = "{reg.host}"\nlocation = "{reg.host}"\ninsecure = true\n'
        f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\npull-from-mirror = "digest-only"\n')
    env = {"CONTAINERS_REGISTRIES_CONF": str(conf)}
    origin, proxy = mark(reg), mark(mirror)
    nix.run(*build_args(build_nix, expr, None), env=env)
    assert blob_gets(reg, origin) == Counter(), access_log(reg, origin)
    assert set(blob_gets(mirror, proxy)) == set(blobs)

    # unreadable: one line, then the origin
    origin, proxy = mark(reg), mark(mirror)
    missing = {"CONTAINERS_REGISTRIES_CONF": str(tmp_path / "no-such.conf")}
    proc = nix.run(*build_args(build_nix, expr, None, "--check", "-A", "imageLayers"), env=missing)
    lines = [line for line in proc.stderr.splitlines() if WARNING in line]
    assert len(lines) == len(blobs) - 1, proc.stderr  # one per layer builder
    assert f"{WARNING}{tmp_path / 'no-such.conf'} cannot be read in this build" in lines[0]
    assert "fetching without mirrors" in lines[0] and "mirrors argument" in lines[0]
    assert set(blob_gets(reg, origin)) == set(blobs[1:]) and blob_gets(mirror, proxy) == Counter()

    # the argument wins: `{ }` is no mirrors at all, whatever the environment says
    origin, proxy = mark(reg), mark(mirror)
    nix.run(*build_args(build_nix, expr, "{ }", "--check", "-A", "imageConfig"), env=env)
    assert blob_gets(reg, origin) == Counter([blobs[0]]) and blob_gets(mirror, proxy) == Counter()


@pytest.mark.parametrize("fault", ["corrupt", "500"])
def test_a_faulty_mirror_never_reaches_the_store(nix: Nix, gen_dir: Path, plain_registry, proxy, fault: str,
                                                 tmp_path: Path) -> None:
    """A mirror that flips a byte of every blob, or answers 500: the fetch skips it and takes the origin's
    bytes, and the build log names the skipped mirror (the builders run the tools with --quiet, which keeps that
    line); `--check` compares them with the outputs built without mirrors, so a corrupted byte in the store
    would fail the build."""
    reg, image = plain_registry, "library/hello:oci"
    expr = docker2nix(reg, image, gen_dir / "hello-faulty.nix")
    build_nix = write_build_nix(tmp_path)
    blobs = image_blobs(reg, image)
    nix.run(*build_args(build_nix, expr, None))  # the reference outputs (if not already in the store)
    if fault == "corrupt":
        proxy.on("GET", BLOB_PATH).flip(offset=3)
    else:
        proxy.on("GET", BLOB_PATH).status(500)
    host = proxy.url.split("://", 1)[1]
    conf = to_nix(mirrors_conf(reg, host))
    origin = mark(reg)
    logs = [nix.run(*build_args(build_nix, expr, conf, "--check", "-A", attr)).stderr
            for attr in ("imageConfig", "imageLayers")]
    skipped = [line for log in logs for line in log.splitlines() if f"skipping mirror {host}" in line]
    assert len(skipped) == len(blobs), "\n".join(logs)[-3000:]  # one line per fetcher: each is its own process
    asked = {r.path.rsplit("/", 1)[1] for r in proxy.requests("GET", BLOB_PATH)}
    assert asked == set(blobs)  # every blob was asked of the mirror first
    direct = blob_gets(reg, origin)
    assert set(direct) == set(blobs)  # and then served by the origin


def test_docker_hub_prefix_through_a_mirror_stays_on_this_machine(nix: Nix, gen_dir: Path, plain_registry,
                                                                  mirror: PullThrough, tmp_path: Path) -> None:
    """The configuration most users write: `prefix = "docker.io"` with a mirror, for a file whose registry is
    Docker Hub's (the fetchers' default, `https://registry-1.docker.io/v2/`). Here the mirror is the cache of
    the test registry, which holds the same repository; every other connection goes to a dead proxy on
    127.0.0.1 (no_proxy only for 127.0.0.1), so the build succeeds only if nothing but the mirror was needed."""
    reg, image = plain_registry, "library/hello2:oci"
    local = docker2nix(reg, image, gen_dir / "hello2-local.nix")
    text, n = re.subn(r'"https?://127\.0\.0\.1:\d+[^"]*"', '"https://registry-1.docker.io/v2/"', local.read_text())
    assert n >= 1 and not [line for line in text.splitlines() if "127.0.0.1" in line and not line.startswith("#")]
    expr = gen_dir / "hello2-hub.nix"
    expr.write_text(text)
    build_nix = write_build_nix(tmp_path)
    blobs = image_blobs(reg, image)
    mirror.warm("library/hello2", blobs)
    conf = to_nix({"registry": [{"prefix": "docker.io", "location": "registry-1.docker.io",
                                 "mirror": [{"location": mirror.host, "insecure": True}]}]})
    dead = f"http://127.0.0.1:{free_port()}"
    offline = {"http_proxy": dead, "https_proxy": dead, "HTTP_PROXY": dead, "HTTPS_PROXY": dead,
               "all_proxy": dead, "ALL_PROXY": dead, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    origin, proxy = mark(reg), mark(mirror)
    [result] = nix.run(*build_args(build_nix, expr, conf), env=offline).stdout.split()
    # the layers again (a layer shared with an image built earlier in this store was not fetched above)
    nix.run(*build_args(build_nix, expr, conf, "--check", "-A", "imageLayers"), env=offline)
    assert blob_gets(reg, origin) == Counter() and set(blob_gets(mirror, proxy)) == set(blobs)
    archive = stream_image(result, tmp_path / "hub.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == reg.images[image].single.config_digest
    # without the mirror the same build must reach Docker Hub, which the dead proxy stops: the test can fail
    proc = nix.run(*build_args(build_nix, expr, "{ }", "--check", "-A", "imageConfig"), env=offline, check=False)
    assert proc.returncode != 0 and "failed with exit code 6" in proc.stderr, proc.stderr[-2000:]
    assert "the proxy from the environment" in proc.stderr and "NewConnectionError" not in proc.stderr


# -- under the nix-daemon ------------------------------------------------------------------------------------


def daemon_build(d: NixDaemon, build_nix: Path, expr: Path, mirrors: Optional[str], *extra: str,
                 check: bool = True) -> subprocess.CompletedProcess:
    return d.run(*build_args(build_nix, expr, mirrors, *extra), check=check)


def test_daemon_sandbox_build_through_a_pull_through_cache(nix_daemon: NixDaemon, plain_registry,
                                                           mirror: PullThrough, tmp_path: Path) -> None:
    """As NixOS builds: build users, sandbox = true, an unprivileged client. The `mirrors` file is a store
    input of each fetch, so the sandbox shows it; the blobs come from the cache, the store paths are those of
    the image without mirrors. A mirror that is down: `--check` still succeeds, from the origin."""
    d, reg, image = nix_daemon, plain_registry, "library/hello2:oci"
    expr = docker2nix(reg, image, d.work / "hello2-mirror.nix")
    build_nix = write_build_nix(d.work, d.work / "nix")
    blobs = image_blobs(reg, image)
    mirror.warm("library/hello2", blobs)
    conf = to_nix(mirrors_conf(reg, mirror.host, mode="digest-only"))
    plain = d.run("nix-instantiate", str(build_nix), "--arg", "file", str(expr)).stdout.strip()
    [expected] = d.run("nix-store", "--query", "--outputs", plain).stdout.split()
    origin, proxy = mark(reg), mark(mirror)
    [result] = daemon_build(d, build_nix, expr, conf).stdout.split()
    assert result == expected
    assert blob_gets(reg, origin) == Counter(), access_log(reg, origin)
    assert set(blob_gets(mirror, proxy)) == set(blobs)
    archive = stream_image(result, tmp_path / "hello2.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == reg.images[image].single.config_digest

    dead = f"127.0.0.1:{free_port()}"
    origin = mark(reg)
    for attr in ("imageLayers", "imageConfig"):
        daemon_build(d, build_nix, expr, to_nix(mirrors_conf(reg, dead)), "--check", "-A", attr)
    assert set(blob_gets(reg, origin)) == set(blobs)


def test_daemon_environment_registries_conf(nix_daemon: NixDaemon, plain_registry, mirror: PullThrough) -> None:
    """What services.hocker-images.mirrors sets up, for real: a registries.conf in the store, listed in the
    daemon's extra-sandbox-paths, and CONTAINERS_REGISTRIES_CONF naming it in the nix-daemon's environment. The
    client's own variable does not count; a file outside the sandbox paths is one line on stderr and the
    origin serves."""
    d, reg, image = nix_daemon, plain_registry, "library/plain:uncompressed"
    expr = docker2nix(reg, image, d.work / "plain-daemon-env.nix")
    build_nix = write_build_nix(d.work, d.work / "nix")
    blobs = image_blobs(reg, image)
    mirror.warm("library/plain", blobs)
    text = (f'[[registry]]\nprefix = "{reg.host}"\nlocation = "{reg.host}"\ninsecure = true\n'
            f'[[registry.mirror]]\nlocation = "{mirror.host}"\ninsecure = true\n')
    source, hidden = d.work / "registries.conf", d.hidden / "registries.conf"
    for f in (source, hidden):
        f.write_text(text)
        os.chmod(f, 0o644)
    stored = d.run("nix-store", "--add", str(source)).stdout.strip()
    assert stored.startswith(f"{d.store}/") and Path(stored).read_text() == text
    daemon_build(d, build_nix, expr, None)  # built (from wherever), so that --check re-fetches below

    # the client's environment: not the builders'
    origin = mark(reg)
    d.run(*build_args(build_nix, expr, None, "--check", "-A", "imageConfig"),
          env={"CONTAINERS_REGISTRIES_CONF": stored})
    assert blob_gets(reg, origin) == Counter([blobs[0]])

    d.set_sandbox_paths([stored])
    d.restart({"CONTAINERS_REGISTRIES_CONF": stored})
    try:
        origin, proxy = mark(reg), mark(mirror)
        for attr in ("imageLayers", "imageConfig"):
            proc = daemon_build(d, build_nix, expr, None, "--check", "-A", attr)
            assert WARNING not in proc.stderr, proc.stderr[-2000:]  # the store file is visible in the sandbox
        assert blob_gets(reg, origin) == Counter(), access_log(reg, origin)
        assert set(blob_gets(mirror, proxy)) == set(blobs)
        d.restart({"CONTAINERS_REGISTRIES_CONF": str(hidden)})
        origin = mark(reg)
        proc = daemon_build(d, build_nix, expr, None, "--check", "-A", "imageConfig")
        assert f"{WARNING}{hidden} cannot be read in this build" in proc.stderr, proc.stderr[-2000:]
        assert blob_gets(reg, origin) == Counter([blobs[0]])
    finally:
        d.set_sandbox_paths([])
        d.restart()
