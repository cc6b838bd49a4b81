"""What every case works in: one scratch directory, the registry, the seeded content and a clean environment.

The environment drops credentials and NIX_PATH and points HOME into the scratch directory, so neither our
tools nor the peers pick up the caller's configuration.
"""
from __future__ import annotations

import argparse
import compileall
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .harness import Case, alternate, log, rm, run, timed
from .linksite import LinkSite
from .seed import Sizes, seed, start_registry

if TYPE_CHECKING:
    from support.registry import RegistryServer

REPO = Path(__file__).resolve().parent.parent
VENV = REPO / ".venv"
VENV_BIN = VENV / "bin"
DROPPED_ENV = ("DOCKER_USER", "DOCKER_PASS", "DOCKER_TOKEN", "REGISTRY_AUTH_FILE", "NIX_PATH")


class Workspace:
    """One benchmark run; stop() removes it all unless --keep."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.sizes = Sizes.quick() if args.quick else Sizes.full()
        self.repeat: int = args.repeat
        self.keep: bool = args.keep
        self.nix_max_jobs: str = args.nix_max_jobs
        self.start_runs: int = args.start_runs
        self.work = Path(tempfile.mkdtemp(prefix="hocker-bench-", dir=args.workdir))
        self.out = self.work / "out"
        self.out.mkdir()
        self.quick: bool = args.quick
        self.reg: RegistryServer | None = None
        self.link_site: LinkSite | None = None  # the link cases' registry behind an emulated link (need "link")
        self.images: dict[str, dict[str, Any]] = {}
        self.blobs: dict[str, tuple[str, int]] = {}
        self.env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
        self.env["HOME"] = str(self.work / "home")
        (self.work / "home").mkdir()

    def start(self, needs: set[str]) -> None:
        """Compile hocker_fetch's bytecode, start the registry and seed what the chosen cases need.

        The Nix package ships compiled bytecode (nixpkgs compiles every Python package), while this venv's
        editable checkout has none when PYTHONDONTWRITEBYTECODE is set (the Nix builders set it): every process
        would recompile the package. Compiling once makes the venv stand in for the package honestly.
        """
        compileall.compile_dir(str(REPO / "hocker_fetch"), quiet=1)
        self.reg = start_registry(self.work / "registry")
        self.images, self.blobs = seed(self.reg, self.work, self.sizes, needs)
        if "link" in needs:
            self.link_site = LinkSite(self.work / "link", self.quick)  # set first: stop() ends a half-started one
            self.link_site.start()

    def stop(self) -> None:
        if self.link_site is not None:
            self.link_site.stop()
        if self.reg is not None:
            self.reg.stop()
        if self.keep:
            log(f"kept {self.work}")
        else:
            rm(self.work)

    @property
    def host(self) -> str:
        assert self.reg is not None
        return self.reg.host

    def hocker(self, name: str, *args: str) -> list[str]:
        """A command line of one of our console scripts against the bench registry, quiet."""
        return [str(VENV_BIN / name), "-q", "--registry", f"http://{self.host}", *args]

    def skopeo(self, *args: str) -> list[str]:
        """A `skopeo copy` command line from the bench registry (plain http)."""
        return ["skopeo", "--insecure-policy", "--tmpdir", str(self.work), "copy", "--quiet",
                "--src-tls-verify=false", *args]

    def clean_out(self) -> None:
        for p in self.out.iterdir():
            rm(p)

    def compare(self, case: Case, ours: list[str], peer: list[str]) -> None:
        """Time two commands that write into `out`: one warm-up run each, then alternating timed runs, with
        `out` emptied after every run so that neither side finds the other's output."""
        run(ours, env=self.env)
        run(peer, env=self.env)
        self.clean_out()
        alternate(self.repeat, lambda: timed(ours, env=self.env, after=self.clean_out),
                  lambda: timed(peer, env=self.env, after=self.clean_out), case)
