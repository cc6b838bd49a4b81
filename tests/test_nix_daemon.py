"""The fetchers under Nix as NixOS runs it: a real nix-daemon (root) with build users (nixbld*), the sandbox on,
its own store and socket, and every build run by an unprivileged user through NIX_REMOTE=daemon (see
support/nixdaemon.py). The builder is this project's venv, visible in the sandbox only through
extra-sandbox-paths, as a user without nixpkgs configures it.

Covered: a public image; a private image through the daemon's environment (not the client's), also over TLS
with a self-signed CA (NIX_SSL_CERT_FILE from the daemon, the CA in the sandbox paths); a credentials
file in the sandbox paths (root:nixbld 0640) named by the `credentialsFile` argument and by
`-I DOCKER_CREDENTIALS`; the one-line failure for a credentials file the build user cannot read or cannot see;
a second image sharing layers (nothing fetched twice, from the registry's access log); `--check` of
fixed-output derivations; two concurrent builds of images sharing a layer. No secret in the daemon's store,
.drv files, state, logs.
"""
from __future__ import annotations

import bz2
import grp
import os
import re
import shutil
from collections import Counter
from pathlib import Path

from support import nixdaemon
from support.nixdaemon import NixDaemon
from support.nixenv import SECRET_IMAGE, auth_failure, docker2nix, file_sha, skopeo_config_digest, stream_image

ACCESS_LINE = re.compile(r'"GET (\S+/blobs/(sha256:[0-9a-f]{64})) HTTP/[\d.]+" (\d{3})')


nix_daemon = nixdaemon.nix_daemon  # the module-scoped daemon


def blob_gets(reg, mark: int) -> Counter:
    """Blob digests the registry served (200/206) since offset `mark` of its access log, with their counts."""
    with open(reg.log_file, "rb") as f:
        f.seek(mark)
        text = f.read().decode(errors="replace")
    return Counter(m.group(2) for m in ACCESS_LINE.finditer(text) if m.group(3) in ("200", "206"))


def one_line_error(stderr: str, start: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip().startswith(start)]
    assert len(lines) == 1, stderr[-3000:]
    return lines[0]


