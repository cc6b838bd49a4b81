"""Keyed cosign signatures of our own, pushed with the registry API, judged by the real tools (issue 20).

Each case has one expected verdict: accepted (exit 0, the manifest printed) or refused (exit 8, one line with
image, digest, requirement and why, nothing on stdout).
"""
from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Iterator

import pytest
from support.cosign import SIGNATURE, Layer, keyed_layer, new_key, payload_json, public_pem, push_signatures
from support.signedenv import hocker_manifest, keyed, start_signed_registry, write_policy, write_registries_d

from hocker_fetch.sigstore import key_fingerprint


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory, test_pki, test_layout, skopeo_policy) -> Iterator:
    server = start_signed_registry(tmp_path_factory.mktemp("signed-registry"), test_pki, test_layout, skopeo_policy)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict:
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for name, kind in (("good", "p256"), ("other", "p384")):
        key = new_key(kind)
        (d / f"{name}.pub").write_bytes(public_pem(key))
        out[name] = key
        out[f"{name}.pub"] = d / f"{name}.pub"
    return out


@pytest.fixture
def files(tmp_path: Path) -> dict:
    return {"policy": tmp_path / "policy.json", "d": write_registries_d(tmp_path / "registries.d")}


def hello(reg) -> str:
    return reg.images["library/hello:oci"].digest


def ref(reg, repo: str = "library/hello", tag: str = "oci") -> str:
    return f"{reg.host}/{repo}:{tag}"


def verdict(reg, files: dict, policy_scopes: dict, repo: str = "library/hello", tag: str = "oci", *extra: str):
    write_policy(files["policy"], policy_scopes)
    return hocker_manifest(reg, repo, tag, *extra, policy=files["policy"], registries_d=files["d"])


def assert_refused(r, *words: str) -> str:
    err = r.stderr.decode()
    assert r.returncode == 8, err
    assert r.stdout == b""
    assert len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_signed_by_the_key_is_accepted(reg, keys, files):
    push_signatures(reg, "library/hello", hello(reg), [keyed_layer(keys["good"], hello(reg), ref(reg))])
    r = verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["schemaVersion"] == 2
    digest = verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]}, "library/hello", "oci", "--digest")
    assert digest.stdout.decode().strip() == hello(reg)


def test_signed_by_another_key_is_refused(reg, keys, files):
    push_signatures(reg, "library/hello", hello(reg), [keyed_layer(keys["other"], hello(reg), ref(reg))])
    r = verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]})
    err = assert_refused(r, f"{reg.host}/library/hello@{hello(reg)}", "sigstoreSigned", str(keys["good.pub"]))
    assert "signature" in err.lower()


def test_two_keys_of_which_one_signed(reg, keys, files):
    push_signatures(reg, "library/hello", hello(reg), [keyed_layer(keys["other"], hello(reg), ref(reg))])
    req = {"type": "sigstoreSigned", "keyPaths": [str(keys["good.pub"]), str(keys["other.pub"])]}
    assert verdict(reg, files, {reg.host: [req]}).returncode == 0
    req = {"type": "sigstoreSigned", "keyDatas": [base64.b64encode(keys["good.pub"].read_bytes()).decode()]}
    assert_refused(verdict(reg, files, {reg.host: [req]}))


def test_unsigned_is_refused(reg, keys, files):
    r = verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]}, "library/hello2", "oci")
    assert_refused(r, "no signature", reg.images["library/hello2:oci"].digest)


def test_signature_of_another_digest_is_refused(reg, keys, files):
    other = reg.images["library/hello:two"].digest
    push_signatures(reg, "library/hello", hello(reg), [keyed_layer(keys["good"], other, ref(reg))])
    assert_refused(verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]}), f"for digest {other}")


def test_tampered_signature_bytes_are_refused(reg, keys, files):
    layer = keyed_layer(keys["good"], hello(reg), ref(reg))
    raw = bytearray(base64.b64decode(layer.annotations[SIGNATURE]))
    raw[-1] ^= 1
    tampered = Layer(layer.payload, {SIGNATURE: base64.b64encode(bytes(raw)).decode()})
    push_signatures(reg, "library/hello", hello(reg), [tampered])
    assert_refused(verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]}))
    # a tampered payload (the signature over the original bytes) too
    push_signatures(reg, "library/hello", hello(reg),
                    [Layer(payload_json(hello(reg), ref(reg) + "x"), dict(layer.annotations))])
    assert_refused(verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]}))


