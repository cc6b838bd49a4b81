"""Case 1: a whole image to a docker-archive: hocker-image against `skopeo copy docker://... docker-archive:`.

Target: ours takes at most 0.8 x skopeo's wall time.
"""
from __future__ import annotations

from ..harness import Case, human
from ..workspace import Workspace
from .base import CaseUnit


def measure(ws: Workspace) -> Case:
    img = ws.images["v1"]
    c = Case("1", f"whole image to a docker-archive, {len(img['layers'])} layers x {human(ws.sizes.layer)}",
             "hocker-image", "skopeo copy docker://... docker-archive:", "ours <= 0.8 x skopeo's wall time")
    ref = f"{img['repo']}:{img['tag']}"
    ws.compare(c, ws.hocker("hocker-image", "--out", str(ws.out / "ours.tar"), img["repo"], img["tag"]),
               ws.skopeo(f"docker://{ws.host}/{ref}", f"docker-archive:{ws.out / 'peer.tar'}:{ref}"))
    ratio = c.ours_value / c.peer_value
    c.conclude(ratio, "ours / skopeo", ratio <= 0.8)
    return c


UNIT = CaseUnit("1", measure, needs=frozenset({"v1"}))
