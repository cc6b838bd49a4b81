"""Cases 9 and 9b: one fixed-output derivation per layer, against one for the whole image (issue 13).

A cold `nix-build` (empty store) of docker2nix's output for an image of many small layers (256 KiB each: the
builders' start-up dominates, not the bytes) against one fixed-output derivation running `skopeo copy` to a
docker-archive (pullImage's method). 9: 40 layers, target ours <= 2.0 x; 9b: 10 layers, target ours <= 1.0 x.
"""
from __future__ import annotations

from ..harness import Case, timed
from ..nix import NixFiles, alternate_in_fresh_stores, nix_build, nix_files, nix_ready
from ..workspace import Workspace
from .base import CaseUnit

# (case id, image key in seed.py, layers, target ratio ours / peer)
VARIANTS: tuple[tuple[str, str, int, float], ...] = (("9", "many40", 40, 2.0), ("9b", "many10", 10, 1.0))


def measure(ws: Workspace) -> list[Case]:
    cases = []
    for cid, key, n, target in VARIANTS:
        files = nix_files(ws, key)
        c = Case(cid, f"nix-build from an empty store, {n} layers x 256 KiB (one FOD per layer)",
                 "nix-build of docker2nix output", "nix-build of a FOD running skopeo copy to docker-archive "
                 "(pullImage's method)", f"ours <= {target:.1f} x")

        def build(which: str, env: dict[str, str], files: NixFiles = files) -> float:
            return timed(nix_build(files.ours if which == "ours" else files.peer), env=env)

        alternate_in_fresh_stores(ws, c, build)
        ratio = c.ours_value / c.peer_value
        c.conclude(ratio, "ours / peer", ratio <= target)
        c.extra = {"layers": n, "ours_per_layer_s": c.ours_value / n}
        cases.append(c)
    return cases


UNIT = CaseUnit("9", measure, needs=frozenset({"many40", "many10"}), ready=nix_ready,
                skip_title="nix-build of many small layers")
