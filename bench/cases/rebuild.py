"""Case 5: rebuild with Nix after one of the image's 4 layers changed, each side from its own empty store
that already holds the first build: docker2nix's default output against the pullImage-style FOD.

What counts is the bytes each side fetched for the second build, read from the registry's access log.
Target: ours fetches only the changed layer (plus at most 1 MiB of manifests and config).
"""
from __future__ import annotations

import re
import statistics
import time
from pathlib import Path

from ..harness import Case, MiB, human, per_side, run, timed
from ..nix import alternate_in_fresh_stores, nix_build, nix_files, nix_ready
from ..workspace import Workspace
from .base import CaseUnit

ACCESS_LINE = re.compile(r'"(GET|HEAD) (\S+) HTTP/[\d.]+" (\d{3}) (\d+)')


def bytes_served_since(log_file: Path, mark: int) -> dict[str, int]:
    """Bytes the registry sent for blob and manifest GETs since offset `mark` of its access log."""
    with open(log_file, "rb") as f:
        f.seek(mark)
        text = f.read().decode(errors="replace")
    out = {"blob_bytes": 0, "manifest_bytes": 0, "blob_gets": 0, "requests": 0}
    for m in ACCESS_LINE.finditer(text):
        method, uri, status, n = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        out["requests"] += 1
        if method != "GET" or status not in (200, 206):
            continue
        if "/blobs/" in uri:
            out["blob_bytes"] += n
            out["blob_gets"] += 1
        elif "/manifests/" in uri:
            out["manifest_bytes"] += n
    out["total_bytes"] = out["blob_bytes"] + out["manifest_bytes"]
    return out


def cells(c: Case) -> tuple[str, str]:
    return per_side(c, lambda side, t: f"{t:.2f} s, {human(c.extra[side + '_bytes_fetched'])} fetched")


def measure(ws: Workspace) -> Case:
    v2 = ws.images["v2"]
    f1, f2 = nix_files(ws, "v1"), nix_files(ws, "v2")
    changed = v2["layers"][3][1]
    c = Case("5", f"rebuild after one layer changed (1 of 4 layers, {human(changed)})", "same (default output)",
             "same (pullImage FOD)", "ours fetches only the changed layer; bytes fetched by each",
             metric="wall time of the second build, s", cells=cells)
    fetched: dict[str, list[dict[str, int]]] = {"ours": [], "peer": []}
    assert ws.reg is not None
    log_file = ws.reg.log_file

    def build(which: str, env: dict[str, str]) -> float:
        first, second = (f1.ours, f2.ours) if which == "ours" else (f1.peer, f2.peer)
        run(nix_build(first), env=env)
        mark = log_file.stat().st_size
        t = timed(nix_build(second), env=env)
        time.sleep(0.2)  # let the registry flush its access log
        fetched[which].append(bytes_served_since(log_file, mark))
        return t

    alternate_in_fresh_stores(ws, c, build)
    ours_bytes = statistics.median(x["total_bytes"] for x in fetched["ours"])
    peer_bytes = statistics.median(x["total_bytes"] for x in fetched["peer"])
    small = 1 * MiB  # config + manifests
    c.extra = {"ours_bytes_fetched": ours_bytes, "peer_bytes_fetched": peer_bytes, "changed_layer": changed,
               "image_size": v2["size"], "ours_detail": fetched["ours"][0], "peer_detail": fetched["peer"][0]}
    c.conclude(ours_bytes / peer_bytes if peer_bytes else None, "bytes fetched ours / peer",
               changed <= ours_bytes <= changed + small)
    c.note = f"bytes fetched: ours {human(ours_bytes)}, peer {human(peer_bytes)}"
    return c


UNIT = CaseUnit("5", measure, needs=frozenset({"v1", "v2"}), ready=nix_ready, skip_title="nix-build cases")
