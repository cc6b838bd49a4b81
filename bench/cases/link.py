"""Cases A-D: cold Nix builds through an emulated link (20 ms each way, 100 Mbit/s shared, TLS, token auth):
what users feel, where the loopback cases only show start-up (issue 19).

Three ways to get an image into the Nix store, each in a fresh store, in one run, alternating (the order
rotates each round), medians:
 - ours: nix-build of docker2nix's output (one fixed-output derivation per blob, then compositeImage.sh);
 - pullImage: one fixed-output derivation running `skopeo copy ...@DIGEST docker-archive:$out` (nixpkgs'
   dockerTools.pullImage; nixpkgs is not available offline, so the FOD is written out as in cases 4 and 9);
 - nix2container-style: one fixed-output derivation per blob, /bin/sh running curl for a token and the blob.
Images: A 1 x 30 MiB, B 8 layers 95 MB, C 40 x 256 KiB; D is the update: the store holds B (built the same way,
untimed) and the image is B with its top layer replaced. Each row reports wall time, CPU (user + sys of nix-build
and every builder) and the bytes through the link. Targets (ours / pullImage): A, B <= 1.0; C <= 1.1; D <= 0.1.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..harness import Case, cpu_timed, human, log, median, rm, run
from ..linksite import LinkSite
from ..nix import nix_build, nix_env, nix_ready, package_python
from ..workspace import REPO, VENV, VENV_BIN, Workspace
from .base import CaseUnit

SIDES = ("ours", "pullImage", "n2c")
TARGETS = {"A": 1.0, "B": 1.0, "C": 1.1, "D": 0.1}

OURS = """
let
  fetchers = import {default_nix} {{ hocker = {venv}; python = {python}; sslCertFile = {ca}; }};
  f = import {expr};
  args = {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}
    // (if (builtins.functionArgs f) ? system then {{ system = builtins.currentSystem; }} else {{ }});
in f args
"""

FOD = """(builtins.derivation {{
    name = {name}; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" {script} ];
    outputHashMode = "flat"; outputHashAlgo = "sha256"; outputHash = "{hash}"; preferLocalBuild = true;
  }})"""


def nix_string(text: str) -> str:
    """A Nix string literal (JSON's escapes, and `${` kept literal)."""
    return json.dumps(text).replace("${", "\\${")


def ours_file(ws: Workspace, site: LinkSite, key: str, d: Path) -> Path:
    img = site.images[key]
    expr = d / "image.nix"
    run([str(VENV_BIN / "docker2nix"), "-q", "--registry", f"https://{site.host}", "--ca-file", site.ca_file,
         "--out", str(expr), img["repo"], img["tag"]], env=ws.env)
    wrapper = d / "ours.nix"
    wrapper.write_text(OURS.format(default_nix=REPO / "nix" / "default.nix", venv=json.dumps(str(VENV)),
                                   python=json.dumps(str(package_python(ws))), ca=json.dumps(site.ca_file),
                                   expr=expr))
    return wrapper


def archive_name(tag: str) -> str:
    """The store name of pullImage's output (its FOD's name); the nix-prefetch-docker way (link_prefetch.py)
    names its archive so, for `nix-store --add-fixed` to make exactly that output valid."""
    return f"docker-image-{tag}.tar"


def pull_image_file(ws: Workspace, site: LinkSite, key: str, d: Path) -> Path:
    """pullImage's FOD; its hash from one skopeo copy straight to the registry (not through the link)."""
    img = site.images[key]
    assert site.registry is not None
    name_tag = f"{img['repo']}:{img['tag']}"
    probe = d / "probe.tar"
    direct = f"docker://{site.registry.host}/{img['repo']}@{img['manifest_digest']}"
    run(["skopeo", "--insecure-policy", "--tmpdir", str(d), "copy", "--quiet", "--src-cert-dir", site.cert_dir,
         direct, f"docker-archive:{probe}:{name_tag}"], env=ws.env)
    nix_hash = run(["nix-hash", "--flat", "--base32", "--type", "sha256", str(probe)]).stdout.decode().strip()
    rm(probe)
    source = f"docker://{site.host}/{img['repo']}@{img['manifest_digest']}"
    script = (f'exec /usr/bin/skopeo --insecure-policy --tmpdir="$TMPDIR" copy --quiet --src-cert-dir '
              f'{site.cert_dir} "{source}" "docker-archive:$out:{name_tag}"')
    path = d / "pullimage.nix"
    path.write_text(FOD.format(name=nix_string(archive_name(img["tag"])), script=nix_string(script),
                               hash=nix_hash) + "\n")
    return path


def n2c_file(site: LinkSite, key: str, d: Path) -> Path:
    """One FOD per blob (config and layers): curl asks the token server for an anonymous pull token, then
    curl fetches the blob with it (nix2container's fetcher, written out)."""
    img = site.images[key]
    repo = img["repo"]
    fods = []
    for digest in [img["config_digest"]] + [dg for dg, _n in img["layers"]]:
        hex_ = digest.split(":", 1)[1]
        script = (f't=$(/usr/bin/curl -sSf --cacert {site.ca_file} '
                  f'"{site.realm}?service={site.service}&scope=repository:{repo}:pull") || exit 1; '
                  f't=${{t#*\\"token\\": \\"}}; t=${{t%%\\"*}}; '
                  f'exec /usr/bin/curl -sSfL --cacert {site.ca_file} -H "Authorization: Bearer $t" -o "$out" '
                  f'"https://{site.host}/v2/{repo}/blobs/{digest}"')
        fods.append(FOD.format(name=nix_string(f"blob-{hex_}"), script=nix_string(script), hash=hex_))
    path = d / "n2c.nix"
    path.write_text("[\n  " + "\n  ".join(fods) + "\n]\n")
    return path


def files_for(ws: Workspace, site: LinkSite, key: str) -> dict[str, Path]:
    d = ws.work / "nix" / f"link-{key}"
    d.mkdir(parents=True, exist_ok=True)
    return {"ours": ours_file(ws, site, key, d), "pullImage": pull_image_file(ws, site, key, d),
            "n2c": n2c_file(site, key, d)}


def measure_image(ws: Workspace, site: LinkSite, key: str,
                  before: dict[str, Path] | None) -> dict[str, list[dict[str, float]]]:
    """Build image `key` each way, ws.repeat times, rotating the order; `before`: built first, untimed."""
    files = files_for(ws, site, key)
    samples: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    counter = itertools.count(1)
    for i in range(ws.repeat):
        order = SIDES[i % 3:] + SIDES[:i % 3]
        for side in order:
            root = ws.work / "nixroot" / f"link-{key}-{side}-{next(counter)}"
            env = nix_env(ws, root)
            env.pop("NIX_SSL_CERT_FILE", None)  # it would win over sslCertFile (the test CA) in our builders
            try:
                if before is not None:
                    run(nix_build(before[side]), env=env)
                site.link.reset()
                wall, cpu = cpu_timed(nix_build(files[side]), env=env)
                samples[side].append({"wall": wall, "cpu": cpu, "bytes": site.link.bytes_total,
                                      "connections": site.link.connections})
            finally:
                rm(root)
        log(f"  case {key} run {i + 1}/{ws.repeat}: " + "  ".join(
            f"{s} {samples[s][-1]['wall']:.2f}s/{samples[s][-1]['cpu']:.2f}s CPU/"
            f"{human(samples[s][-1]['bytes'])}" for s in SIDES))
    return samples


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: median([r[k] for r in rows]) or 0.0 for k in rows[0]}


