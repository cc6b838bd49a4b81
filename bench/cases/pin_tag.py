"""Case 11: pin one tag (resolve it, fetch its manifest, no blob): docker2nix against `skopeo inspect --raw`.

Both make the same requests (the manifest by tag); docker2nix also renders the Nix expression (issue 13).
Target: ours at most 3 x the peer's wall time.
"""
from __future__ import annotations

from ..harness import Case
from ..workspace import Workspace
from .base import CaseUnit

TARGET = 3.0


def measure(ws: Workspace) -> Case:
    img = ws.images["many10"]
    c = Case("11", "pin one tag (resolve + manifest, no blob)", "docker2nix",
             "skopeo inspect --raw docker://...", f"ours <= {TARGET:.0f} x")
    ws.compare(c, ws.hocker("docker2nix", "--out", str(ws.out / "image.nix"), img["repo"], img["tag"]),
               ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ws.host}/{img['repo']}:{img['tag']}"])
    ratio = c.ours_value / c.peer_value
    c.conclude(ratio, "ours / peer", ratio <= TARGET)
    return c


UNIT = CaseUnit("11", measure, needs=frozenset({"many10"}))
