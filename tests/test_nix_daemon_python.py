"""A builder interpreter the build users cannot run is named in one line with the fix (issue 18, item 6).

Under a nix-daemon the builders run as nixbld* users; a virtualenv under /root (or any directory they cannot
traverse) made every builder fail with the shell's `hocker-fetch: 30: exec: .../python: Permission denied`,
exit 126. The builders now check the interpreter first. Reproduced with a real daemon (support/nixdaemon.py):
the interpreter is reached through a root-only (0700) directory inside the sandbox paths.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from support import nixdaemon
from support.nixdaemon import NixDaemon
from support.nixenv import VENV, docker2nix

nix_daemon = nixdaemon.nix_daemon


def expression(d: NixDaemon, python: Path, image: Path) -> Path:
    f = d.work / f"{image.stem}-python.nix"
    f.write_text(f"""
let fetchers = import {d.work / "nix"}/default.nix {{ hocker = {json.dumps(str(VENV))}; python = "{python}"; }};
in import {image} {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}
""")
    return f


def the_line(stderr: str) -> str:
    """The one message (Nix prints a builder's output and repeats it in the log tail: one distinct line)."""
    lines = {line.strip().lstrip("> ") for line in stderr.splitlines() if "cannot run the interpreter" in line}
    assert len(lines) == 1, stderr[-3000:]
    return lines.pop()


def test_unreadable_interpreter_is_one_line_with_the_fix(nix_daemon: NixDaemon, plain_registry) -> None:
    d = nix_daemon
    private = d.secrets / "root-only"
    private.mkdir(mode=0o700)
    os.chmod(private, 0o700)
    python = private / "python"
    python.symlink_to(os.path.realpath(VENV / "bin" / "python"))
    image = docker2nix(plain_registry, "library/hello:oci", d.work / "unreadable.nix")
    expr = expression(d, python, image)
    for attr in ("imageLayers", "imageConfig"):
        proc = d.run("nix-build", str(expr), "--no-out-link", "-A", attr, check=False)
        assert proc.returncode != 0
        line = the_line(proc.stderr)
        assert line.startswith("hocker-fetch: the build user nixbld") and f"cannot run the interpreter {python}" in line
        assert "extra-sandbox-paths" in line and "/root" in line
        assert "failed with exit code 126" in proc.stderr
        assert "Permission denied" not in proc.stderr and "exec:" not in proc.stderr


def test_readable_interpreter_still_builds(nix_daemon: NixDaemon, plain_registry) -> None:
    """The check costs nothing when the interpreter is fine: the same expression with the venv's python builds
    every derivation (fixed-output blobs and the image itself)."""
    d = nix_daemon
    image = docker2nix(plain_registry, "a/b/c:nested", d.work / "readable.nix")
    expr = expression(d, VENV / "bin" / "python", image)
    [result] = d.run("nix-build", str(expr), "--no-out-link").stdout.split()
    assert os.path.exists(f"{result}/compositeImage.sh")
