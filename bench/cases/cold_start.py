"""Case 7: cold start of each console script (`--help`, median of --start-runs runs); no peer, the bare venv
python's start-up is shown for scale.

Target: each under 0.25 s.
"""
from __future__ import annotations

from ..harness import Case, median, note_cells, run, timed
from ..workspace import VENV_BIN, Workspace
from .base import CaseUnit

SCRIPTS = ("hocker-manifest", "hocker-config", "hocker-layer", "hocker-image", "docker2nix")


def measure(ws: Workspace) -> Case:
    c = Case("7", "cold start of each console script (--help)", "", "", "each under 0.25 s",
             metric="median wall time, s", cells=note_cells, note_in_table=True)
    n = ws.start_runs
    per: dict[str, float] = {}
    baseline = [timed([str(VENV_BIN / "python"), "-c", "pass"]) for _ in range(n)]
    for name in SCRIPTS:
        path = VENV_BIN / name
        if not path.exists():
            continue
        run([str(path), "--help"])  # warm the page cache / bytecode
        per[name] = median([timed([str(path), "--help"]) for _ in range(n)])
    c.extra = {"per_script": per, "python_baseline": median(baseline), "runs": n}
    c.ours_samples = list(per.values())
    c.ours_value = max(per.values())
    c.note = ", ".join(f"{k} {v:.3f}" for k, v in per.items()) + f" (bare venv python: {median(baseline):.3f})"
    c.conclude(c.ours_value, "slowest script, s", c.ours_value < 0.25)
    return c


UNIT = CaseUnit("7", measure)
