"""End-to-end demo against a local registry this script starts, seeds and stops itself.

Run through `scripts/demo` (which installs everything first). Each step prints the command it runs, so the
output doubles as a worked example.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.images import build_test_layout, push_ref, write_policy  # noqa: E402
from support.registry import RegistryServer  # noqa: E402

BIN = Path(sys.executable).parent


def step(title: str, argv: list[str], **kw) -> subprocess.CompletedProcess:
    shown = " ".join(shlex.quote(Path(a).name if a.startswith(str(BIN)) else a) for a in argv)
    print(f"\n== {title}\n$ {shown}", flush=True)
    r = subprocess.run(argv, capture_output=True, **kw)
    out = r.stdout if isinstance(r.stdout, str) else r.stdout.decode(errors="replace")
    if out.strip():
        lines = out.strip().splitlines()
        print("\n".join(lines[:25]) + ("\n..." if len(lines) > 25 else ""))
    if r.returncode != 0:
        err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
        sys.exit(f"demo: step failed ({r.returncode}): {err.strip()}")
    return r


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="hocker-demo-") as tmp:
        work = Path(tmp)
        layout = work / "layout"
        build_test_layout(layout)
        policy = write_policy(work / "policy.json")
        with RegistryServer(work / "registry", "plain") as reg:
            push_ref(reg, layout, "hello", "library/hello:1.0", ["--preserve-digests"], policy)
            push_ref(reg, layout, "multi", "library/multi:1.0", ["--all", "--preserve-digests"], policy)
            print(f"demo: local registry at {reg.url}, seeded with library/hello:1.0 and library/multi:1.0 "
                  "(amd64 + arm64/v8)")
            tool = lambda name: str(BIN / name)  # noqa: E731
            step("the manifest, exactly as served (hocker's form)",
                 [tool("hocker-manifest"), "--registry", reg.url, "library/hello", "1.0"])
            step("the arm64 manifest of a multi-arch tag (docker reference form)",
                 [tool("hocker-manifest"), "--platform", "linux/arm64", f"{reg.host}/library/multi:1.0"])
            config = step("the config (its sha256 is the image ID)",
                          [tool("hocker-config"), "--registry", reg.url, "library/hello", "1.0"]).stdout
            manifest = json.loads(subprocess.run([tool("hocker-manifest"), "--registry", reg.url, "library/hello",
                                                  "1.0"], capture_output=True, check=True).stdout)
            layer = manifest["layers"][0]["digest"]
            step("one layer, verified while it streams",
                 [tool("hocker-layer"), "--registry", reg.url, "--layer", layer, "--out", str(work / "layer.tar.gz"),
                  "library/hello"])
            archive = work / "hello.tar"
            step("a docker-load archive, layers in parallel",
                 [tool("hocker-image"), "--registry", reg.url, "--out", str(archive), "library/hello", "1.0"])
            step("skopeo reads the archive (as docker load would)",
                 ["skopeo", "--policy", str(policy), "copy", "-q", f"docker-archive:{archive}",
                  f"dir:{work / 'check'}"])
            loaded = json.loads((work / "check" / "manifest.json").read_bytes())["config"]["digest"]
            expected = "sha256:" + hashlib.sha256(config).hexdigest()
            assert loaded == expected, (loaded, expected)
            print(f"demo: the loaded image's config digest {loaded} equals the registry's")
            nix_demo = ROOT / "scripts" / "demo_nix.py"
            if nix_demo.exists():
                subprocess.run([sys.executable, str(nix_demo), reg.url, str(work)], check=True)
    print("\ndemo: all steps succeeded")


if __name__ == "__main__":
    main()
