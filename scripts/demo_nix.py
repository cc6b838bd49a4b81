"""The Nix half of the demo: pin with docker2nix, build with nix-build, load the result.

Called by scripts/demo.py with the local registry's URL and a scratch directory. Builds into the machine's
/nix/store (single-user Nix as root), offline: a nix.conf of its own turns off substituters.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from demo import step  # noqa: E402


def main(registry: str, work: Path) -> None:
    conf = work / "nix-conf"
    conf.mkdir()
    (conf / "nix.conf").write_text("build-users-group =\nsandbox = false\nsubstituters =\n")
    env = {**os.environ, "NIX_CONF_DIR": str(conf)}
    pinned = work / "hello.nix"
    step("pin the image for Nix: no blob is downloaded, every hash is a registry digest re-encoded",
         [str(BIN / "docker2nix"), "--registry", registry, "library/hello", "1.0", "--out", str(pinned)])
    print(pinned.read_text())
    # Without nixpkgs: nix/default.nix gives the fetchers for any hocker-fetch installation (here the venv).
    (work / "default.nix").write_text(
        f"let fetchers = import {ROOT}/nix/default.nix {{ hocker = {json.dumps(str(ROOT / '.venv'))}; }};\n"
        f"in import {pinned} {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}\n")
    result = step("build it: each layer is a fixed-output derivation named by its digest",
                  ["nix-build", str(work / "default.nix"), "--no-out-link"], env=env).stdout.decode().split()[-1]
    archive = work / "from-nix.tar"
    print(f"\n== load it\n$ {result}/compositeImage.sh > from-nix.tar   # or: | docker load", flush=True)
    with open(archive, "wb") as out:
        subprocess.run([f"{result}/compositeImage.sh"], stdout=out, check=True)
    policy = work / "policy.json"
    step("skopeo reads what compositeImage.sh streamed",
         ["skopeo", "--policy", str(policy), "copy", "-q", f"docker-archive:{archive}", f"dir:{work / 'from-nix'}"])
    loaded = json.loads((work / "from-nix" / "manifest.json").read_bytes())["config"]["digest"]
    config = subprocess.run([str(BIN / "hocker-config"), "--registry", registry, "library/hello", "1.0"],
                            capture_output=True, check=True).stdout
    assert loaded == "sha256:" + hashlib.sha256(config).hexdigest(), loaded
    print(f"demo: the image built by Nix loads with config digest {loaded}, the registry's")
    step("a docker-archive file, for NixOS oci-containers imageFile",
         ["nix-build", str(work / "default.nix"), "-A", "dockerArchive", "--no-out-link"], env=env)
    step("(nix-build --check: the archive is bit-for-bit reproducible)",
         ["nix-build", str(work / "default.nix"), "-A", "dockerArchive", "--no-out-link", "--check"], env=env)
    lock_demo(registry, work, env)


def lock_demo(registry: str, work: Path, env: dict[str, str]) -> None:
    """Many images in one lock file, kept current by hocker-lock and built with importDockerLock."""
    host = registry.split("://", 1)[-1].rstrip("/")
    lock = [str(BIN / "hocker-lock"), "--file", str(work / "images.lock.json")]
    step("a fleet in one lock file: add an image (this host's platform)", [*lock, "add", f"{host}/library/hello:1.0"])
    step("... and a multi-arch one for every platform Nix builds for",
         [*lock, "add", "--platform", "all", f"{host}/library/multi:1.0"])
    step("what is pinned", [*lock, "list"])
    step("check: exit 0, no tag moved (1 would name the entries that did; `update` rewrites them)", [*lock, "check"])
    (work / "fleet.nix").write_text(
        f"(import {ROOT}/nix/default.nix {{ hocker = {json.dumps(str(ROOT / '.venv'))}; }}).importDockerLock "
        f"{work / 'images.lock.json'}\n")
    step("build one entry with importDockerLock (the layers are the store paths built above)",
         ["nix-build", str(work / "fleet.nix"), "-A", "hello", "--no-out-link"], env=env)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
