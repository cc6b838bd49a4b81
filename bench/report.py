"""What a run tells people: the machine it ran on, the Markdown table, the notes and the targets met."""
from __future__ import annotations

import os
import platform
import subprocess
from typing import Any

from .harness import Case, fmt


def version(cmd: list[str]) -> str:
    """The first line a tool prints for its version, or '?'."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def first_value(path: str, prefix: str, sep: str | None = None) -> str:
    """The value of the first line of a /proc file that starts with `prefix` ('' if none)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(sep, 1)[1].strip() if sep else line.split()[1]
    except OSError:
        pass
    return ""


def machine() -> dict[str, Any]:
    """What the results depend on: cores, memory, CPU, and the versions of every tool compared."""
    mem = int(first_value("/proc/meminfo", "MemTotal:") or 0) * 1024
    return {"nproc": os.cpu_count(), "mem_GiB": round(mem / (1 << 30), 1),
            "cpu": first_value("/proc/cpuinfo", "model name", ":"),
            "kernel": platform.release(), "python": platform.python_version(),
            "skopeo": version(["skopeo", "--version"]), "curl": version(["curl", "--version"]),
            "nix": version(["nix-build", "--version"]),
            "registry": version(["/usr/bin/docker-registry", "--version"])}


def table(cases: list[Case]) -> str:
    """The Markdown table: one row per case, ours/peer cells as each case shows them."""
    rows = ["| case | ours (median) | peer (median) | ratio | target | met |", "|---|---|---|---|---|---|"]
    for c in cases:
        if c.skipped:
            rows.append(f"| {c.id}. {c.title} | - | - | - | {c.note} | - |")
            continue
        ours, peer = c.cells(c)
        ratio = f"{fmt(c.ratio, 2)} ({c.ratio_label})" if c.ratio is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[c.met]
        rows.append(f"| {c.id}. {c.title} | {ours} | {peer} | {ratio} | {c.target} | {met} |")
    return "\n".join(rows)


def summary(cases: list[Case]) -> list[str]:
    """The paragraphs after the table: the notes it does not show, then the targets met."""
    notes = [f"note {c.id}: {c.note}" for c in cases if c.note and not c.note_in_table and not c.skipped]
    met = [c for c in cases if c.met is not None]
    return notes + [f"targets met: {sum(bool(c.met) for c in met)}/{len(met)}"
                    + "".join(f"\n  case {c.id}: {'met' if c.met else 'NOT met'}" for c in met)]
