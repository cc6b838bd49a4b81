"""Side-by-side benchmark of hocker-fetch against skopeo, curl and nix-prefetch-docker's method (issue 4).

Starts its own reference registry on 127.0.0.1, seeds deterministic incompressible images (seeded PRNG bytes
in uncompressed tar layers, uploaded through the registry API, so nothing is spent compressing random data),
runs every case several times alternating ours and the peer's, prints a table of medians and ratios and
writes it as JSON. The machine is shared and noisy: only ratios measured in one run mean anything.

    bash bench/run                 # full sizes, 5 repeats (writes bench/results.json)
    bash bench/run --quick         # small sizes, 2 repeats: a smoke test (writes bench/results-quick.json)
    bash bench/run --repeat 5 --cases 1,2,6

Without the wrapper, from the repository root: `.venv/bin/python -m bench.run --quick`.

Cases (see issue 4 and bench/cases/): 1 hocker-image vs skopeo copy to a docker-archive; 2 hocker-layer vs
curl -o; 3 docker2nix vs skopeo copy + nix-hash; 4 nix-build of docker2nix output vs a skopeo FOD (pullImage),
empty store; 5 rebuild after one layer changed (bytes fetched); 6 peak RSS of hocker-layer; 7 cold start
(--help); 8 hocker-lock check/update of a 50-image lock vs 50 skopeo inspects; 9/9b nix-build of 40/10
small layers vs the skopeo FOD; 10 one small layer vs curl; 11 pin one tag vs skopeo inspect (issue 13); 12 CPU
of one blob builder as the Nix package runs it; A-D cold builds and an update through an emulated link (40 ms round
trip, 100 Mbit/s, TLS, token auth: link.py, linksite.py) against pullImage's FOD and nix2container-style FODs
(issue 19); Cp, Bp prefetch + build of C and B through the same link (docker2nix --prefetch, then nix-build)
against the nix-prefetch-docker way (skopeo copy to an archive, nix-store --add-fixed, the FOD build). The
timing is in harness.py, the registry and its content in seed.py, the Nix setup in nix.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path

from .cases import CASES, CaseUnit
from .harness import Case, CommandFailed, log, skipped
from .report import machine, summary, table
from .workspace import REPO, Workspace


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test, minutes -> seconds)")
    p.add_argument("--repeat", type=int, default=None, help="runs per case and tool (default 5; 2 with --quick)")
    p.add_argument("--cases", default=",".join(u.id for u in CASES),
                   help="comma-separated case numbers (default all)")
    p.add_argument("--nix-max-jobs", default="auto",
                   help="Nix max-jobs for cases 4-5 (default auto, NixOS's default; Nix's built-in default is 1)")
    p.add_argument("--start-runs", type=int, default=10, help="runs per script for the cold-start case")
    p.add_argument("--json", metavar="PATH", help="where to write the results (default bench/results.json, "
                                                  "bench/results-quick.json with --quick)")
    p.add_argument("--workdir", default=None, help="parent of the scratch directory (default $TMPDIR or /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (registry storage, outputs)")
    args = p.parse_args(argv)
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    if args.repeat is None:
        args.repeat = 2 if args.quick else 5
    if args.repeat < 1:
        p.error("--repeat must be at least 1")
    for tool in ("skopeo", "curl", "/usr/bin/time", "/usr/bin/docker-registry"):
        if shutil.which(tool) is None:
            p.error(f"{tool} is missing (bench/run installs it)")
    return args


def run_cases(ws: Workspace, units: list[CaseUnit]) -> list[Case]:
    """Measure each case in turn; one that cannot run here, or whose command fails, becomes a SKIPPED row."""
    results: list[Case] = []
    for unit in units:
        why = unit.ready()
        if why:
            results.append(skipped(unit.id, unit.skip_title, why))
            continue
        log(f"case {unit.id} ...")
        try:
            result = unit.measure(ws)
        except CommandFailed as exc:
            results.append(skipped(unit.id, f"case {unit.id}", f"a command failed: {exc}"))
            log(f"case {unit.id} FAILED: {exc}")
            continue
        results.extend(result if isinstance(result, list) else [result])
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    units = [u for u in CASES if u.id in args.cases]
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        log("WARNING: /dev/null is not a character device (something replaced it; as root: "
            "rm /dev/null && mknod -m 666 /dev/null c 1 3)")
    ws = Workspace(args)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.perf_counter()
    try:
        ws.start(set().union(*(u.needs for u in units)))
        cases = run_cases(ws, units)
    finally:
        ws.stop()
    info = machine()
    text = table(cases)
    mode = "quick" if args.quick else "full"
    print(f"hocker-fetch benchmark, {started}, {mode} sizes, {args.repeat} runs per tool (medians), "
          f"nix max-jobs {args.nix_max_jobs}; machine: {info['nproc']} cores, {info['mem_GiB']} GiB, {info['cpu']}")
    print()
    print(text)
    for paragraph in summary(cases):
        print(f"\n{paragraph}")
    out = Path(args.json) if args.json else REPO / "bench" / ("results-quick.json" if args.quick else "results.json")
    out.write_text(json.dumps({"date": started, "mode": mode, "repeat": args.repeat,
                               "nix_max_jobs": args.nix_max_jobs,
                               "duration_s": round(time.perf_counter() - t0, 1), "machine": info,
                               "sizes": dataclasses.asdict(ws.sizes), "cases": [c.as_json() for c in cases],
                               "table_markdown": text}, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