def show(m: dict[str, Any]) -> str:
    return f"{m['wall']:.2f} s, {m['cpu']:.2f} s CPU, {human(m['bytes'])}"


def rows_for(key: str, title: str, samples: dict[str, list[dict[str, float]]]) -> list[Case]:
    """Row KEY: ours against pullImage (the target); row KEYn: ours against the nix2container-style FODs."""
    m = {side: medians(samples[side]) for side in SIDES}
    out = []
    for cid, peer, label in ((key, "pullImage", "pullImage's single skopeo FOD"),
                             (f"{key}n", "n2c", "nix2container-style FODs, curl per blob")):
        target = TARGETS[key] if peer == "pullImage" else None
        c = Case(cid, f"link: {title}", "nix-build of docker2nix output", label,
                 f"ours <= {target} x" if target is not None else "(for information)",
                 metric="wall time, CPU, bytes through the link",
                 cells=lambda c: (show(c.extra["ours"]), show(c.extra["peer"])))
        c.ours_samples = [r["wall"] for r in samples["ours"]]
        c.peer_samples = [r["wall"] for r in samples[peer]]
        c.ours_value, c.peer_value = m["ours"]["wall"], m[peer]["wall"]
        ratio = c.ours_value / c.peer_value
        c.conclude(ratio, "ours / peer, wall", None if target is None else ratio <= target)
        c.extra = {"ours": m["ours"], "peer": m[peer], "samples": {"ours": samples["ours"], "peer": samples[peer]}}
        c.note = (f"CPU ours / peer {m['ours']['cpu'] / m[peer]['cpu']:.2f}; "
                  f"connections through the link (median) ours {m['ours']['connections']:.0f}, "
                  f"peer {m[peer]['connections']:.0f}")
        out.append(c)
    return out


def case(key: str, title: Callable[[LinkSite], str], before: str | None = None) -> CaseUnit:
    def measure(ws: Workspace) -> list[Case]:
        site = ws.link_site
        assert site is not None
        prior = files_for(ws, site, before) if before else None
        return rows_for(key, title(site), measure_image(ws, site, key, prior))

    return CaseUnit(key, measure, needs=frozenset({"link"}), ready=nix_ready, skip_title=f"link case {key}")


def size_of(site: LinkSite, key: str) -> str:
    img = site.images[key]
    return f"{len(img['layers'])} layer(s), {human(img['size'])}"


UNITS = [
    case("A", lambda s: f"cold build, image A ({size_of(s, 'A')})"),
    case("B", lambda s: f"cold build, image B ({size_of(s, 'B')})"),
    case("C", lambda s: f"cold build, image C ({size_of(s, 'C')})"),
    case("D", lambda s: "update: image D (B with its top layer replaced), store holding B", before="B"),
]
