"""Issue 19 part 3: the fixed-output builder as the Nix package runs it (`python -S -m hocker_fetch.fetchblob`, the
package and its dependencies on PYTHONPATH, no site).

No timing here (bench case 12 measures the CPU): these assert what the builder process leaves out, that it still
verifies every byte, and that the leaving-out stays inside the builder process.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from support.clitools import clean_env
from test_startup import NOT_FOR_ONE_BLOB, imported

REPO = Path(__file__).resolve().parent.parent
# requests' encoding guesser: the package imports its submodules only when the import itself succeeds
GUESSERS = ("charset_normalizer.api", "charset_normalizer.md", "chardet.universaldetector")


def package_env() -> dict[str, str]:
    """PYTHONPATH like nix/package.nix's interpreter wrapper: the package, then its dependencies."""
    site = sysconfig.get_path("purelib")
    return clean_env(PYTHONPATH=f"{REPO}{os.pathsep}{site}", PYTHONDONTWRITEBYTECODE="1", HOME="/homeless-shelter")


def builder(registry_url: str, digest: str, out: Path, *flags: str, code: str | None = None,
            cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the builder (or `code` standing in for `-m hocker_fetch.fetchblob`) from `cwd`, not the checkout."""
    entry = ["-c", code] if code else ["-m", "hocker_fetch.fetchblob"]
    return subprocess.run([sys.executable, "-S", *flags, *entry, "--quiet", "--registry", registry_url,
                           "--layer", digest, "library/hello", "unused", "--out", str(out)],
                          capture_output=True, text=True, env=package_env(), timeout=120, cwd=cwd,
                          stdin=subprocess.DEVNULL)


def a_layer(reg) -> tuple[str, int]:
    digest, _media_type, size = reg.images["library/hello:oci"].platforms["linux/amd64"].layers[0]
    return digest, size


def test_the_builder_leaves_out_the_encoding_guesser_and_still_verifies(plain_registry, tmp_path: Path) -> None:
    digest, size = a_layer(plain_registry)
    out = tmp_path / "layer.bin"
    proc = builder(plain_registry.url, digest, out, "-X", "importtime", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == f"{out}\n"
    assert out.stat().st_size == size
    assert "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest() == digest
    modules = imported(proc.stderr)
    assert {"requests", "urllib3", "hocker_fetch.transport"} <= modules  # still the one HTTP stack
    assert not modules & set(GUESSERS + NOT_FOR_ONE_BLOB), sorted(modules & set(GUESSERS + NOT_FOR_ONE_BLOB))
    # requests' warning about the missing guesser is silenced: stderr holds nothing but -X importtime's lines
    others = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert others == []


def test_the_collector_is_back_on_for_the_download_with_the_imports_frozen(plain_registry, tmp_path: Path) -> None:
    """gc is off while the builder imports, then the imports are frozen and it runs for what the download makes."""
    digest, _size = a_layer(plain_registry)
    code = ("import gc, runpy, sys\n"
            "try:\n    runpy.run_module('hocker_fetch.fetchblob', run_name='__main__', alter_sys=True)\n"
            "except SystemExit as e:\n    status = e.code\n"
            "print(status, gc.isenabled(), gc.get_freeze_count(), sys.modules.get('charset_normalizer', 'absent'))")
    proc = builder(plain_registry.url, digest, tmp_path / "l", code=code, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    path, status, enabled, frozen, guesser = proc.stdout.split()
    assert (path, status, enabled, guesser) == (str(tmp_path / "l"), "0", "True", "None")
    assert int(frozen) > 10_000  # requests, urllib3 and ours: tens of thousands of objects


def test_a_registry_error_is_still_one_line_without_the_guesser(plain_registry, tmp_path: Path) -> None:
    """Error bodies are text: the builder reports a missing blob as before (exit 4, one line, no output)."""
    proc = builder(plain_registry.url, "sha256:" + "0" * 64, tmp_path / "l", cwd=tmp_path)
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.startswith("hocker-layer: ") and proc.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_importing_fetchblob_changes_nothing_in_the_importer(tmp_path: Path) -> None:
    """hocker-layer (the console script) and tests import fetchblob: requests keeps its guesser, gc stays on."""
    code = ("import gc, sys, hocker_fetch.fetchblob, requests\n"
            "print(gc.isenabled(), sys.modules.get('charset_normalizer') is not None)")
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=package_env(),
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


def test_the_package_runs_its_interpreter_as_the_bench_measures_it() -> None:
    """nix/package.nix's libexec/hocker-fetch/python passes -S, everything on PYTHONPATH (package_env above).

    A text check: nixpkgs is not available offline to build the package (tests/test_nix_build.py evaluates it
    with a stub python3Packages, which does not run postFixup)."""
    text = (REPO / "nix" / "package.nix").read_text()
    wrapper = text[text.index("makeWrapper ${python.interpreter}"):]
    wrapper = wrapper[:wrapper.index("\n  '';")]
    assert "$out/libexec/hocker-fetch/python --add-flags -S" in wrapper
    assert '--prefix PYTHONPATH : "$out/${python.sitePackages}:${python3Packages.makePythonPath deps}"' in wrapper
