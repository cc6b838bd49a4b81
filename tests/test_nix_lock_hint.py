"""importDockerLock's hint for a system an entry lacks is a command that works when pasted (issue 18, item 2):
it keeps the entry's tag (it used to drop it, and `add` then pinned :latest), names the entry's platforms and
the missing one (`add` replaces an entry), and the lock file. The test runs the printed command against the
registry, then the same evaluation succeeds.
"""
from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

from support import nixenv
from support.nixenv import BIN, NIX_DIR, VENV, Nix, base_env

nix = nixenv.nix


def hocker_lock(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "hocker-lock"), *args], capture_output=True, text=True, env=base_env(),
                          timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc


def lock_eval(nix: Nix, lock: Path, system: str, attr: str, check: bool = True) -> subprocess.CompletedProcess:
    fetchers = f"import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }}"
    path = f"(/. + {json.dumps(str(lock))})"
    return nix.run("nix-instantiate", "--eval", "--json", "--expr",
                   f'((({fetchers}).importDockerLockFor "{system}" {path}).{attr}).platform', check=check)


def hint(stderr: str) -> list[str]:
    m = re.search(r"run `(hocker-lock [^`]*)`", stderr)
    assert m, stderr
    return shlex.split(m.group(1))


def test_hint_keeps_the_tag_and_works_when_pasted(nix: Nix, plain_registry, tmp_path: Path) -> None:
    host = plain_registry.host
    lock = tmp_path / "my images.lock.json"  # a space: the file is quoted
    hocker_lock("--file", str(lock), "add", "--name", "web", "--platform", "linux/amd64", f"{host}/library/multi:oci")
    err = lock_eval(nix, lock, "aarch64-linux", "web", check=False)
    assert err.returncode != 0
    assert "entry 'web' is locked for x86_64-linux only, not for aarch64-linux" in err.stderr, err.stderr
    command = hint(err.stderr)
    assert command == ["hocker-lock", "--file", str(lock), "add", "--name", "web", "--platform", "linux/amd64",
                       "--platform", "linux/arm64/v8", f"{host}/library/multi:oci"], command
    hocker_lock(*command[1:])
    assert json.loads(lock_eval(nix, lock, "aarch64-linux", "web").stdout) == "linux/arm64/v8"
    assert json.loads(lock_eval(nix, lock, "x86_64-linux", "web").stdout) == "linux/amd64"
    entry = json.loads(lock.read_text())["images"]["web"]
    assert entry["tag"] == "oci"


def test_hint_for_an_entry_pinned_by_digest_and_for_lock_data(nix: Nix, plain_registry, tmp_path: Path) -> None:
    """Added by digest (no tag): the hint pins the same digest again. Lock data (an attribute set) has no file."""
    host = plain_registry.host
    index = plain_registry.images["library/multi:oci"].digest
    lock = tmp_path / "images.lock.json"
    hocker_lock("--file", str(lock), "add", "--name", "m", "--platform", "linux/amd64",
                f"{host}/library/multi@{index}")
    command = hint(lock_eval(nix, lock, "aarch64-linux", "m", check=False).stderr)
    assert command[-1] == f"{host}/library/multi@{index}"
    hocker_lock(*command[1:])
    assert json.loads(lock_eval(nix, lock, "aarch64-linux", "m").stdout) == "linux/arm64/v8"
    data = f"(builtins.fromJSON (builtins.readFile {lock}) // {{ }})"
    fetchers = f"import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }}"
    err = nix.run("nix-instantiate", "--eval", "--expr",
                  f'(({fetchers}).importDockerLockFor "riscv64-linux" {data}).m.outPath', check=False).stderr
    assert "hocker-lock add --name m --platform linux/amd64 --platform linux/arm64/v8 --platform linux/riscv64" \
        in err, err
    assert "--file" not in err
