"""A registry of our own for the signature-policy tests (issue 20): images pushed with skopeo, cosign
attachments pushed with the registry API (support.cosign), and policy/registries.d files written per test.

The registry is one per test module (signatures are tags in the images' repositories: tests that push them
must not change what the session registries serve to other modules).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Optional

from support import images as _images
from support.clitools import clean_env, registry_args, run, tool
from support.registry import RegistryServer


def start_signed_registry(root: Path, pki: Any, layout: Path, policy: Path) -> RegistryServer:
    """An empty plain registry with library/hello:oci, library/hello:two (hello2's image), library/hello2:oci
    and library/multi:oci (an index)."""
    reg = RegistryServer(root, "plain", pki)
    reg.start()
    try:
        for ref, target, flags in (("hello", "library/hello:oci", ["--preserve-digests"]),
                                   ("hello2", "library/hello2:oci", ["--preserve-digests"]),
                                   ("hello2", "library/hello:two", ["--preserve-digests"]),
                                   ("multi", "library/multi:oci", ["--all", "--preserve-digests"])):
            _images.push_ref(reg, layout, ref, target, flags, policy)
            repo, _, tag = target.rpartition(":")
            reg.images[target] = _images.read_back(reg, repo, tag)
    except BaseException:
        reg.stop()
        raise
    return reg


def copy_tag(reg: RegistryServer, repo: str, source_ref: str, tag: str) -> str:
    """Point repo:tag at the manifest `source_ref` (a tag or digest in repo); its digest."""
    r = _images.manifest_http(reg, repo, source_ref)
    r.raise_for_status()
    put = reg.http("PUT", f"/v2/{repo}/manifests/{tag}", repo=repo, actions="pull,push", data=r.content,
                   headers={"Content-Type": r.headers["Content-Type"]})
    put.raise_for_status()
    return _images.sha256_digest(r.content)


def write_policy(path: Path, docker: Optional[dict[str, list]] = None, default: Optional[list] = None) -> Path:
    doc: dict[str, Any] = {"default": default or [{"type": "reject"}]}
    if docker is not None:
        doc["transports"] = {"docker": docker}
    path.write_text(json.dumps(doc))
    return path


def write_registries_d(directory: Path, attachments: Optional[dict[str, bool]] = None,
                       default: Optional[bool] = True) -> Path:
    """registries.d with one yaml: default-docker's use-sigstore-attachments, and per-scope settings."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    if default is not None:
        lines += ["default-docker:", f"  use-sigstore-attachments: {str(default).lower()}"]
    if attachments:
        lines.append("docker:")
        for scope, use in attachments.items():
            lines += [f"  {scope}:", f"    use-sigstore-attachments: {str(use).lower()}"]
    (directory / "sigstore.yaml").write_text("\n".join(lines) + "\n")
    return directory


def keyed(key_path: Path, identity: Optional[dict] = None) -> dict:
    req: dict[str, Any] = {"type": "sigstoreSigned", "keyPath": str(key_path)}
    if identity is not None:
        req["signedIdentity"] = identity
    return req


def hocker(reg: RegistryServer, tool_name: str, *args: str, policy: Optional[Path] = None,
           registries_d: Optional[Path] = None, home: str = "/nonexistent-home") -> subprocess.CompletedProcess:
    """Run one of our tools against `reg` (hocker form) with the given policy files."""
    flags = []
    if policy is not None:
        flags += ["--policy", str(policy)]
    if registries_d is not None:
        flags += ["--registries.d", str(registries_d)]
    return run(tool_name, *args, *flags, env=clean_env(HOME=home))


def hocker_manifest(reg: RegistryServer, repo: str, tag: str, *extra: str, **kw: Any) -> subprocess.CompletedProcess:
    return hocker(reg, "hocker-manifest", *registry_args(reg), repo, tag, *extra, **kw)


def skopeo_verdict(reg: RegistryServer, ref: str, policy: Path, registries_d: Path, dest: Path) -> tuple[bool, str]:
    """skopeo's verdict: (accepted, stderr) of `skopeo --policy P --registries.d D copy docker://... dir:X`."""
    r = subprocess.run(["skopeo", "--policy", str(policy), "--registries.d", str(registries_d), "copy", "--quiet",
                        *_images.skopeo_args(reg, "src"), f"docker://{reg.host}/{ref}", f"dir:{dest}"],
                       capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    return r.returncode == 0, r.stderr.decode(errors="replace")


__all__ = ["copy_tag", "hocker", "hocker_manifest", "keyed", "skopeo_verdict", "start_signed_registry", "tool",
           "write_policy", "write_registries_d"]
