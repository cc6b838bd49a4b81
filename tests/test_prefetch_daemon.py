"""Prefetch as NixOS users run it: an unprivileged user (not in trusted-users) prefetches through a real
nix-daemon (support/nixdaemon.py: build users, sandbox on, its own store). The daemon accepts the
content-addressed paths that `nix-store --add-fixed` sends from an untrusted user (it hashes them itself); the
paths are those nix-instantiate computes for importDockerLock, and the sandboxed build then fetches nothing.
A user the daemon does not let in (allowed-users) gets one line naming the refusal, before any download.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from support import nixdaemon
from support.nixdaemon import NixDaemon
from support.nixenv import BIN, VENV, base_env

nix_daemon = nixdaemon.nix_daemon  # the module-scoped daemon

BLOB_GET = re.compile(r'"GET (\S+/blobs/sha256:[0-9a-f]{64}) HTTP/[\d.]+" (\d{3})')
HOST = "x86_64-linux"


def blob_gets(reg, mark: int) -> list[str]:
    return [m.group(1) for m in BLOB_GET.finditer(reg.log_file.read_bytes()[mark:].decode(errors="replace"))]


def as_client(d: NixDaemon, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run one of this project's tools as the unprivileged client user, talking to the daemon.

    The venv's interpreter may live under a directory the client cannot traverse (e.g. pyenv's under
    /root, mode 0700): then the tool runs in a private mount namespace where that directory is an empty
    tmpfs with only the interpreter's prefix bound back in (what the Nix sandbox does for the builders).
    Nothing outside the process changes."""
    prefix = Path(os.path.realpath(sys.base_prefix))
    closed = next((p for p in reversed(prefix.parents) if p != Path("/") and os.stat(p).st_mode & 0o001 == 0), None)
    setpriv = ["setpriv", f"--reuid={d.client_uid}", f"--regid={d.client_gid}", "--clear-groups", *args]
    with tempfile.TemporaryDirectory(prefix="hocker-stash-") as stash:
        if closed is None:
            cmd = setpriv
        else:
            script = ('mount --make-rprivate / && mount --bind "$1" "$2" && mount -t tmpfs -o mode=755 none "$3" '
                      '&& mkdir -p "$1" && mount --bind "$2" "$1" && shift 3 && exec "$@"')
            cmd = ["unshare", "-m", "sh", "-c", script, "sh", str(prefix), stash, str(closed), *setpriv]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=d.client_env(), timeout=300,
                              stdin=subprocess.DEVNULL, cwd=d.work)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def locked(d: NixDaemon, reg, name: str) -> Path:
    """A lock file written by root (no Nix involved), readable by the client user."""
    lock = d.work / f"{name}.lock.json"
    proc = subprocess.run([str(BIN / "hocker-lock"), "--file", str(lock), "add", "--name", name,
                           f"{reg.host}/library/hello:oci"], capture_output=True, text=True, env=base_env(),
                          timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    lock.chmod(0o644)
    return lock


def test_an_untrusted_user_prefetches_through_the_daemon(nix_daemon: NixDaemon, plain_registry) -> None:
    d, reg = nix_daemon, plain_registry
    lock = locked(d, reg, "hello")
    fetchers = f'(import {d.work}/nix/default.nix {{ hocker = {json.dumps(str(VENV))}; }})'
    entry = f'({fetchers}.importDockerLockFor "{HOST}" {lock}).hello'
    fods = f"let r = {entry}; in [ r.imageConfig.outPath ] ++ map (l: l.outPath) r.imageLayers"
    paths = json.loads(d.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", fods).stdout)
    assert d.run("nix-store", "--check-validity", paths[0], check=False).returncode != 0

    proc = as_client(d, str(BIN / "hocker-lock"), "--file", str(lock), "prefetch")
    assert "prefetched 4 blobs" in proc.stderr, proc.stderr
    d.run("nix-store", "--check-validity", *paths)  # fails unless every one is valid
    # the untrusted client really is untrusted: the daemon's config names no trusted-users beyond its default
    assert "trusted-users" not in (d.conf / "nix.conf").read_text()

    mark = reg.log_file.stat().st_size
    expr = d.work / "hello-entry.nix"
    expr.write_text(entry + "\n")
    expr.chmod(0o644)
    [result] = d.run("nix-build", str(expr), "--no-out-link").stdout.split()
    assert result.startswith(f"{d.store}/")
    assert blob_gets(reg, mark) == []


def test_a_user_the_daemon_refuses_gets_one_line(nix_daemon: NixDaemon, plain_registry) -> None:
    d, reg = nix_daemon, plain_registry
    lock = locked(d, reg, "refused")
    conf = d.conf / "nix.conf"
    saved = conf.read_text()
    conf.write_text(saved + "allowed-users = root\n")
    try:
        d.restart()
        mark = reg.log_file.stat().st_size
        proc = as_client(d, str(BIN / "hocker-lock"), "--file", str(lock), "prefetch", check=False)
    finally:
        conf.write_text(saved)
        d.restart()
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hocker-lock: nix-store"), proc.stderr
    # Nix 2.8's client sees only a reset connection (the daemon logs why): the line says where to look
    assert "cannot open connection to remote store" in lines[0] and "allowed-users" in lines[0], proc.stderr
    assert blob_gets(reg, mark) == []  # refused before anything was downloaded
