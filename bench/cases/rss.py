"""Case 6: peak memory (max RSS) of hocker-layer fetching a small and a large blob; no peer.

Target: both under 80 MiB, i.e. memory does not grow with the blob's size.
"""
from __future__ import annotations

from typing import Any

from ..harness import Case, human, max_rss_mib, note_cells
from ..seed import BLOB_REPO
from ..workspace import Workspace
from .base import CaseUnit


def measure(ws: Workspace) -> Case:
    c = Case("6", "peak memory (max RSS) of hocker-layer", "/usr/bin/time -v hocker-layer", "",
             "both under 80 MB: memory does not grow with blob size", metric="max RSS, MiB",
             cells=note_cells, note_in_table=True)
    results: dict[str, dict[str, Any]] = {}
    for key in ("rss_small", "rss_large"):
        digest, size = ws.blobs[key]
        samples = []
        for _ in range(max(1, min(ws.repeat, 3))):
            samples.append(max_rss_mib(ws.hocker("hocker-layer", "--layer", digest, "--out", str(ws.out / "rss.bin"),
                                                 BLOB_REPO, "x"), env=ws.env))
            ws.clean_out()
        results[key] = {"size": size, "max_rss_MiB": max(samples), "samples": samples}
    small, large = results["rss_small"], results["rss_large"]
    c.ours_samples = [small["max_rss_MiB"], large["max_rss_MiB"]]
    c.ours_value = max(c.ours_samples)
    c.extra = results
    c.note = (f"{human(small['size'])}: {small['max_rss_MiB']:.1f} MiB; "
              f"{human(large['size'])}: {large['max_rss_MiB']:.1f} MiB")
    c.conclude(large["max_rss_MiB"] / small["max_rss_MiB"], "large / small RSS", c.ours_value < 80)
    return c


UNIT = CaseUnit("6", measure, needs=frozenset({"rss_small", "rss_large"}))
