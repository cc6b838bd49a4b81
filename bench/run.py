"""Side-by-side benchmark of hocker-fetch against skopeo, curl and nix-prefetch-docker's method (issue 4).

Starts its own reference registry on 127.0.0.1, seeds deterministic incompressible images (seeded PRNG bytes
in uncompressed tar layers, uploaded through the registry API, so nothing is spent compressing random data),
runs every case several times alternating ours and the peer's, prints a table of medians and ratios and
writes it as JSON. The machine is shared and noisy: only ratios measured in one run mean anything.

    bash bench/run                 # full sizes, 5 repeats (writes bench/results.json)
    bash bench/run --quick         # small sizes, 2 repeats: a smoke test (writes bench/results-quick.json)
    bash bench/run --repeat 5 --cases 1,2,6

Cases (see issue 4): 1 hocker-image vs skopeo copy to a docker-archive; 2 hocker-layer vs curl -o;
3 docker2nix vs skopeo copy + nix-hash; 4 nix-build of docker2nix output vs a skopeo FOD (pullImage), empty
store; 5 rebuild after one layer changed (bytes fetched); 6 peak RSS of hocker-layer; 7 cold start (--help).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .harness import (
    Case,
    CommandFailed,
    MiB,
    alternate,
    human,
    log,
    median,
    rm,
    run,
    timed,
)
from .seed import Sizes, seed, start_registry

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
VENV = REPO / ".venv"
SCRIPTS = ("hocker-manifest", "hocker-config", "hocker-layer", "hocker-image", "docker2nix")
ACCESS_LINE = re.compile(r'"(GET|HEAD) (\S+) HTTP/[\d.]+" (\d{3}) (\d+)')


# ---------------------------------------------------------------------------------------------------------
# the benchmark


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.sizes = Sizes.quick() if args.quick else Sizes.full()
        self.repeat = args.repeat
        self.work = Path(tempfile.mkdtemp(prefix="hocker-bench-", dir=args.workdir))
        self.out = self.work / "out"
        self.out.mkdir()
        self.reg = None
        self.images: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, tuple[str, int]] = {}
        self.cases: list[Case] = []
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("DOCKER_USER", "DOCKER_PASS", "DOCKER_TOKEN", "REGISTRY_AUTH_FILE", "NIX_PATH")}
        self.env["HOME"] = str(self.work / "home")
        (self.work / "home").mkdir()
        self.policy = self.work / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))

    # -- setup -----------------------------------------------------------------------------------------
    def start(self) -> None:
        self.reg = start_registry(self.work / "registry")
        wanted = set(self.args.cases)
        needs: set[str] = set()
        if wanted & {"1", "3", "4", "5"}:
            needs.add("v1")
        if "5" in wanted:
            needs.add("v2")
        if "2" in wanted:
            needs.add("throughput")
        if "6" in wanted:
            needs |= {"rss_small", "rss_large"}
        self.images, self.blobs = seed(self.reg, self.work, self.sizes, needs)

    def stop(self) -> None:
        if self.reg is not None:
            self.reg.stop()
        if self.args.keep:
            log(f"kept {self.work}")
        else:
            rm(self.work)

    @property
    def host(self) -> str:
        assert self.reg is not None
        return self.reg.host

    def hocker(self, name: str) -> str:
        return str(VENV_BIN / name)

    def skopeo(self, *args: str) -> list[str]:
        return ["skopeo", "--insecure-policy", "--tmpdir", str(self.work), "copy", "--quiet",
                "--src-tls-verify=false", *args]

    def clean_out(self) -> None:
        for p in self.out.iterdir():
            rm(p)

    def registry_log_mark(self) -> int:
        assert self.reg is not None
        return self.reg.log_file.stat().st_size

    def bytes_served_since(self, mark: int) -> dict[str, int]:
        """Bytes the registry sent for blob and manifest GETs since `mark` (from its access log)."""
        assert self.reg is not None
        with open(self.reg.log_file, "rb") as f:
            f.seek(mark)
            text = f.read().decode(errors="replace")
        out = {"blob_bytes": 0, "manifest_bytes": 0, "blob_gets": 0, "requests": 0}
        for m in ACCESS_LINE.finditer(text):
            method, uri, status, n = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            out["requests"] += 1
            if method != "GET" or status not in (200, 206):
                continue
            if "/blobs/" in uri:
                out["blob_bytes"] += n
                out["blob_gets"] += 1
            elif "/manifests/" in uri:
                out["manifest_bytes"] += n
        out["total_bytes"] = out["blob_bytes"] + out["manifest_bytes"]
        return out

    # -- case 1 ----------------------------------------------------------------------------------------
    def case_image(self) -> Case:
        img = self.images["v1"]
        n = len(img["layers"])
        c = Case("1", f"whole image to a docker-archive, {n} layers x {human(self.sizes.layer)}",
                 "hocker-image", "skopeo copy docker://... docker-archive:", "ours <= 0.8 x skopeo's wall time")
        ref = f"{img['repo']}:{img['tag']}"
        ours_cmd = [self.hocker("hocker-image"), "-q", "--registry", f"http://{self.host}", "--out",
                    str(self.out / "ours.tar"), img["repo"], img["tag"]]
        peer_cmd = self.skopeo(f"docker://{self.host}/{ref}", f"docker-archive:{self.out / 'peer.tar'}:{ref}")
        run(ours_cmd, env=self.env); run(peer_cmd, env=self.env); self.clean_out()  # warm-up
        alternate(self.repeat, lambda: timed(ours_cmd, env=self.env, after=self.clean_out),
                  lambda: timed(peer_cmd, env=self.env, after=self.clean_out), c)
        c.ratio = c.ours_value / c.peer_value
        c.ratio_label = "ours / skopeo"
        c.met = c.ratio <= 0.8
        return c

    # -- case 2 ----------------------------------------------------------------------------------------
    def case_throughput(self) -> Case:
        digest, size = self.blobs["throughput"]
        c = Case("2", f"one {human(size)} blob to a file, verified", "hocker-layer", "curl -o (no verification)",
                 "ours >= 0.9 x curl's throughput", metric="wall time, s (throughput in extra)")
        ours_cmd = [self.hocker("hocker-layer"), "-q", "--registry", f"http://{self.host}", "--layer", digest,
                    "--out", str(self.out / "ours.bin"), "bench/blobs", "x"]
        peer_cmd = ["curl", "-sS", "-f", "-o", str(self.out / "peer.bin"),
                    f"http://{self.host}/v2/bench/blobs/blobs/{digest}"]
        run(ours_cmd, env=self.env); run(peer_cmd, env=self.env); self.clean_out()
        alternate(self.repeat, lambda: timed(ours_cmd, env=self.env, after=self.clean_out),
                  lambda: timed(peer_cmd, env=self.env, after=self.clean_out), c)
        c.extra = {"size": size, "ours_MBps": size / MiB / c.ours_value, "peer_MBps": size / MiB / c.peer_value}
        c.ratio = c.peer_value / c.ours_value
        c.ratio_label = "ours / curl throughput"
        c.met = c.ratio >= 0.9
        return c

    # -- case 3 ----------------------------------------------------------------------------------------
    def case_pin(self) -> Case:
        img = self.images["v1"]
        c = Case("3", f"pin an image of {human(img['size'])} for Nix", "docker2nix",
                 "skopeo copy to docker-archive + nix-hash --flat --base32 (nix-prefetch-docker's core)",
                 "ours >= 100 x faster")
        ref = f"{img['repo']}:{img['tag']}"
        ours_cmd = [self.hocker("docker2nix"), "-q", "--registry", f"http://{self.host}", "--out",
                    str(self.out / "image.nix"), img["repo"], img["tag"]]
        archive = self.out / "peer.tar"
        peer_script = (f"{' '.join(self.skopeo(f'docker://{self.host}/{ref}', f'docker-archive:{archive}:{ref}'))}"
                       f" && nix-hash --flat --base32 --type sha256 {archive}")
        peer_cmd = ["sh", "-c", peer_script]
        run(ours_cmd, env=self.env); run(peer_cmd, env=self.env); self.clean_out()
        alternate(self.repeat, lambda: timed(ours_cmd, env=self.env, after=self.clean_out),
                  lambda: timed(peer_cmd, env=self.env, after=self.clean_out), c)
        c.ratio = c.peer_value / c.ours_value
        c.ratio_label = "peer / ours (speed-up)"
        c.met = c.ratio >= 100
        c.note = ("the peer here omits nix-prefetch-docker's `skopeo inspect` and `nix-store --add-fixed`, "
                  "so it is a lower bound of the real tool's time")
        return c

    # -- Nix cases -------------------------------------------------------------------------------------
    def nix_ready(self) -> str | None:
        if shutil.which("nix-build") is None:
            return "nix-build is not installed"
        if not (REPO / "nix" / "default.nix").exists():
            return "nix/default.nix does not exist yet"
        if not (VENV_BIN / "docker2nix").exists():
            return ".venv/bin/docker2nix does not exist yet"
        return None

    def nix_env(self, root: Path) -> dict[str, str]:
        conf = root / "conf"
        conf.mkdir(parents=True, exist_ok=True)
        (conf / "nix.conf").write_text("build-users-group =\nsandbox = false\nsubstituters =\n"
                                       "experimental-features = nix-command\n"
                                       f"max-jobs = {self.args.nix_max_jobs}\n")
        env = dict(self.env)
        env.update(NIX_CONF_DIR=str(conf), NIX_STORE_DIR=str(root / "store"), NIX_STATE_DIR=str(root / "state"),
                   NIX_LOG_DIR=str(root / "log"))
        return env

    def nix_files(self, key: str) -> dict[str, Any]:
        """For image `key`: docker2nix's expression, a build wrapper, and the pullImage-style FOD with its hash."""
        img = self.images[key]
        d = self.work / "nix" / key
        d.mkdir(parents=True, exist_ok=True)
        expr = d / "image.nix"
        run([self.hocker("docker2nix"), "-q", "--registry", f"http://{self.host}", "--out", str(expr),
             img["repo"], img["tag"]], env=self.env)
        wrapper = d / "ours.nix"
        wrapper.write_text(f"""
let
  fetchers = import {REPO / 'nix' / 'default.nix'} {{ hocker = {json.dumps(str(VENV))}; }};
  f = import {expr};
  args = {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}
    // (if (builtins.functionArgs f) ? system then {{ system = builtins.currentSystem; }} else {{ }});
in f args
""")
        # pullImage's method: one fixed-output derivation running skopeo copy to a docker-archive.
        name_tag = f"{img['repo']}:{img['tag']}"
        source = f"docker://{self.host}/{img['repo']}@{img['manifest_digest']}"
        probe = self.work / "probe.tar"
        run(self.skopeo(source, f"docker-archive:{probe}:{name_tag}"), env=self.env)
        nix_hash = run(["nix-hash", "--flat", "--base32", "--type", "sha256", str(probe)]).stdout.decode().strip()
        rm(probe)
        script = ('exec /usr/bin/skopeo --insecure-policy --tmpdir="$TMPDIR" copy --quiet --src-tls-verify=false '
                  f'"{source}" "docker-archive:$out:{name_tag}"')
        peer = d / "peer.nix"
        peer.write_text(f"""
builtins.derivation {{
  name = "docker-image-bench-img-{img['tag']}.tar";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" {json.dumps(script)} ];
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = "{nix_hash}";
  preferLocalBuild = true;
}}
""")
        return {"expr": expr, "ours": wrapper, "peer": peer, "hash": nix_hash}

    def nix_build(self, root: Path, file: Path, attr: str | None = None) -> list[str]:
        cmd = ["nix-build", str(file), "--no-out-link"] + (["-A", attr] if attr else [])
        return cmd

    def case_nix_build(self) -> list[Case]:
        img = self.images["v1"]
        files = self.nix_files("v1")
        cases = []
        for attr, label in ((None, "default output (compositeImage.sh; layers as FODs)"),
                            ("dockerArchive", ".dockerArchive (a docker-archive file, like pullImage's output)")):
            c = Case("4" if attr is None else "4b",
                     f"build the pinned {human(img['size'])} image with Nix from an empty store: {label}",
                     "nix-build of docker2nix output" + (f" -A {attr}" if attr else ""),
                     "nix-build of a FOD running skopeo copy to docker-archive (pullImage's method)",
                     "ours <= 1.0 x" if attr is None else "(for information: same product as the peer)")
            counter = [0]

            def one(which: str) -> float:
                counter[0] += 1
                root = self.work / "nixroot" / f"{c.id}-{which}-{counter[0]}"
                env = self.nix_env(root)
                file = files["ours"] if which == "ours" else files["peer"]
                cmd = self.nix_build(root, file, attr if which == "ours" else None)
                try:
                    return timed(cmd, env=env)
                finally:
                    rm(root)

            alternate(self.repeat, lambda: one("ours"), lambda: one("peer"), c)
            c.ratio = c.ours_value / c.peer_value
            c.ratio_label = "ours / peer"
            c.met = c.ratio <= 1.0 if attr is None else None
            cases.append(c)
        return cases

    def case_rebuild(self) -> Case:
        v2 = self.images["v2"]
        f1, f2 = self.nix_files("v1"), self.nix_files("v2")
        changed = v2["layers"][3][1]
        c = Case("5", f"rebuild after one layer changed (1 of 4 layers, {human(changed)})", "same (default output)",
                 "same (pullImage FOD)", "ours fetches only the changed layer; bytes fetched by each",
                 metric="wall time of the second build, s")
        fetched: dict[str, list[dict[str, int]]] = {"ours": [], "peer": []}
        counter = [0]

        def one(which: str) -> float:
            counter[0] += 1
            root = self.work / "nixroot" / f"5-{which}-{counter[0]}"
            env = self.nix_env(root)
            key = "ours" if which == "ours" else "peer"
            try:
                run(["nix-build", str(f1[key]), "--no-out-link"], env=env)
                mark = self.registry_log_mark()
                t = timed(["nix-build", str(f2[key]), "--no-out-link"], env=env)
                time.sleep(0.2)  # let the registry flush its access log
                fetched[which].append(self.bytes_served_since(mark))
                return t
            finally:
                rm(root)

        alternate(self.repeat, lambda: one("ours"), lambda: one("peer"), c)
        ours_bytes = statistics.median(x["total_bytes"] for x in fetched["ours"])
        peer_bytes = statistics.median(x["total_bytes"] for x in fetched["peer"])
        small = 1 * MiB  # config + manifests
        c.extra = {"ours_bytes_fetched": ours_bytes, "peer_bytes_fetched": peer_bytes, "changed_layer": changed,
                   "image_size": v2["size"], "ours_detail": fetched["ours"][0], "peer_detail": fetched["peer"][0]}
        c.ratio = ours_bytes / peer_bytes if peer_bytes else None
        c.ratio_label = "bytes fetched ours / peer"
        c.met = changed <= ours_bytes <= changed + small
        c.note = f"bytes fetched: ours {human(ours_bytes)}, peer {human(peer_bytes)}"
        return c

    # -- case 6 ----------------------------------------------------------------------------------------
    def case_rss(self) -> Case:
        c = Case("6", "peak memory (max RSS) of hocker-layer", "/usr/bin/time -v hocker-layer", "",
                 "both under 80 MB: memory does not grow with blob size", metric="max RSS, MiB")
        results = {}
        for key in ("rss_small", "rss_large"):
            digest, size = self.blobs[key]
            samples = []
            for _ in range(max(1, min(self.repeat, 3))):
                proc = run(["/usr/bin/time", "-v", self.hocker("hocker-layer"), "-q", "--registry",
                            f"http://{self.host}", "--layer", digest, "--out", str(self.out / "rss.bin"),
                            "bench/blobs", "x"], env=self.env)
                m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr.decode())
                samples.append(int(m.group(1)) / 1024 if m else float("nan"))
                self.clean_out()
            results[key] = {"size": size, "max_rss_MiB": max(samples), "samples": samples}
        c.ours_samples = [results["rss_small"]["max_rss_MiB"], results["rss_large"]["max_rss_MiB"]]
        c.ours_value = max(c.ours_samples)
        c.extra = results
        c.note = (f"{human(results['rss_small']['size'])}: {results['rss_small']['max_rss_MiB']:.1f} MiB; "
                  f"{human(results['rss_large']['size'])}: {results['rss_large']['max_rss_MiB']:.1f} MiB")
        c.ratio = results["rss_large"]["max_rss_MiB"] / results["rss_small"]["max_rss_MiB"]
        c.ratio_label = "large / small RSS"
        c.met = c.ours_value < 80
        return c

    # -- case 7 ----------------------------------------------------------------------------------------
    def case_cold_start(self) -> Case:
        c = Case("7", "cold start of each console script (--help)", "", "", "each under 0.25 s",
                 metric="median wall time, s")
        n = self.args.start_runs
        per: dict[str, float] = {}
        baseline = [timed([str(VENV_BIN / "python"), "-c", "pass"]) for _ in range(n)]
        for name in SCRIPTS:
            path = VENV_BIN / name
            if not path.exists():
                continue
            run([str(path), "--help"])  # warm the page cache / bytecode
            per[name] = median([timed([str(path), "--help"]) for _ in range(n)])
        c.extra = {"per_script": per, "python_baseline": median(baseline), "runs": n}
        c.ours_samples = list(per.values())
        c.ours_value = max(per.values())
        c.note = ", ".join(f"{k} {v:.3f}" for k, v in per.items()) + f" (bare venv python: {median(baseline):.3f})"
        c.ratio_label = "slowest script, s"
        c.ratio = c.ours_value
        c.met = c.ours_value < 0.25
        return c

    # -- driver ----------------------------------------------------------------------------------------
    def skipped(self, cid: str, title: str, reason: str) -> Case:
        c = Case(cid, title, "", "", "", note=f"SKIPPED: {reason}")
        return c

    def run_all(self) -> None:
        wanted = self.args.cases
        steps: list[tuple[str, Callable[[], Any]]] = [
            ("1", self.case_image), ("2", self.case_throughput), ("3", self.case_pin),
            ("4", self.case_nix_build), ("5", self.case_rebuild), ("6", self.case_rss), ("7", self.case_cold_start)]
        for cid, fn in steps:
            if cid not in wanted:
                continue
            if cid == "3" and not (VENV_BIN / "docker2nix").exists():
                self.cases.append(self.skipped(cid, "pin an image for Nix", ".venv/bin/docker2nix does not exist yet"))
                continue
            if cid in ("4", "5"):
                why = self.nix_ready()
                if why:
                    self.cases.append(self.skipped(cid, "nix-build cases", why))
                    continue
            log(f"case {cid} ...")
            try:
                result = fn()
            except CommandFailed as exc:
                self.cases.append(self.skipped(cid, f"case {cid}", f"a command failed: {exc}"))
                log(f"case {cid} FAILED: {exc}")
                continue
            self.cases.extend(result if isinstance(result, list) else [result])


