"""Case 3: pin an image for Nix: docker2nix against nix-prefetch-docker's core (skopeo copy + nix-hash).

docker2nix reads the manifest only; the peer downloads the whole image to hash it.
Target: ours at least 100 x faster.
"""
from __future__ import annotations

from ..harness import Case, human
from ..workspace import VENV_BIN, Workspace
from .base import CaseUnit


def docker2nix_ready() -> str | None:
    return None if (VENV_BIN / "docker2nix").exists() else ".venv/bin/docker2nix does not exist yet"


def measure(ws: Workspace) -> Case:
    img = ws.images["v1"]
    c = Case("3", f"pin an image of {human(img['size'])} for Nix", "docker2nix",
             "skopeo copy to docker-archive + nix-hash --flat --base32 (nix-prefetch-docker's core)",
             "ours >= 100 x faster")
    ref = f"{img['repo']}:{img['tag']}"
    archive = ws.out / "peer.tar"
    copy = " ".join(ws.skopeo(f"docker://{ws.host}/{ref}", f"docker-archive:{archive}:{ref}"))
    ws.compare(c, ws.hocker("docker2nix", "--out", str(ws.out / "image.nix"), img["repo"], img["tag"]),
               ["sh", "-c", f"{copy} && nix-hash --flat --base32 --type sha256 {archive}"])
    ratio = c.peer_value / c.ours_value
    c.conclude(ratio, "peer / ours (speed-up)", ratio >= 100)
    c.note = ("the peer here omits nix-prefetch-docker's `skopeo inspect` and `nix-store --add-fixed`, "
              "so it is a lower bound of the real tool's time")
    return c


UNIT = CaseUnit("3", measure, needs=frozenset({"v1"}), ready=docker2nix_ready, skip_title="pin an image for Nix")
