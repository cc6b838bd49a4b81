"""Our verdict equals skopeo's wherever no signature has to be verified (issue 20).

Debian's skopeo 1.9.3 is built with sigstore verification disabled, but it reads policy.json and registries.d
with containers/image itself: scope precedence, reject, insecureAcceptAnything, unsigned images, attachments
disabled and non-signature attachments give real verdicts. It also copies a signature we pushed into `dir:`,
which proves our attachments sit where containers/image looks, in a form it parses.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

import pytest
from support.clitools import clean_env, registry_args, run
from support.cosign import Layer, keyed_layer, new_key, push_signatures, read_dir_signature, sig_tag
from support.images import manifest_http
from support.signedenv import (
    hocker_manifest,
    keyed,
    skopeo_verdict,
    start_signed_registry,
    write_policy,
    write_registries_d,
)

ACCEPT = [{"type": "insecureAcceptAnything"}]
REJECT = [{"type": "reject"}]


@pytest.fixture(scope="module")
def reg(tmp_path_factory: pytest.TempPathFactory, test_pki, test_layout, skopeo_policy) -> Iterator:
    server = start_signed_registry(tmp_path_factory.mktemp("parity-registry"), test_pki, test_layout, skopeo_policy)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from support.cosign import public_pem

    path = tmp_path_factory.mktemp("parity-keys") / "cosign.pub"
    path.write_bytes(public_pem(new_key()))
    return path


def both(reg, tmp_path: Path, docker: dict, default: list, repo: str, tag: str, attachments: bool = False,
         scopes_d: Optional[dict] = None) -> tuple[bool, bool, str]:
    """(skopeo accepted, we accepted, our stderr) for one policy and image."""
    fix = {k.replace("HOST", reg.host): v for k, v in docker.items()}
    policy = write_policy(tmp_path / "policy.json", fix, default)
    d = write_registries_d(tmp_path / "registries.d", scopes_d, default=attachments)
    ok, skopeo_err = skopeo_verdict(reg, f"{repo}:{tag}", policy, d, tmp_path / f"dir-{repo.replace('/', '-')}-{tag}")
    r = hocker_manifest(reg, repo, tag, policy=policy, registries_d=d)
    assert r.returncode in (0, 8), r.stderr
    if "sigstore disabled" in skopeo_err.lower():
        pytest.fail(f"skopeo could not judge this case: {skopeo_err}")
    return ok, r.returncode == 0, r.stderr.decode()


# (transports.docker with HOST for the registry, default, image, expected verdict)
CASES = [
    ({"HOST/library/hello": ACCEPT}, REJECT, ("library/hello", "oci"), True),
    ({"HOST/library/hello": ACCEPT}, REJECT, ("library/hello2", "oci"), False),
    ({"HOST": REJECT}, ACCEPT, ("library/hello", "oci"), False),
    ({"HOST/library": REJECT, "HOST/library/hello": ACCEPT}, ACCEPT, ("library/hello", "oci"), True),
    ({"HOST/library": REJECT, "HOST/library/hello": ACCEPT}, ACCEPT, ("library/hello2", "oci"), False),
    ({"HOST/library/hello:oci": ACCEPT, "HOST/library/hello": REJECT}, REJECT, ("library/hello", "oci"), True),
    ({"HOST/library/hello:oci": ACCEPT, "HOST/library/hello": REJECT}, REJECT, ("library/hello", "two"), False),
    ({"*.0.0.1": REJECT}, ACCEPT, ("library/hello", "oci"), False),
    ({"*.0.0.1": ACCEPT, "HOST": REJECT}, ACCEPT, ("library/hello", "oci"), False),
    ({"": REJECT}, ACCEPT, ("library/hello", "oci"), False),
    ({"": ACCEPT}, REJECT, ("library/hello", "oci"), True),
    ({"HOST/library/hello": ACCEPT + REJECT}, ACCEPT, ("library/hello", "oci"), False),
    ({}, ACCEPT, ("library/multi", "oci"), True),
]


@pytest.mark.parametrize("docker,default,image,expected", CASES)
def test_scope_precedence_reject_accept(reg, tmp_path, docker, default, image, expected):
    skopeo_ok, ours, err = both(reg, tmp_path, docker, default, *image)
    assert skopeo_ok == expected, "the case's expectation is wrong: skopeo disagrees"
    assert ours == skopeo_ok, err
    if not ours:
        assert "reject" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("attachments", [True, False])
def test_unsigned_image_under_sigstore_signed(reg, tmp_path, key_file, attachments):
    skopeo_ok, ours, err = both(reg, tmp_path, {"HOST": [keyed(key_file)]}, ACCEPT, "library/hello2", "oci",
                                attachments)
    assert skopeo_ok is False and ours is False, err
    assert "no signature" in err
    if not attachments:
        assert "use-sigstore-attachments" in err


def test_attachments_enabled_per_scope_only(reg, tmp_path, key_file):
    """registries.d: default-docker off, the repository's scope on; an unsigned image is still refused."""
    skopeo_ok, ours, err = both(reg, tmp_path, {"HOST": [keyed(key_file)]}, ACCEPT, "library/hello2", "oci", False,
                                {f"{reg.host}/library/hello2": True})
    assert (skopeo_ok, ours) == (False, False)
    assert "use-sigstore-attachments" not in err


def test_non_signature_attachments(reg, tmp_path, key_file):
    """A `.sig` manifest whose layers are not simple-signing payloads holds no signature (asked by digest: the
    platform manifest is what carries the attachment here)."""
    digest = reg.images["library/multi:oci"].platforms["linux/amd64"].manifest_digest
    push_signatures(reg, "library/multi", digest, [Layer(b'{"not": "a signature"}', {})])
    served = manifest_http(reg, "library/multi", sig_tag(digest)).json()
    served["layers"][0]["mediaType"] = "application/vnd.in-toto+json"
    r = reg.http("PUT", f"/v2/library/multi/manifests/{sig_tag(digest)}", repo="library/multi",
                 actions="pull,push", data=json.dumps(served).encode(),
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    r.raise_for_status()
    policy = write_policy(tmp_path / "policy.json", {reg.host: [keyed(key_file)]}, ACCEPT)
    d = write_registries_d(tmp_path / "registries.d", default=True)
    skopeo_ok, skopeo_err = skopeo_verdict(reg, f"library/multi@{digest}", policy, d, tmp_path / "dir")
    ours = run("hocker-manifest", *registry_args(reg), f"library/multi@{digest}", "--policy", str(policy),
               "--registries.d", str(d), env=clean_env())
    assert "sigstore disabled" not in skopeo_err.lower(), skopeo_err
    assert skopeo_ok is False and "non-signature" in skopeo_err, skopeo_err
    assert ours.returncode == 8, ours.stderr
    assert "1 non-signature attachments" in ours.stderr.decode()


def test_skopeo_reads_our_signature_back(reg, tmp_path):
    """containers/image finds the attachment we pushed and parses it: `dir:` gets it as signature-1."""
    digest = reg.images["library/hello:two"].digest
    layer = keyed_layer(new_key(), digest, f"{reg.host}/library/hello:two")
    push_signatures(reg, "library/hello", digest, [layer])
    policy = write_policy(tmp_path / "policy.json", None, ACCEPT)
    d = write_registries_d(tmp_path / "registries.d", default=True)
    ok, err = skopeo_verdict(reg, "library/hello:two", policy, d, tmp_path / "dir")
    assert ok, err
    got = read_dir_signature(tmp_path / "dir" / "signature-1")
    assert got.payload == layer.payload
    assert got.annotations == layer.annotations
