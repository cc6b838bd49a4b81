"""Case 10: one small layer (256 KiB) to a file, whole process: hocker-layer (verified, fsynced) against `curl -o`.

What one fixed-output derivation per layer costs beyond the bytes: the interpreter and its imports (issue 13).
Target: ours under 0.10 s wall time. The note adds the same fetch as a fixed-output builder runs it.
"""
from __future__ import annotations

from ..harness import Case, median, timed
from ..nix import package_python
from ..seed import BLOB_REPO
from ..workspace import Workspace
from .base import CaseUnit

TARGET_S = 0.10


def measure(ws: Workspace) -> Case:
    digest, _size = ws.blobs["small"]
    c = Case("10", "one small layer (256 KiB) to a file, whole process", "hocker-layer",
             "curl -o (no verification)", f"ours <= {TARGET_S:.2f} s wall time")
    ws.compare(c, ws.hocker("hocker-layer", "--layer", digest, "--out", str(ws.out / "ours.bin"), BLOB_REPO, "x"),
               ["curl", "-sS", "-f", "-o", str(ws.out / "peer.bin"),
                f"http://{ws.host}/v2/{BLOB_REPO}/blobs/{digest}"])
    c.conclude(c.ours_value, "ours, s", c.ours_value <= TARGET_S)
    # what a fixed-output builder runs: the package's interpreter wrapper on the lean entry point (no site)
    builder = [str(package_python(ws)), "-m", "hocker_fetch.fetchblob", *ws.hocker("hocker-layer")[1:],
               "--layer", digest, "--out", str(ws.out / "builder.bin"), BLOB_REPO, "x"]
    as_builder = median([timed(builder, env=ws.env, after=ws.clean_out) for _ in range(ws.repeat)])
    c.extra = {"builder_s": as_builder}
    c.note = (f"ours / curl: {c.ours_value / c.peer_value:.1f} x; as the Nix builder runs it "
              f"(python -S -m hocker_fetch.fetchblob): {as_builder:.3f} s")
    return c


UNIT = CaseUnit("10", measure, needs=frozenset({"small"}))
