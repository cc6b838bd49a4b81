"""Case 2: one large blob to a file: hocker-layer (digest verified, fsynced) against `curl -o` (neither).

Target: ours reaches at least 0.9 x curl's throughput.
"""
from __future__ import annotations

from ..harness import Case, MiB, human, per_side
from ..seed import BLOB_REPO
from ..workspace import Workspace
from .base import CaseUnit


def cells(c: Case) -> tuple[str, str]:
    return per_side(c, lambda side, t: f"{t:.3f} s ({c.extra[side + '_MBps']:.0f} MiB/s)")


def measure(ws: Workspace) -> Case:
    digest, size = ws.blobs["throughput"]
    c = Case("2", f"one {human(size)} blob to a file, verified", "hocker-layer", "curl -o (no verification)",
             "ours >= 0.9 x curl's throughput", metric="wall time, s (throughput in extra)", cells=cells)
    ws.compare(c, ws.hocker("hocker-layer", "--layer", digest, "--out", str(ws.out / "ours.bin"), BLOB_REPO, "x"),
               ["curl", "-sS", "-f", "-o", str(ws.out / "peer.bin"),
                f"http://{ws.host}/v2/{BLOB_REPO}/blobs/{digest}"])
    c.extra = {"size": size, "ours_MBps": size / MiB / c.ours_value, "peer_MBps": size / MiB / c.peer_value}
    ratio = c.peer_value / c.ours_value
    c.conclude(ratio, "ours / curl throughput", ratio >= 0.9)
    return c


UNIT = CaseUnit("2", measure, needs=frozenset({"throughput"}))
