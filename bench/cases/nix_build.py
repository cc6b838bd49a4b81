"""Cases 4 and 4b: build the pinned image with Nix from an empty store: docker2nix's output against one
fixed-output derivation running `skopeo copy` to a docker-archive (pullImage's method).

4 builds our default output (compositeImage.sh, layers as FODs); target: ours takes at most 1.0 x the peer's
time. 4b builds our `.dockerArchive` attribute, the same product as the peer's, for information (no target).
"""
from __future__ import annotations

from ..harness import Case, human, timed
from ..nix import alternate_in_fresh_stores, nix_build, nix_files, nix_ready
from ..workspace import Workspace
from .base import CaseUnit

VARIANTS: tuple[tuple[str | None, str], ...] = (
    (None, "default output (compositeImage.sh; layers as FODs)"),
    ("dockerArchive", ".dockerArchive (a docker-archive file, like pullImage's output)"),
)


def measure(ws: Workspace) -> list[Case]:
    img = ws.images["v1"]
    files = nix_files(ws, "v1")
    cases = []
    for attr, label in VARIANTS:
        c = Case("4" if attr is None else "4b",
                 f"build the pinned {human(img['size'])} image with Nix from an empty store: {label}",
                 "nix-build of docker2nix output" + (f" -A {attr}" if attr else ""),
                 "nix-build of a FOD running skopeo copy to docker-archive (pullImage's method)",
                 "ours <= 1.0 x" if attr is None else "(for information: same product as the peer)")

        def build(which: str, env: dict[str, str], attr: str | None = attr) -> float:
            cmd = nix_build(files.ours, attr) if which == "ours" else nix_build(files.peer)
            return timed(cmd, env=env)

        alternate_in_fresh_stores(ws, c, build)
        ratio = c.ours_value / c.peer_value
        c.conclude(ratio, "ours / peer", ratio <= 1.0 if attr is None else None)
        cases.append(c)
    return cases


UNIT = CaseUnit("4", measure, needs=frozenset({"v1"}), ready=nix_ready, skip_title="nix-build cases")
