"""Cases 9 and 9b: one fixed-output derivation per layer, against one for the whole image (issue 13).

A cold `nix-build` (empty store) of docker2nix's output for an image of many small layers (256 KiB each: the
builders' start-up dominates, not the bytes) against one fixed-output derivation running `skopeo copy` to a
docker-archive (pullImage's method). 9: 40 layers, target ours <= 2.0 x; 9b: 10 layers, target ours <= 1.0 x.

For scale, each case also builds the floor of the one-FOD-per-layer design: the same layers as fixed-output
derivations that run `curl -o $out` (no verification, no image), in fresh stores, timed the same way.
"""
from __future__ import annotations

from pathlib import Path

from ..harness import Case, median, rm, timed
from ..nix import NixFiles, alternate_in_fresh_stores, nix_build, nix_env, nix_files, nix_ready
from ..workspace import Workspace
from .base import CaseUnit

# (case id, image key in seed.py, layers, target ratio ours / peer)
VARIANTS: tuple[tuple[str, str, int, float], ...] = (("9", "many40", 40, 2.0), ("9b", "many10", 10, 1.0))

CURL_FOD = """(builtins.derivation {{
    name = "curl-{hex}"; system = builtins.currentSystem; builder = "/bin/sh";
    args = [ "-c" "exec /usr/bin/curl -sSf -o $out http://{host}/v2/{repo}/blobs/sha256:{hex}" ];
    outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "{hex}"; preferLocalBuild = true;
  }})"""


def curl_floor(ws: Workspace, key: str) -> Path:
    """A Nix file of one `curl -o` fixed-output derivation per layer of image `key`."""
    img = ws.images[key]
    fods = [CURL_FOD.format(hex=d.split(":", 1)[1], host=ws.host, repo=img["repo"]) for d, _n in img["layers"]]
    path = ws.work / "nix" / key / "curl.nix"
    path.write_text("[\n  " + "\n  ".join(fods) + "\n]\n")
    return path


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
        floor = []
        for i in range(ws.repeat):
            root = ws.work / "nixroot" / f"{cid}-curl-{i}"
            try:
                floor.append(timed(nix_build(curl_floor(ws, key)), env=nix_env(ws, root)))
            finally:
                rm(root)
        c.extra = {"layers": n, "ours_per_layer_s": c.ours_value / n, "curl_fods_s": median(floor),
                   "curl_fods_samples": floor}
        c.note = f"floor of one FOD per layer ({n} FODs running curl -o, same Nix setup): {median(floor):.3f} s"
        cases.append(c)
    return cases


UNIT = CaseUnit("9", measure, needs=frozenset({"many40", "many10"}), ready=nix_ready,
                skip_title="nix-build of many small layers")
