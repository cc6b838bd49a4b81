"""The Nix side of cases 4 and 5: throw-away stores, and the two expressions that build the same image.

Every build gets a new empty store (NIX_STORE_DIR), so no fixed-output derivation is ever cached and both
sides really fetch; `substituters =` and `sandbox = false` keep Nix off the network and root-free.
"""
from __future__ import annotations

import itertools
import json
import shlex
import shutil
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .harness import Case, alternate, rm, run
from .workspace import REPO, VENV, VENV_BIN, Workspace

NIX_CONF = ("build-users-group =\nsandbox = false\nsubstituters =\n"
            "experimental-features = nix-command\n")


def nix_ready() -> str | None:
    """Why the Nix cases cannot run here, or None."""
    if shutil.which("nix-build") is None:
        return "nix-build is not installed"
    if not (REPO / "nix" / "default.nix").exists():
        return "nix/default.nix does not exist yet"
    if not (VENV_BIN / "docker2nix").exists():
        return ".venv/bin/docker2nix does not exist yet"
    return None


def nix_env(ws: Workspace, root: Path) -> dict[str, str]:
    """The environment for a private Nix setup (config, store, state, log) under `root`."""
    conf = root / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "nix.conf").write_text(NIX_CONF + f"max-jobs = {ws.nix_max_jobs}\n")
    env = dict(ws.env)
    env.update(NIX_CONF_DIR=str(conf), NIX_STORE_DIR=str(root / "store"), NIX_STATE_DIR=str(root / "state"),
               NIX_LOG_DIR=str(root / "log"))
    return env


def nix_build(file: Path, attr: str | None = None) -> list[str]:
    return ["nix-build", str(file), "--no-out-link"] + (["-A", attr] if attr else [])


def alternate_in_fresh_stores(ws: Workspace, case: Case, build: Callable[[str, dict[str, str]], float]) -> None:
    """Alternate `build("ours", env)` and `build("peer", env)`, each in a new empty store removed afterwards."""
    counter = itertools.count(1)

    def one(which: str) -> float:
        root = ws.work / "nixroot" / f"{case.id}-{which}-{next(counter)}"
        env = nix_env(ws, root)
        try:
            return build(which, env)
        finally:
            rm(root)

    alternate(ws.repeat, lambda: one("ours"), lambda: one("peer"), case)


OURS_WRAPPER = """
let
  fetchers = import {default_nix} {{ hocker = {venv}; python = {python}; }};
  f = import {expr};
  args = {{ inherit (fetchers) fetchDockerConfig fetchDockerLayer fetchdocker; }}
    // (if (builtins.functionArgs f) ? system then {{ system = builtins.currentSystem; }} else {{ }});
in f args
"""

PEER_FOD = """
builtins.derivation {{
  name = "docker-image-bench-img-{tag}.tar";
  system = builtins.currentSystem;
  builder = "/bin/sh";
  args = [ "-c" {script} ];
  outputHashMode = "flat";
  outputHashAlgo = "sha256";
  outputHash = "{nix_hash}";
  preferLocalBuild = true;
}}
"""


# The interpreter the builders run, laid out like nix/package.nix's libexec/hocker-fetch/python (a shell wrapper that
# puts the package and its dependencies on PYTHONPATH and execs Python). `-S`: the venv's site would run the
# editable install's import finder (pathlib and more, ~0.02-0.04 s per process), which the package does not have.
PACKAGE_PYTHON = """#!/bin/sh
export PYTHONPATH={path}
exec {python} -S "$@"
"""


def package_python(ws: Workspace) -> Path:
    """A stand-in for the Nix package's interpreter wrapper (see PACKAGE_PYTHON), written once per run."""
    path = ws.work / "package-python"
    if not path.exists():
        site = sysconfig.get_path("purelib", vars={"base": str(VENV), "platbase": str(VENV)})
        path.write_text(PACKAGE_PYTHON.format(path=shlex.quote(f"{REPO}:{site}"),
                                              python=shlex.quote(str(VENV_BIN / "python"))))
        path.chmod(0o755)
    return path


@dataclass(frozen=True)
class NixFiles:
    expr: Path    # docker2nix's output
    ours: Path    # builds `expr` with this checkout's nix/default.nix and venv
    peer: Path    # the pullImage-style fixed-output derivation
    hash: str     # the peer's outputHash


def nix_files(ws: Workspace, key: str) -> NixFiles:
    """For image `key`: docker2nix's expression, a build wrapper, and the pullImage-style FOD with its hash."""
    img = ws.images[key]
    d = ws.work / "nix" / key
    d.mkdir(parents=True, exist_ok=True)
    expr = d / "image.nix"
    run(ws.hocker("docker2nix", "--out", str(expr), img["repo"], img["tag"]), env=ws.env)
    wrapper = d / "ours.nix"
    wrapper.write_text(OURS_WRAPPER.format(default_nix=REPO / "nix" / "default.nix", venv=json.dumps(str(VENV)),
                                           python=json.dumps(str(package_python(ws))),
                                           expr=expr))
    # pullImage's method: one fixed-output derivation running skopeo copy to a docker-archive.
    name_tag = f"{img['repo']}:{img['tag']}"
    source = f"docker://{ws.host}/{img['repo']}@{img['manifest_digest']}"
    probe = ws.work / "probe.tar"
    run(ws.skopeo(source, f"docker-archive:{probe}:{name_tag}"), env=ws.env)
    nix_hash = run(["nix-hash", "--flat", "--base32", "--type", "sha256", str(probe)]).stdout.decode().strip()
    rm(probe)
    script = ('exec /usr/bin/skopeo --insecure-policy --tmpdir="$TMPDIR" copy --quiet --src-tls-verify=false '
              f'"{source}" "docker-archive:$out:{name_tag}"')
    peer = d / "peer.nix"
    peer.write_text(PEER_FOD.format(tag=img["tag"], script=json.dumps(script), nix_hash=nix_hash))
    return NixFiles(expr=expr, ours=wrapper, peer=peer, hash=nix_hash)
