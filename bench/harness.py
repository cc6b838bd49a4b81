"""Measuring: run a command, time it, alternate ours and the peer's, take medians, read peak RSS.

Shared by every case so that all of them time the same way: the machine is shared and noisy, so runs of ours
and the peer's alternate (ABBA...) and only medians and the ratio of one run are reported.
"""
from __future__ import annotations

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

MiB = 1 << 20


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def human(n: float) -> str:
    """A size for people: 4.0 MiB, 512 B."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


# ---------------------------------------------------------------------------------------------------------
# the result record


def per_side(c: Case, show: Callable[[str, float | None], str]) -> tuple[str, str]:
    """The table's ours/peer cells, both shown alike: `show(side, median)` with side "ours" or "peer"."""
    return show("ours", c.ours_value), show("peer", c.peer_value)


def seconds_cells(c: Case) -> tuple[str, str]:
    """The table's ours/peer cells for most cases: the median wall times."""
    return per_side(c, lambda _side, t: f"{fmt(t)} s")


def note_cells(c: Case) -> tuple[str, str]:
    """For cases with no peer whose note already says it all (RSS, cold start)."""
    return c.note, "-"


@dataclass
class Case:
    """One row of the table and one entry of `cases` in the results JSON (the fields up to `extra`)."""

    id: str
    title: str
    ours: str
    peer: str
    target: str
    metric: str = "wall time, s"
    ours_samples: list[float] = field(default_factory=list)
    peer_samples: list[float] = field(default_factory=list)
    ours_value: float | None = None
    peer_value: float | None = None
    ratio: float | None = None      # the figure the target is about
    ratio_label: str = ""
    met: bool | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # presentation only, not written to the JSON: how the table shows ours/peer, and whether the note is in it
    cells: Callable[[Case], tuple[str, str]] = field(default=seconds_cells, repr=False,
                                                     metadata={"json": False})
    note_in_table: bool = field(default=False, metadata={"json": False})

    def conclude(self, ratio: float | None, label: str, met: bool | None) -> None:
        """Record the figure the target is about and whether it was reached (None: no target)."""
        self.ratio, self.ratio_label, self.met = ratio, label, met

    @property
    def skipped(self) -> bool:
        return self.note.startswith("SKIPPED")

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("json", True)}


def skipped(cid: str, title: str, reason: str) -> Case:
    return Case(cid, title, "", "", "", note=f"SKIPPED: {reason}")


# ---------------------------------------------------------------------------------------------------------
# running and timing commands


class CommandFailed(RuntimeError):
    pass


def run(cmd: list[str], *, env: dict[str, str] | None = None, timeout: float = 1800) -> subprocess.CompletedProcess:
    # stdin: an empty pipe, not /dev/null (docker2nix reads a manifest from a non-empty pipe or a regular file,
    # and a test run that clobbers /dev/null with a regular file must not change what we measure)
    proc = subprocess.run(cmd, input=b"", capture_output=True, env=env, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(cmd)[:300]} -> exit {proc.returncode}: "
                            f"{proc.stderr.decode(errors='replace')[-1500:]}")
    return proc


def timed(cmd: list[str], *, env: dict[str, str] | None = None, before: Callable[[], None] | None = None,
          after: Callable[[], None] | None = None) -> float:
    """Wall time of one command; dirty pages of earlier runs are flushed first so nobody pays for them."""
    if before:
        before()
    os.sync()
    t0 = time.perf_counter()
    run(cmd, env=env)
    elapsed = time.perf_counter() - t0
    if after:
        after()
    return elapsed


def children_cpu() -> float:
    """User + system CPU seconds of every child this process has waited for (nix-build counts its builders)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, float]:
    """Wall time and CPU (user + sys, the command and its children) of one command."""
    os.sync()
    c0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(cmd, input=b"", capture_output=True, env=env, cwd=cwd, timeout=1800, check=False)
    wall, cpu = time.perf_counter() - t0, children_cpu() - c0
    if proc.returncode != 0:
        raise CommandFailed(f"{' '.join(cmd)[:300]} -> exit {proc.returncode}: "
                            f"{proc.stderr.decode(errors='replace')[-1500:]}")
    return wall, cpu


def alternate(repeat: int, ours: Callable[[], float], peer: Callable[[], float], case: Case) -> None:
    """Run ours and the peer's `repeat` times each, in alternating order, and keep the medians."""
    for i in range(repeat):
        order = [(ours, case.ours_samples), (peer, case.peer_samples)]
        if i % 2:
            order.reverse()
        for fn, samples in order:
            samples.append(fn())
        log(f"  case {case.id} run {i + 1}/{repeat}: ours {case.ours_samples[-1]:.3f}  "
            f"peer {case.peer_samples[-1]:.3f}")
    case.ours_value = median(case.ours_samples)
    case.peer_value = median(case.peer_samples)


def max_rss_mib(cmd: list[str], *, env: dict[str, str] | None = None) -> float:
    """Peak resident memory of one command, from GNU time's `-v` report (NaN if it gave none)."""
    proc = run(["/usr/bin/time", "-v", *cmd], env=env)
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr.decode())
    return int(m.group(1)) / 1024 if m else float("nan")


def rm(path: Path) -> None:
    """Remove a file or a tree, including read-only Nix store paths."""
    def onerror(func, p, _exc):  # Nix store paths are read-only
        try:
            os.chmod(os.path.dirname(p), 0o755)
            os.chmod(p, 0o755)
        except OSError:
            pass
        func(p)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, onerror=onerror)
    elif path.exists() or path.is_symlink():
        path.unlink()
