"""Nix base32 / SRI re-encoding of registry digests, checked against Nix itself (`nix hash to-base32`)."""
from __future__ import annotations

import base64
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from hocker_fetch.digest import nix_base32_decode, to_nix_base32, to_sri

SEED_DIGEST = "sha256:054abe38b1e6f863befa4258cbfaf127b1cc9440d2e2e349b15d22e676b591e7"
SEED_BASE32 = "1rwinmvfc8jxn54y7qnj82acrc97y7xcnn22zaz67y76n4wbwjh5"


def random_hexes(n: int) -> list[str]:
    rng = random.Random(20240603)
    edge = ["0" * 64, "f" * 64, "8" + "0" * 63, "0" * 63 + "1"]
    return edge + [rng.randbytes(32).hex() for _ in range(n - len(edge))]


@pytest.fixture(scope="module")
def nix_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("nix") is None:
        pytest.fail("nix is missing: run scripts/setup-deps", pytrace=False)
    conf: Path = tmp_path_factory.mktemp("nixconf")
    (conf / "nix.conf").write_text("experimental-features = nix-command\nsubstituters =\nsandbox = false\n"
                                   "build-users-group =\n")
    return {"NIX_CONF_DIR": str(conf), "PATH": "/usr/bin:/bin", "HOME": str(conf)}


def nix_hash(nix_env: dict[str, str], command: str, hexes: list[str]) -> list[str]:
    out = subprocess.run(["nix", "hash", command, "--type", "sha256", *hexes], capture_output=True, text=True,
                         env=nix_env, timeout=60, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_seed_example() -> None:
    assert to_nix_base32(SEED_DIGEST) == SEED_BASE32


def test_base32_matches_nix_for_200_digests(nix_env: dict[str, str]) -> None:
    hexes = random_hexes(200)
    assert nix_hash(nix_env, "to-base32", hexes) == [to_nix_base32("sha256:" + h) for h in hexes]


def test_sri_matches_nix(nix_env: dict[str, str]) -> None:
    hexes = random_hexes(50)
    ours = [to_sri("sha256:" + h) for h in hexes]
    assert nix_hash(nix_env, "to-sri", hexes) == ours
    # and Nix reads our base32 back to the same SRI
    assert nix_hash(nix_env, "to-sri", [to_nix_base32("sha256:" + h) for h in hexes]) == ours


def test_decode_round_trip() -> None:
    for h in random_hexes(100):
        assert nix_base32_decode(to_nix_base32("sha256:" + h)).hex() == h
        assert base64.b64decode(to_sri("sha256:" + h)[7:]).hex() == h
