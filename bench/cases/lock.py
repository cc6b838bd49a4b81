"""Case 8: keep a fleet of pinned images current: `hocker-lock check` and `update` of a 50-image lock file
against 50 sequential `skopeo inspect --raw docker://...` (what a script or bot without hocker-lock runs to learn
each tag's digest; it would still have to fetch the configs and compute Nix hashes after that).

8a. check, nothing moved: ours does one HEAD per image (tag -> digest), concurrently (-j, default 8), over
    reused connections. Target: ours <= 0.2 x.
8b. update, every tag moved: ours also fetches each moved image's manifest and config and rewrites the file.
    Before every timed run of ours, outside the timing, every tag is moved to the image it did not point at
    (the lock file then names the other one). Target: ours <= 0.5 x.
"""
from __future__ import annotations

import re
import resource
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..harness import Case, CommandFailed, alternate, median, run, timed
from ..seed import FLEET_SIZE, Seeder
from ..workspace import VENV_BIN, Workspace
from .base import CaseUnit

TITLE = f"keep a {FLEET_SIZE}-image lock file current"


def hocker_lock_ready() -> str | None:
    return None if (VENV_BIN / "hocker-lock").exists() else ".venv/bin/hocker-lock does not exist yet"


class Fleet:
    """The seeded repositories, their movable tag `current`, and a lock file of all of them."""

    def __init__(self, ws: Workspace) -> None:
        assert ws.reg is not None
        self.ws = ws
        self.repos: list[dict[str, Any]] = ws.images["fleet"]["repos"]
        self.seeder = Seeder(ws.reg, ws.work)
        self.at = "a"  # where every `current` points (seed.fleet starts them on `a`)
        self.file = ws.work / "images.lock.json"

    def refs(self) -> list[str]:
        return [f"{self.ws.host}/{r['repo']}:current" for r in self.repos]

    def lock(self, command: str, *args: str) -> list[str]:
        return [str(VENV_BIN / "hocker-lock"), "--file", str(self.file), command, "-q", *args]

    def create(self) -> None:
        for ref in self.refs():
            run(self.lock("add", ref), env=self.ws.env)

    def move(self) -> None:
        """Point every `current` at the other image (two PUTs' worth of work per repository, not timed)."""
        self.at = "b" if self.at == "a" else "a"
        for r in self.repos:
            self.seeder.put_manifest(r["repo"], "current", r["manifests"][self.at])

    def peer(self) -> list[str]:
        """50 sequential `skopeo inspect --raw`, in one shell so that only the inspects are timed."""
        inspects = " && ".join(f"skopeo inspect --raw --tls-verify=false docker://{ref} >/dev/null"
                               for ref in self.refs())
        return ["sh", "-c", inspects]


def expect_exit(cmd: list[str], env: dict[str, str], code: int) -> None:
    """Run `cmd` and insist on its exit status (check: 1 when something moved, 0 when nothing did)."""
    proc = subprocess.run(cmd, input=b"", capture_output=True, env=env, timeout=600, check=False)
    if proc.returncode != code:
        raise CommandFailed(f"{' '.join(cmd)[:200]} -> exit {proc.returncode}, expected {code}: "
                            f"{proc.stderr.decode(errors='replace')[-1000:]}")


class Cpu:
    """CPU seconds (user + system) of the child processes of each timed run: on a shared, loaded machine wall
    time follows CPU, and this says whose CPU it is (skopeo's 50 Go processes vs one Python process)."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {"ours": [], "peer": []}

    def timed(self, side: str, cmd: list[str], env: dict[str, str], before: Callable[[], None] | None = None) -> float:
        if before:
            before()  # outside the CPU count too (it runs in this process anyway)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        elapsed = timed(cmd, env=env)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.samples[side].append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        return elapsed

    def summary(self) -> str:
        ours, peer = (median(self.samples[s]) or 0.0 for s in ("ours", "peer"))
        return f"CPU ours {ours:.2f} s, peer {peer:.2f} s"


def requests_made(ws: Workspace, cmd: list[str], code: int, before: Callable[[], None] | None = None) -> str:
    """What one run of `cmd` asked the registry, from its access log: `50 HEAD manifest, ...`."""
    assert ws.reg is not None
    log = Path(ws.reg.log_file)
    if before:
        before()
    start = log.stat().st_size
    expect_exit(cmd, ws.env, code)
    time.sleep(0.5)  # the registry writes its access log after answering
    with open(log, "rb") as f:
        f.seek(start)
        text = f.read().decode(errors="replace")
    kinds = Counter(f"{m[1]} {m[2]}" for m in re.finditer(r'"(HEAD|GET|PUT) /v2/\S+/(manifests|blobs)/', text))
    return ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))


def startup(ws: Workspace) -> float:
    """Median wall time of only starting Python and importing what `hocker-lock check` imports."""
    cmd = [str(VENV_BIN / "python"), "-c", "import hocker_fetch.lock, hocker_fetch.lockresolve, hocker_fetch.lockfile, "
           "hocker_fetch.client, hocker_fetch.auth, hocker_fetch.manifest, requests"]
    return median([timed(cmd, env=ws.env) for _ in range(5)]) or 0.0


def measure(ws: Workspace) -> list[Case]:
    fleet = Fleet(ws)
    fleet.create()
    peer = fleet.peer()
    check = Case("8a", f"{TITLE}: `check`, nothing moved", "hocker-lock check",
                 f"{FLEET_SIZE} sequential skopeo inspect --raw", "ours <= 0.2 x")
    check_cmd = fleet.lock("check")
    expect_exit(check_cmd, ws.env, 0)  # warm-up, and proof that nothing moved
    run(peer, env=ws.env)
    cpu = Cpu()
    alternate(ws.repeat, lambda: cpu.timed("ours", check_cmd, ws.env), lambda: cpu.timed("peer", peer, ws.env), check)
    asked = requests_made(ws, check_cmd, 0)
    check.note = (f"{cpu.summary()}; ours asked the registry {asked}; starting Python and importing alone "
                  f"takes {startup(ws):.3f} s of ours")

    update = Case("8b", f"{TITLE}: `update`, every tag moved", "hocker-lock update",
                  f"the same {FLEET_SIZE} skopeo inspects", "ours <= 0.5 x")
    update_cmd = fleet.lock("update")
    asked = requests_made(ws, update_cmd, 0, before=fleet.move)  # also the warm-up
    expect_exit(check_cmd, ws.env, 0)
    cpu = Cpu()
    alternate(ws.repeat, lambda: cpu.timed("ours", update_cmd, ws.env, before=fleet.move),
              lambda: cpu.timed("peer", peer, ws.env), update)
    expect_exit(check_cmd, ws.env, 0)  # every timed update caught up with the move before it
    fleet.move()
    expect_exit(check_cmd, ws.env, 1)  # and check sees a move

    for c, limit in ((check, 0.2), (update, 0.5)):
        assert c.ours_value is not None and c.peer_value is not None
        ratio = c.ours_value / c.peer_value
        c.conclude(ratio, "ours / peer", ratio <= limit)
    update.note = (f"{cpu.summary()}; ours asked the registry {asked}; before every timed `update` all "
                   f"{FLEET_SIZE} tags are moved (not timed); ours runs -j 8 (the default); the peer only learns "
                   "the digests, ours also fetches manifests and configs and writes the file")
    return [check, update]


UNIT = CaseUnit("8", measure, needs=frozenset({"fleet"}), ready=hocker_lock_ready, skip_title=TITLE)
