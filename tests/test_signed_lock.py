"""End to end with a policy (issue 20): the nightly bot's `hocker-lock update` never moves a pin to an image the
policy refuses, `check` names the entry, and a refusal writes nothing anywhere (lock, -o file, expression)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
from support import nixenv
from support.clitools import clean_env, registry_args, run
from support.cosign import keyed_layer, new_key, public_pem, push_signatures
from support.nixenv import NIX_DIR, VENV
from support.signedenv import copy_tag, keyed, start_signed_registry, write_policy, write_registries_d

from hocker_fetch.sigstore import key_fingerprint

nix = nixenv.nix  # a throw-away store for this module


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory, test_pki, test_layout, skopeo_policy) -> Iterator:
    server = start_signed_registry(tmp_path_factory.mktemp("lock-registry"), test_pki, test_layout, skopeo_policy)
    yield server
    server.stop()


@pytest.fixture
def setup(reg, tmp_path: Path) -> dict:
    key = new_key()
    (tmp_path / "cosign.pub").write_bytes(public_pem(key))
    policy = write_policy(tmp_path / "policy.json", {reg.host: [keyed(tmp_path / "cosign.pub")]},
                          [{"type": "insecureAcceptAnything"}])
    d = write_registries_d(tmp_path / "registries.d")
    return {"key": key, "pub": tmp_path / "cosign.pub", "flags": ["--policy", str(policy), "--registries.d", str(d)],
            "lock": tmp_path / "images.lock.json"}


def lock(setup: dict, *args: str):
    cmd, rest = args[0], args[1:]
    return run("hocker-lock", "--file", str(setup["lock"]), cmd, *setup["flags"], *rest, env=clean_env())


def sign(reg, setup: dict, digest: str, tag: str) -> None:
    layer = keyed_layer(setup["key"], digest, f"{reg.host}/library/hello:{tag}")
    push_signatures(reg, "library/hello", digest, [layer])


def test_nightly_update_with_a_policy(reg, setup):
    signed = copy_tag(reg, "library/hello", "oci", "app")
    sign(reg, setup, signed, "app")
    r = lock(setup, "add", f"{reg.host}/library/hello:app")
    assert r.returncode == 0, r.stderr
    fingerprint = key_fingerprint(setup["pub"].read_bytes())
    entry = json.loads(setup["lock"].read_text())["images"]["hello"]
    assert entry["verifiedBy"] == f"sigstoreSigned key {fingerprint}"
    before = setup["lock"].read_bytes()

    # the tag moves to an unsigned image (a stolen push token): check names the entry, update refuses
    unsigned = copy_tag(reg, "library/hello", "two", "app")
    r = lock(setup, "check")
    assert r.returncode == 8, r.stderr
    err = r.stderr.decode()
    assert err.startswith("hocker-lock: hello: ") and unsigned in err and "no signature" in err, err
    assert len(err.strip().splitlines()) == 1
    r = lock(setup, "update")
    assert r.returncode == 8, r.stderr
    assert setup["lock"].read_bytes() == before

    # the publisher signs it: update moves the pin and records the signer
    sign(reg, setup, unsigned, "app")
    r = lock(setup, "check")
    assert r.returncode == 1, r.stderr  # moved, and acceptable
    r = lock(setup, "update")
    assert r.returncode == 0, r.stderr
    entry = json.loads(setup["lock"].read_text())["images"]["hello"]
    assert next(iter(entry["systems"].values()))["manifest"]["digest"] == unsigned
    assert entry["verifiedBy"] == f"sigstoreSigned key {fingerprint}"
    copy_tag(reg, "library/hello", "oci", "app")  # leave the tag as other tests expect it


def test_add_refused_leaves_no_file(reg, setup):
    r = lock(setup, "add", f"{reg.host}/library/hello2:oci")
    assert r.returncode == 8, r.stderr
    assert not setup["lock"].exists()


@pytest.mark.parametrize("tool,extra", [("docker2nix", []), ("hocker-image", []), ("hocker-config", [])])
def test_refused_tools_write_nothing(reg, setup, tmp_path, tool, extra):
    out = tmp_path / "out"
    r = run(tool, *registry_args(reg), "library/hello2", "oci", "-o", str(out), *setup["flags"], *extra,
            env=clean_env())
    assert r.returncode == 8, r.stderr
    assert r.stdout == b""
    assert not out.exists() and list(tmp_path.glob("out*")) == []
    assert "library/hello2@sha256:" in r.stderr.decode()


def test_docker2nix_accepts_a_signed_image(reg, setup, tmp_path):
    digest = reg.images["library/hello:oci"].digest
    sign(reg, setup, digest, "oci")
    r = run("docker2nix", *registry_args(reg), "library/hello", "oci", *setup["flags"], env=clean_env())
    assert r.returncode == 0, r.stderr
    assert digest.split(":")[1] in r.stdout.decode() or "imageDigest" in r.stdout.decode()


def test_import_docker_lock_ignores_verified_by(reg, setup, tmp_path, nix):
    """importDockerLock reads only the fields it knows: an entry with verifiedBy gives the same derivations."""
    sign(reg, setup, reg.images["library/hello:oci"].digest, "oci")
    assert lock(setup, "add", f"{reg.host}/library/hello:oci").returncode == 0
    doc = json.loads(setup["lock"].read_text())
    assert "verifiedBy" in doc["images"]["hello"]
    del doc["images"]["hello"]["verifiedBy"]
    bare = tmp_path / "bare.lock.json"
    bare.write_text(json.dumps(doc))
    fetchers = f"(import {NIX_DIR}/default.nix {{ hocker = {json.dumps(str(VENV))}; }})"
    paths = "{ out = i.outPath; config = i.imageConfig.outPath; layers = map (l: l.outPath) i.imageLayers; }"

    def evaluate(path: Path) -> object:
        expr = f"let i = ({fetchers}.importDockerLock {path}).hello; in {paths}"
        return json.loads(nix.run("nix-instantiate", "--eval", "--strict", "--json", "--expr", expr).stdout)

    assert evaluate(setup["lock"]) == evaluate(bare)