# (signedIdentity, the docker-reference the signature names (HOST replaced), accepted?)
IDENTITY_CASES = [
    (None, "HOST/library/hello:oci", True),
    (None, "HOST/library/hello2:oci", False),
    (None, "HOST/library/hello", False),
    ({"type": "matchExact"}, "HOST/library/hello:oci", True),
    ({"type": "matchExact"}, "HOST/library/hello:other", False),
    ({"type": "matchRepository"}, "HOST/library/hello:other", True),
    ({"type": "matchRepository"}, "HOST/library/hello2:oci", False),
    ({"type": "exactReference", "dockerReference": "HOST/other/repo:1"}, "HOST/other/repo:1", True),
    ({"type": "exactReference", "dockerReference": "HOST/other/repo:1"}, "HOST/library/hello:oci", False),
    ({"type": "exactRepository", "dockerRepository": "HOST/other/repo"}, "HOST/other/repo:x", True),
    ({"type": "exactRepository", "dockerRepository": "HOST/other/repo"}, "HOST/library/hello:oci", False),
    ({"type": "remapIdentity", "prefix": "HOST/library", "signedPrefix": "example.com/mirror"},
     "example.com/mirror/hello:oci", True),
    ({"type": "remapIdentity", "prefix": "HOST/library", "signedPrefix": "example.com/mirror"},
     "example.com/other/hello:oci", False),
]


@pytest.mark.parametrize("identity,signed,accepted", IDENTITY_CASES)
def test_signed_identity(reg, keys, files, identity, signed, accepted):
    def fix(text: str) -> str:
        return text.replace("HOST", reg.host)

    identity = None if identity is None else {k: fix(v) for k, v in identity.items()}
    push_signatures(reg, "library/hello", hello(reg), [keyed_layer(keys["good"], hello(reg), fix(signed))])
    r = verdict(reg, files, {reg.host: [keyed(keys["good.pub"], identity)]})
    if accepted:
        assert r.returncode == 0, r.stderr
    else:
        assert_refused(r, "names", fix(signed))


def test_multi_arch_signed_index_covers_every_platform(reg, keys, files):
    info = reg.images["library/multi:oci"]
    layer = keyed_layer(keys["good"], info.digest, ref(reg, "library/multi"))
    push_signatures(reg, "library/multi", info.digest, [layer])
    for platform in ("linux/amd64", "linux/arm64/v8"):
        r = verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]}, "library/multi", "oci", "--platform", platform)
        assert r.returncode == 0, r.stderr
    r = verdict(reg, files, {reg.host: [keyed(keys["good.pub"])]}, "library/multi", "oci", "--index")
    assert r.returncode == 0, r.stderr


def test_multi_arch_signed_per_platform(reg, keys, files):
    """cosign --recursive: each platform manifest signed; the index's own signature is by another key here."""
    info = reg.images["library/multi:oci"]
    amd = info.platforms["linux/amd64"].manifest_digest
    multi = ref(reg, "library/multi")
    push_signatures(reg, "library/multi", info.digest, [keyed_layer(keys["other"], info.digest, multi)])
    push_signatures(reg, "library/multi", amd, [keyed_layer(keys["good"], amd, multi)])
    policy = {reg.host: [keyed(keys["good.pub"])]}
    r = verdict(reg, files, policy, "library/multi", "oci", "--platform", "linux/amd64")
    assert r.returncode == 0, r.stderr
    assert_refused(verdict(reg, files, policy, "library/multi", "oci", "--platform", "linux/arm64/v8"),
                   info.digest)
    assert_refused(verdict(reg, files, policy, "library/multi", "oci", "--index"))


def test_signer_is_the_key_fingerprint(reg, keys, files, tmp_path):
    """What the lock records: the requirement and the key's fingerprint."""
    from support.clitools import clean_env, run

    push_signatures(reg, "library/hello", hello(reg), [keyed_layer(keys["good"], hello(reg), ref(reg))])
    write_policy(files["policy"], {reg.host: [keyed(keys["good.pub"])]})
    lock = tmp_path / "images.lock.json"
    r = run("hocker-lock", "--file", str(lock), "add", "--policy", str(files["policy"]), "--registries.d",
            str(files["d"]), ref(reg), env=clean_env())
    assert r.returncode == 0, r.stderr
    entry = json.loads(lock.read_text())["images"]["hello"]
    assert entry["verifiedBy"] == f"sigstoreSigned key {key_fingerprint(keys['good.pub'].read_bytes())}"
