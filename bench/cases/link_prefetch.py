"""Cases Bp and Cp: prefetch + build through the emulated link, against the nix-prefetch-docker way (issue 19).

Both get images B and C into a fresh Nix store in steps run one after the other, timed each (the row is the sum):
 - ours: `docker2nix --prefetch --out FILE` (pins the tag, fetches every blob the file's fixed-output derivations
   need in one process, adds them with one `nix-store --add-fixed`), then nix-build of FILE (every FOD is valid,
   only compositeImage.sh runs);
 - the nix-prefetch-docker way: `skopeo copy docker://HOST/REPO@DIGEST docker-archive:FILE` through the link,
   `nix-store --add-fixed sha256 FILE` (FILE named as pullImage's FOD names its output), then nix-build of that
   pullImage-style FOD, which finds its output valid and builds nothing.
The same link and site as cases A-D (link.py): fresh stores, the order rotating each round, medians; wall time,
CPU (user + sys of every process of the step) and bytes through the link. Targets (ours / peer): C <= 0.3,
B <= 1.0. The peer is given the digest (no `skopeo inspect`); ours resolves the tag, as a user runs it.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from ..harness import Case, cpu_timed, human, log, rm
from ..linksite import LinkSite
from ..nix import nix_build, nix_env, nix_ready, package_python
from ..workspace import REPO, VENV, VENV_BIN, Workspace
from .base import CaseUnit
from .link import OURS, archive_name, medians, pull_image_file, show, size_of

SIDES = ("ours", "npd")
Steps = list[tuple[str, list[str]]]  # what one side runs, in order: (label, command)
TARGETS = {"B": 1.0, "C": 0.3}


def ours_steps(ws: Workspace, site: LinkSite, key: str, d: Path) -> Steps:
    """docker2nix --prefetch then nix-build of its output (through a wrapper with this checkout's fetchers)."""
    img = site.images[key]
    expr = d / "prefetch-image.nix"
    wrapper = d / "prefetch-ours.nix"
    wrapper.write_text(OURS.format(default_nix=REPO / "nix" / "default.nix", venv=json.dumps(str(VENV)),
                                   python=json.dumps(str(package_python(ws))), ca=json.dumps(site.ca_file),
                                   expr=expr))
    pin = [str(VENV_BIN / "docker2nix"), "-q", "--prefetch", "--registry", f"https://{site.host}",
           "--ca-file", site.ca_file, "--out", str(expr), img["repo"], img["tag"]]
    return [("prefetch", pin), ("build", nix_build(wrapper))]


def npd_steps(site: LinkSite, key: str, fod: Path, scratch: Path) -> Steps:
    """nix-prefetch-docker's steps: skopeo copy to an archive (through the link), add it, build the FOD.

    The archive is named as the FOD's output (`docker-image-TAG.tar`): a flat fixed-output path depends only on
    the name and the file's sha256, so `--add-fixed` makes exactly the FOD's output valid."""
    img = site.images[key]
    archive = scratch / archive_name(img["tag"])
    source = f"docker://{site.host}/{img['repo']}@{img['manifest_digest']}"
    copy = ["skopeo", "--insecure-policy", "--tmpdir", str(scratch), "copy", "--quiet", "--src-cert-dir",
            site.cert_dir, source, f"docker-archive:{archive}:{img['repo']}:{img['tag']}"]
    add = ["nix-store", "--add-fixed", "sha256", str(archive)]
    return [("copy", copy), ("add", add), ("build", nix_build(fod))]


def measure(ws: Workspace, site: LinkSite, key: str) -> dict[str, list[dict[str, float]]]:
    """Prefetch + build image `key` both ways, ws.repeat times, rotating the order, each in a fresh store."""
    d = ws.work / "nix" / f"link-prefetch-{key}"
    d.mkdir(parents=True, exist_ok=True)
    fod = pull_image_file(ws, site, key, d)
    ours = ours_steps(ws, site, key, d)
    samples: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    counter = itertools.count(1)
    for i in range(ws.repeat):
        for side in SIDES[i % 2:] + SIDES[:i % 2]:
            root = ws.work / "nixroot" / f"link-prefetch-{key}-{side}-{next(counter)}"
            env = nix_env(ws, root)
            env.pop("NIX_SSL_CERT_FILE", None)  # as in cases A-D: sslCertFile (the test CA) must win
            scratch = root / "scratch"
            scratch.mkdir(parents=True)
            steps = ours if side == "ours" else npd_steps(site, key, fod, scratch)
            try:
                site.link.reset()
                sample = {"wall": 0.0, "cpu": 0.0}
                for label, cmd in steps:  # one after the other, as `A && B`; each step's wall time is kept
                    wall, cpu = cpu_timed(cmd, env=env)
                    sample["wall"] += wall
                    sample["cpu"] += cpu
                    sample[f"{label}_wall"] = wall
                sample.update(bytes=site.link.bytes_total, connections=site.link.connections)
                samples[side].append(sample)
            finally:
                rm(root)
        log(f"  case {key}p run {i + 1}/{ws.repeat}: " + "  ".join(
            f"{s} {samples[s][-1]['wall']:.2f}s/{samples[s][-1]['cpu']:.2f}s CPU/"
            f"{human(samples[s][-1]['bytes'])}" for s in SIDES))
    return samples


def steps_text(m: dict[str, float]) -> str:
    return " + ".join(f"{k[:-5]} {v:.2f} s" for k, v in m.items() if k.endswith("_wall"))


def row(key: str, title: str, samples: dict[str, list[dict[str, float]]]) -> Case:
    m = {side: medians(samples[side]) for side in SIDES}
    target = TARGETS[key]
    c = Case(f"{key}p", f"link: {title}", "docker2nix --prefetch, then nix-build",
             "nix-prefetch-docker's way: skopeo copy to an archive, nix-store --add-fixed, nix-build of the FOD",
             f"ours <= {target} x", metric="wall time, CPU, bytes through the link",
             cells=lambda c: (show(c.extra["ours"]), show(c.extra["peer"])))
    c.ours_samples = [r["wall"] for r in samples["ours"]]
    c.peer_samples = [r["wall"] for r in samples["npd"]]
    c.ours_value, c.peer_value = m["ours"]["wall"], m["npd"]["wall"]
    ratio = c.ours_value / c.peer_value
    c.conclude(ratio, "ours / peer, wall", ratio <= target)
    c.extra = {"ours": m["ours"], "peer": m["npd"], "samples": {"ours": samples["ours"], "peer": samples["npd"]}}
    c.note = (f"CPU ours / peer {m['ours']['cpu'] / m['npd']['cpu']:.2f}; steps (median wall): ours "
              f"{steps_text(m['ours'])}, peer {steps_text(m['npd'])}; connections through the link (median) "
              f"ours {m['ours']['connections']:.0f}, peer {m['npd']['connections']:.0f}")
    return c


def case(key: str) -> CaseUnit:
    def run_case(ws: Workspace) -> list[Case]:
        site = ws.link_site
        assert site is not None
        return [row(key, f"prefetch + build, image {key} ({size_of(site, key)})", measure(ws, site, key))]

    return CaseUnit(f"{key}p", run_case, needs=frozenset({"link"}), ready=nix_ready,
                    skip_title=f"link case {key}p")


UNITS = [case("C"), case("B")]
