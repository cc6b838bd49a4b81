"""Case 13: pin a signed image with the signature policy against the same pin with --insecure-policy (issue 20).

The image's manifest digest gets a cosign signature (ECDSA P-256, pushed with the registry API as cosign does:
the `sha256-<hex>.sig` tag); the policy requires it (sigstoreSigned keyPath). The policy costs one more
manifest request, one payload blob and one signature verification.
Target: with the policy at most 1.5 x the time without.
"""
from __future__ import annotations

import base64
import hashlib
import json

import requests

from ..harness import Case
from ..workspace import Workspace
from .base import CaseUnit

TARGET = 1.5
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _push_blob(base: str, repo: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = requests.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=30)
    r.raise_for_status()
    location = r.headers["Location"]
    location = base + location if location.startswith("/") else location
    r = requests.put(f"{location}{'&' if '?' in location else '?'}digest={digest}", data=data, timeout=30,
                     headers={"Content-Type": "application/octet-stream"})
    r.raise_for_status()
    return digest


def sign(ws: Workspace, repo: str, tag: str) -> bytes:
    """Sign what repo:tag names (as cosign sign does) and return the public key's PEM."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    base = f"http://{ws.host}"
    head = requests.head(f"{base}/v2/{repo}/manifests/{tag}", timeout=30, headers={"Accept": ", ".join([
        OCI_MANIFEST, "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json"])})
    head.raise_for_status()
    digest = head.headers["Docker-Content-Digest"]
    key = ec.generate_private_key(ec.SECP256R1())
    payload = json.dumps({"critical": {"identity": {"docker-reference": f"{ws.host}/{repo}:{tag}"},
                                       "image": {"docker-manifest-digest": digest},
                                       "type": "cosign container image signature"}, "optional": None}).encode()
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    config = b"{}"
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": len(config),
                           "digest": _push_blob(base, repo, config)},
                "layers": [{"mediaType": SIMPLESIGNING, "size": len(payload), "digest": _push_blob(base, repo, payload),
                            "annotations": {"dev.cosignproject.cosign/signature": signature}}]}
    r = requests.put(f"{base}/v2/{repo}/manifests/sha256-{digest.split(':', 1)[1]}.sig", data=json.dumps(manifest),
                     headers={"Content-Type": OCI_MANIFEST}, timeout=30)
    r.raise_for_status()
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def measure(ws: Workspace) -> Case:
    img = ws.images["many10"]
    c = Case("13", "pin a signed image: policy (sigstoreSigned key) vs --insecure-policy", "docker2nix --policy",
             "docker2nix --insecure-policy", f"ours <= {TARGET} x")
    key = ws.work / "cosign.pub"
    key.write_bytes(sign(ws, img["repo"], img["tag"]))
    policy = ws.work / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "sigstoreSigned", "keyPath": str(key)}]}))
    registries_d = ws.work / "registries.d"
    registries_d.mkdir(exist_ok=True)
    (registries_d / "default.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    out = str(ws.out / "image.nix")
    ws.compare(c, ws.hocker("docker2nix", "--policy", str(policy), "--registries.d", str(registries_d), "--out", out,
                            img["repo"], img["tag"]),
               ws.hocker("docker2nix", "--insecure-policy", "--out", out, img["repo"], img["tag"]))
    ratio = c.ours_value / c.peer_value
    c.conclude(ratio, "policy / insecure-policy", ratio <= TARGET)
    return c


UNIT = CaseUnit("13", measure, needs=frozenset({"many10"}))
