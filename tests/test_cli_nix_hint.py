"""Issue 18 item 12: credential advice that fits what the Nix build really runs under.

build_setup() reads real files: a uid_map (the identity map outside a user namespace, a one-line map inside the
sandbox's) and the owner of the store directory (a daemon's build user does not own it; single-user Nix does).
The four combinations are checked on files written here (a store directory given to another uid with chown
when we are root). Then real single-user Nix 2.8 builds (tests/support/nixenv.py: no sandbox, the builder is
the user running nix-build) of a private image: the advice names nix-build's environment and the path given to
-I DOCKER_CREDENTIALS, never the daemon's nixbld group or extra-sandbox-paths. The daemon-with-sandbox branch
is exercised for real by tests/test_nix_daemon.py (test_private_image_through_the_daemons_environment and the
credentials file cases), whose expected text is unchanged.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import nixenv
from support.nixenv import SECRET_IMAGE, auth_failure, docker2nix

from hocker_fetch.credentials import BuildSetup, build_setup, nix_build_hint

nix = nixenv.nix  # the module-scoped fixtures
gen_dir = nixenv.gen_dir

IDENTITY = "         0          0 4294967295\n"
SANDBOX = "      1000      30001          1\n"
DAEMON_SANDBOX = ("; inside a Nix build they come from DOCKER_USER/DOCKER_PASS or DOCKER_TOKEN in the nix-daemon's "
                  "environment (nix-build's for single-user Nix), or a credentials file visible in the sandbox "
                  "(in extra-sandbox-paths, group nixbld, mode 0640)")


def facts(tmp_path: Path, uid_map: str, store_owner: int, build_top: str = "/tmp/nix-build-x") -> BuildSetup:
    (tmp_path / "uid_map").write_text(uid_map)
    store = tmp_path / "store"
    store.mkdir(exist_ok=True)
    if store_owner != os.getuid():
        if os.getuid() != 0:
            pytest.skip("giving a directory to another uid needs root")
        os.chown(store, store_owner, -1)
    return build_setup({"NIX_BUILD_TOP": build_top, "NIX_STORE": str(store)}, uid_map=str(tmp_path / "uid_map"))


@pytest.mark.parametrize("uid_map, foreign_store, expected", [
    (IDENTITY, False, BuildSetup(sandbox=False, build_user=False)),  # single-user Nix, no sandbox
    (SANDBOX, False, BuildSetup(sandbox=True, build_user=False)),    # single-user Nix with the sandbox
    (IDENTITY, True, BuildSetup(sandbox=False, build_user=True)),    # a daemon without the sandbox
    (SANDBOX, True, BuildSetup(sandbox=True, build_user=True)),      # NixOS: a daemon with the sandbox
])
def test_build_setup_reads_what_the_build_runs_under(tmp_path, uid_map, foreign_store, expected):
    owner = 65534 if foreign_store else os.getuid()
    assert facts(tmp_path, uid_map, owner) == expected


def test_sandbox_build_dir_counts_as_sandbox(tmp_path):
    assert facts(tmp_path, IDENTITY, os.getuid(), build_top="/build").sandbox


@pytest.mark.parametrize("setup", [BuildSetup(False, False), BuildSetup(True, False)])
def test_single_user_advice_names_nix_builds_environment(setup):
    hint = nix_build_hint({"NIX_BUILD_TOP": "/tmp/x"}, setup)
    assert "nix-build's own environment (single-user Nix: the build runs as you)" in hint
    assert "-I DOCKER_CREDENTIALS=PATH" in hint
    assert "nixbld" not in hint and "nix-daemon" not in hint
    assert ("extra-sandbox-paths" in hint) == setup.sandbox


def test_daemon_advice():
    env = {"NIX_BUILD_TOP": "/build"}
    assert nix_build_hint(env, BuildSetup(sandbox=True, build_user=True)) == DAEMON_SANDBOX
    hint = nix_build_hint(env, BuildSetup(sandbox=False, build_user=True))
    assert "nix-daemon's environment" in hint and "group nixbld, mode 0640" in hint
    assert "extra-sandbox-paths" not in hint


def test_no_advice_outside_a_build():
    assert nix_build_hint({}) == ""


def test_single_user_build_gets_single_user_advice(nix, gen_dir, token_registry, tmp_path):
    reg = token_registry
    creds = {"DOCKER_USER": reg.username, "DOCKER_PASS": reg.password}
    expr = docker2nix(reg, SECRET_IMAGE, gen_dir / "secret-hint.nix", env=creds)
    # no credentials at all: hocker's auth error, with the advice for this set-up
    proc = nix.build(expr, attr="imageConfig", check=False)
    assert proc.returncode != 0 and auth_failure(proc.stderr), proc.stderr[-3000:]
    assert "nix-build's own environment (single-user Nix: the build runs as you)" in proc.stderr
    assert "nixbld" not in proc.stderr and "extra-sandbox-paths" not in proc.stderr
    # the case: -I DOCKER_CREDENTIALS names a file that does not exist
    missing = tmp_path / "no-such-creds"
    proc = nix.build(expr, "-I", f"DOCKER_CREDENTIALS={missing}", attr="imageConfig", check=False)
    assert proc.returncode != 0
    assert (f"hocker-fetch: the credentials file {missing} does not exist: check the path given as "
            "-I DOCKER_CREDENTIALS=PATH or credentialsFile") in proc.stderr, proc.stderr[-3000:]
    assert "nixbld" not in proc.stderr and "extra-sandbox-paths" not in proc.stderr
