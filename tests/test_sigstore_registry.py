"""The signatures tests/support/cosign.py makes sit where containers/image looks and in a form it parses: pushed to
the reference registry, skopeo (the peer) copies them back into `dir:` signature files with registries.d's
use-sigstore-attachments, byte for byte, and those files verify (issue 20, "skopeo also reads a signature back")."""
from __future__ import annotations

import json
from pathlib import Path

from support.cosign import (
    RekorLog,
    TestCA,
    keyed_layer,
    keyless_layer,
    new_key,
    public_pem,
    push_signatures,
    push_small_image,
    read_dir_signature,
    sig_tag,
)
from support.images import run_skopeo, skopeo_args

from hocker_fetch.sigstore import CosignSignature, FulcioTrust, SigstoreRequirement, verify_cosign


def _containers_config(tmp_path: Path, attachments: bool) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    regd = tmp_path / "registries.d"
    regd.mkdir()
    (regd / "default.yaml").write_text(f"default-docker:\n  use-sigstore-attachments: {str(attachments).lower()}\n")
    return policy, regd


def test_skopeo_reads_our_signatures_back(registry_factory, tmp_path: Path) -> None:
    reg = registry_factory("plain")
    digest = push_small_image(reg, "ns/app", "1")
    ref = f"{reg.host}/ns/app"
    key, ca, log = new_key("p384"), TestCA(), RekorLog()
    layers = [keyed_layer(key, digest, ref), keyless_layer(ca, log, digest, ref)]
    push_signatures(reg, "ns/app", digest, layers)
    assert sig_tag(digest) == "sha256-" + digest.split(":")[1] + ".sig"

    policy, regd = _containers_config(tmp_path, attachments=True)
    out = tmp_path / "copy"
    run_skopeo("copy", "--quiet", f"--policy={policy}", f"--registries.d={regd}", *skopeo_args(reg, "src"),
               f"docker://{ref}@{digest}", f"dir:{out}")
    got = [read_dir_signature(out / f"signature-{i}") for i in (1, 2)]
    assert not (out / "signature-3").exists()
    assert [(g.payload, g.annotations) for g in got] == [(la.payload, la.annotations) for la in layers]

    keyed = verify_cosign(CosignSignature(got[0].payload, got[0].annotations),
                          SigstoreRequirement(public_keys=(public_pem(key),)))
    keyless = verify_cosign(CosignSignature(got[1].payload, got[1].annotations),
                            SigstoreRequirement(fulcio=FulcioTrust(ca.root_pem, "https://issuer.example.com",
                                                                   "dev@example.com"),
                                                rekor_public_keys=(log.public_pem,)))
    assert keyed.manifest_digest == keyless.manifest_digest == digest
    assert keyed.docker_reference == keyless.docker_reference == ref

    # with attachments off (registries.d's default), containers/image does not look for them at all
    policy, regd = _containers_config(tmp_path / "off", attachments=False)
    out_off = tmp_path / "copy-off"
    run_skopeo("copy", "--quiet", f"--policy={policy}", f"--registries.d={regd}", *skopeo_args(reg, "src"),
               f"docker://{ref}@{digest}", f"dir:{out_off}")
    assert (out_off / "manifest.json").exists() and not (out_off / "signature-1").exists()