def scan_for(root: Path, forbidden: bytes, skip: tuple[Path, ...]) -> int:
    """No forbidden bytes in any name or file under root (bz2 build logs decompressed); returns files scanned."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        if any(Path(dirpath) == s or s in Path(dirpath).parents for s in skip):
            continue
        for name in dirnames + filenames:
            assert forbidden.decode() not in name, os.path.join(dirpath, name)
        for f in filenames:
            p = Path(dirpath, f)
            if p.is_symlink() or p.is_socket():
                continue
            data = p.read_bytes()
            if f.endswith(".bz2"):
                data += bz2.decompress(data)
            assert forbidden not in data, p
            n += 1
    return n


# ---------------------------------------------------------------------------------------------------------


def test_public_image_built_by_an_unprivileged_user(nix_daemon: NixDaemon, plain_registry, tmp_path: Path) -> None:
    d, reg = nix_daemon, plain_registry
    info = reg.images["a/b/c:nested"].single
    expr = docker2nix(reg, "a/b/c:nested", d.work / "nested.nix")
    [result] = d.build_paths(expr)
    assert result.startswith(f"{d.store}/")
    archive = stream_image(result, tmp_path / "nested.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    layers = d.build_paths(expr, attr="imageLayers")
    assert [file_sha(p) for p in layers] == [dg for dg, _, _ in info.layers]
    # the client is an untrusted user; the daemon (not the client) built it
    log = d.daemon_log.read_text(errors="replace")
    assert f"user {nixdaemon.CLIENT_USER}\n" in log and f"user {nixdaemon.CLIENT_USER} (trusted)" not in log
    # --check re-runs the fixed-output builders in the sandbox and compares
    mark = reg.log_file.stat().st_size
    d.build(expr, "--check", attr="imageLayers")
    d.build(expr, "--check", attr="imageConfig")
    assert blob_gets(reg, mark) == Counter([*(dg for dg, _, _ in info.layers), info.config_digest])


def test_concurrent_builds_and_shared_layers_fetch_each_blob_once(nix_daemon: NixDaemon, plain_registry,
                                                                  tmp_path: Path) -> None:
    d, reg = nix_daemon, plain_registry
    hello, hello2 = reg.images["library/hello:oci"].single, reg.images["library/hello2:oci"].single
    assert hello.layers[0][0] == hello2.layers[0][0]  # the shared base layer
    e1 = docker2nix(reg, "library/hello:oci", d.work / "hello.nix")
    e2 = docker2nix(reg, "library/hello2:oci", d.work / "hello2.nix")
    e3 = docker2nix(reg, "library/hello:v2s2", d.work / "hello-v2s2.nix")
    mark = reg.log_file.stat().st_size
    procs = [d.popen_build(e) for e in (e1, e2)]
    try:
        done = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:  # only after a timeout or an error: never leave a client behind
            if p.poll() is None:
                p.kill()
                p.wait()
    results = []
    for p, (out, err) in zip(procs, done):
        assert p.returncode == 0, err[-3000:]
        results.append(out.split())
    gets = blob_gets(reg, mark)
    wanted = {dg for info in (hello, hello2) for dg in [info.config_digest, *(x for x, _, _ in info.layers)]}
    assert set(gets) == wanted
    assert max(gets.values()) == 1, gets  # the shared base layer too: one store path, built once
    for (result,), info, name in ((results[0], hello, "a"), (results[1], hello2, "b")):
        archive = stream_image(result, tmp_path / f"{name}.tar")
        assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    # a third image with the same blobs (docker schema2 of hello): nothing fetched again
    mark = reg.log_file.stat().st_size
    [result] = d.build_paths(e3)
    assert blob_gets(reg, mark) == Counter()
    archive = stream_image(result, tmp_path / "v2s2.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == reg.images["library/hello:v2s2"].single.config_digest


def test_private_image_through_the_daemons_environment(nix_daemon: NixDaemon, token_registry,
                                                       tmp_path: Path) -> None:
    d, reg = nix_daemon, token_registry
    info = reg.images[SECRET_IMAGE].single
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    expr = docker2nix(reg, SECRET_IMAGE, d.work / "secret-env.nix", env=creds)
    # the client's environment does not reach the builders: still anonymous, hocker's auth error
    again = ["--check"] if _built(d, expr) else []
    proc = d.build(expr, *again, attr="imageConfig", env=creds, check=False)
    assert proc.returncode != 0 and auth_failure(proc.stderr), proc.stderr[-3000:]
    assert "inside a Nix build they come from DOCKER_USER/DOCKER_PASS or DOCKER_TOKEN in the nix-daemon's" \
        in proc.stderr  # hocker's hint, for where the builder looks
    # the daemon's environment does
    d.restart(creds)
    try:
        [result] = d.build_paths(expr)
        d.build(expr, "--check", attr="imageLayers")
    finally:
        d.restart()
    archive = stream_image(result, tmp_path / "secret.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    assert scan_for(d.root, reg.password.encode(), skip=(d.secrets, d.hidden)) > 10


def test_private_tls_registry_through_the_daemons_environment(nix_daemon: NixDaemon, basic_registry,
                                                               tmp_path: Path) -> None:
    """htpasswd over TLS with a self-signed CA: the credentials and NIX_SSL_CERT_FILE from the daemon's
    environment, the CA file in the sandbox paths (the builder sees nothing else)."""
    d, reg = nix_daemon, basic_registry
    image = "library/plain:uncompressed"
    info = reg.images[image].single
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    expr = docker2nix(reg, image, d.work / "plain-tls.nix", "--ca-file", reg.ca_file, env=creds)
    ca = d.secrets / "registry-ca.pem"
    shutil.copy(reg.ca_file, ca)
    os.chmod(ca, 0o644)
    mark = reg.log_file.stat().st_size
    d.restart({**creds, "NIX_SSL_CERT_FILE": str(ca)})
    try:
        [result] = d.build_paths(expr)
    finally:
        d.restart()
    assert set(blob_gets(reg, mark)) == {info.config_digest, *(dg for dg, _, _ in info.layers)}
    archive = stream_image(result, tmp_path / "plain.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == info.config_digest
    assert scan_for(d.root, reg.password.encode(), skip=(d.secrets, d.hidden)) > 10


def _built(d: NixDaemon, expr: Path) -> bool:
    """Whether imageConfig is already in the store (then only --check makes the builder run)."""
    out = d.run("nix-instantiate", str(d.build_nix), "--arg", "file", str(expr), "-A", "imageConfig").stdout.strip()
    q = d.run("nix-store", "--query", "--outputs", out).stdout.strip()
    return Path(q).exists()


def test_credentials_file_in_the_sandbox(nix_daemon: NixDaemon, token_registry, tmp_path: Path) -> None:
    d, reg = nix_daemon, token_registry
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    expr = docker2nix(reg, SECRET_IMAGE, d.work / "secret-file.nix", env=creds)
    content = f"DOCKER_USER={reg.username}\nDOCKER_PASS={reg.password}\n"
    nixbld = grp.getgrnam(nixdaemon.BUILD_GROUP).gr_gid
    visible = d.secrets / "docker-creds"           # in extra-sandbox-paths, root:nixbld 0640
    unreadable = d.secrets / "docker-creds-0600"   # in extra-sandbox-paths, root:root 0600
    invisible = d.hidden / "docker-creds"          # readable, but not in the sandbox paths
    for path, gid, mode in ((visible, nixbld, 0o640), (unreadable, 0, 0o600), (invisible, nixbld, 0o640)):
        path.write_text(content)
        os.chown(path, 0, gid)
        os.chmod(path, mode)

    # the credentialsFile argument: built (if needed), then re-fetched with --check
    by_arg = ("--argstr", "credentialsFile", str(visible))
    d.build(expr, *by_arg)
    d.build(expr, "--check", *by_arg, attr="imageConfig")
    d.build(expr, "--check", *by_arg, attr="imageLayers")
    # -I DOCKER_CREDENTIALS= (NIX_PATH)
    d.build(expr, "--check", "-I", f"DOCKER_CREDENTIALS={visible}", attr="imageConfig")
    # the derivation records only whether the file was named, never its contents
    drv = d.run("nix-instantiate", str(d.build_nix), "--arg", "file", str(expr), *by_arg, "-A", "imageConfig")
    text = Path(drv.stdout.strip()).read_text()
    assert '"credentialsFileExplicit","1"' in text and str(visible) in text
    implicit = d.run("nix-instantiate", str(d.build_nix), "--arg", "file", str(expr), "-A", "imageConfig")
    assert '"credentialsFileExplicit",""' in Path(implicit.stdout.strip()).read_text()

    # unreadable by the build users: one line naming the file, the build user and the fix; exit 3
    for how in (("--argstr", "credentialsFile", str(unreadable)), ("-I", f"DOCKER_CREDENTIALS={unreadable}")):
        proc = d.build(expr, "--check", *how, attr="imageConfig", check=False)
        assert proc.returncode != 0 and "failed with exit code 3" in proc.stderr, proc.stderr[-3000:]
        line = one_line_error(proc.stderr, "hocker-fetch: the credentials file")
        assert f"{unreadable} is not readable by the build user nixbld (uid " in line
        assert "outside the sandbox" in line and "chgrp nixbld" in line and "0640" in line
        assert "nix-daemon's environment" in line
    # invisible (not in extra-sandbox-paths): the same, saying so
    for how in (("--argstr", "credentialsFile", str(invisible)), ("-I", f"DOCKER_CREDENTIALS={invisible}")):
        proc = d.build(expr, "--check", *how, attr="imageConfig", check=False)
        assert proc.returncode != 0 and "failed with exit code 3" in proc.stderr, proc.stderr[-3000:]
        line = one_line_error(proc.stderr, "hocker-fetch: the credentials file")
        assert f"{invisible} does not exist in the build (build user nixbld (uid " in line
        assert "extra-sandbox-paths" in line and "group nixbld, mode 0640" in line
    # the implicit default (/etc/nix-docker-credentials.txt), absent in the sandbox: an anonymous pull, as before
    proc = d.build(expr, "--check", attr="imageConfig", check=False)
    assert proc.returncode != 0 and auth_failure(proc.stderr), proc.stderr[-3000:]
    assert "hocker-fetch: the credentials file" not in proc.stderr

    assert scan_for(d.root, reg.password.encode(), skip=(d.secrets, d.hidden)) > 10