def machine() -> dict[str, Any]:
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def version(cmd: list[str]) -> str:
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {"nproc": os.cpu_count(), "mem_GiB": round(mem / (1 << 30), 1), "cpu": cpu,
            "kernel": platform.release(), "python": platform.python_version(),
            "skopeo": version(["skopeo", "--version"]), "curl": version(["curl", "--version"]),
            "nix": version(["nix-build", "--version"]),
            "registry": version(["/usr/bin/docker-registry", "--version"])}


def fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def table(cases: list[Case]) -> str:
    rows = ["| case | ours (median) | peer (median) | ratio | target | met |", "|---|---|---|---|---|---|"]
    for c in cases:
        if c.note.startswith("SKIPPED"):
            rows.append(f"| {c.id}. {c.title} | - | - | - | {c.note} | - |")
            continue
        if c.id == "2":
            ours = f"{c.ours_value:.3f} s ({c.extra['ours_MBps']:.0f} MiB/s)"
            peer = f"{c.peer_value:.3f} s ({c.extra['peer_MBps']:.0f} MiB/s)"
        elif c.id == "5":
            ours = f"{c.ours_value:.2f} s, {human(c.extra['ours_bytes_fetched'])} fetched"
            peer = f"{c.peer_value:.2f} s, {human(c.extra['peer_bytes_fetched'])} fetched"
        elif c.id == "6" or c.id == "7":
            ours = c.note
            peer = "-"
        else:
            ours = f"{fmt(c.ours_value)} s"
            peer = f"{fmt(c.peer_value)} s"
        ratio = f"{fmt(c.ratio, 2)} ({c.ratio_label})" if c.ratio is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[c.met]
        rows.append(f"| {c.id}. {c.title} | {ours} | {peer} | {ratio} | {c.target} | {met} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test, minutes -> seconds)")
    p.add_argument("--repeat", type=int, default=None, help="runs per case and tool (default 5; 2 with --quick)")
    p.add_argument("--cases", default="1,2,3,4,5,6,7", help="comma-separated case numbers (default all)")
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

    import stat
    if not stat.S_ISCHR(os.stat("/dev/null").st_mode):
        log("WARNING: /dev/null is not a character device (something replaced it; as root: "
            "rm /dev/null && mknod -m 666 /dev/null c 1 3)")
    bench = Bench(args)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    t0 = time.perf_counter()
    try:
        bench.start()
        bench.run_all()
    finally:
        bench.stop()
    info = machine()
    text = table(bench.cases)
    header = (f"hocker-fetch benchmark, {started}, {'quick' if args.quick else 'full'} sizes, {args.repeat} runs "
              f"per tool (medians), nix max-jobs {args.nix_max_jobs}; machine: {info['nproc']} cores, {info['mem_GiB']} GiB, {info['cpu']}")
    print(header)
    print()
    print(text)
    for c in bench.cases:
        if c.note and c.id not in ("6", "7") and not c.note.startswith("SKIPPED"):
            print(f"\nnote {c.id}: {c.note}")
    met = [c for c in bench.cases if c.met is not None]
    print(f"\ntargets met: {sum(bool(c.met) for c in met)}/{len(met)}"
          + "".join(f"\n  case {c.id}: {'met' if c.met else 'NOT met'}" for c in met))
    out = Path(args.json) if args.json else REPO / "bench" / ("results-quick.json" if args.quick else "results.json")
    out.write_text(json.dumps({"date": started, "mode": "quick" if args.quick else "full", "repeat": args.repeat,
                               "nix_max_jobs": args.nix_max_jobs,
                               "duration_s": round(time.perf_counter() - t0, 1), "machine": info,
                               "sizes": bench.sizes.__dict__, "cases": [c.as_json() for c in bench.cases],
                               "table_markdown": text}, indent=2) + "\n")
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
