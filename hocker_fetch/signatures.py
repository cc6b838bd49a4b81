"""Apply the signature policy to a resolved image before anything is pinned or fetched.

A `Gate` is made once per run from the command line (policy.json and registries.d are read, and any fault in
them reported, before any network traffic); `Gate.for_image` picks the requirements of one image's scope and
reads their keys; `ImageCheck.verify` fetches the cosign attachments (the tag `sha256-<hex>.sig` in the image's
repository, its `application/vnd.dev.cosign.simplesigning.v1+json` layers fetched by digest) and either says
what verified the digest or raises PolicyRefused (exit 8): one line with the image, the digest, the
requirement and why.

A multi-arch image is accepted when a valid signature covers the index digest (cosign's default), or when
every platform manifest being pinned has its own (cosign --recursive; containers/image checks per instance).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, NoReturn, Optional, Sequence, Union

from .errors import HockerError, ManifestError, NotFoundError, PolicyRefused, VerificationError, one_line
from .policy import (
    Accept,
    DockerName,
    Policy,
    PolicyFileError,
    Reject,
    Requirement,
    SigstoreSigned,
    Unimplemented,
    docker_name,
    find_policy,
    load_policy,
)
from .registriesd import RegistriesD, find_dir, load_dir

if TYPE_CHECKING:
    import argparse

    from .client import RegistryClient
    from .reference import Reference
    from .sigstore import CosignSignature, SigstoreRequirement

SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MAX_PAYLOAD = 1024 * 1024  # a simple-signing payload is a few hundred bytes
MAX_SIGNATURES = 64  # a hostile attachment must not make us fetch and verify without end


POLICY_HELP = """\
Signatures: the policy is --policy FILE, else ~/.config/containers/policy.json, else
/etc/containers/policy.json (containers-policy.json(5)); with no policy file anywhere, or with
--insecure-policy, every image is accepted as before. sigstoreSigned requirements look up cosign signatures
where registries.d (--registries.d DIR, else ~/.config/containers/registries.d, else
/etc/containers/registries.d) enables use-sigstore-attachments. A refused image exits 8 and writes nothing."""


def add_policy_options(p: "argparse.ArgumentParser") -> None:
    g = p.add_argument_group("signatures")
    g.add_argument("--policy", metavar="FILE",
                   help="the signature policy (default ~/.config/containers/policy.json, else "
                        "/etc/containers/policy.json; none anywhere: accept every image)")
    g.add_argument("--insecure-policy", action="store_true",
                   help="accept every image without reading any policy (skopeo's flag)")
    g.add_argument("--registries.d", dest="registries_d", metavar="DIR",
                   help="where use-sigstore-attachments is configured (default ~/.config/containers/"
                        "registries.d, else /etc/containers/registries.d)")


@dataclass
class Gate:
    """The policy of one run (None: accept everything) and the registries.d settings."""

    policy: Optional[Policy]
    registries: RegistriesD = field(default_factory=RegistriesD)

    def for_image(self, ref: "Reference", early: bool = False) -> "ImageCheck":
        """The requirements of ref's scope, with their keys read (a bad key file fails here, offline); `early`:
        refuse now, before any network, when the scope rejects whatever the tag names."""
        name = docker_name(ref)
        if self.policy is None:
            return ImageCheck(name, "", "", ())
        scope, reqs = self.policy.requirements_for(name)
        prepared = tuple((r, _trust(r, self.policy.path) if isinstance(r, SigstoreSigned) else None) for r in reqs)
        check = ImageCheck(name, self.policy.path, scope, prepared, self.registries.use_attachments(name))
        if early:
            check.refuse_early()
        return check


def gate_from_args(args: "argparse.Namespace", env: Mapping[str, str] = os.environ) -> Gate:
    """Read policy.json and registries.d as the command line and the environment say (before any network)."""
    if getattr(args, "insecure_policy", False):
        if getattr(args, "policy", None):
            from .errors import UsageError

            raise UsageError("give either --policy or --insecure-policy")
        return Gate(None)
    path = find_policy(getattr(args, "policy", None), env)
    if path is None:
        return Gate(None)
    policy = load_policy(path)
    return Gate(policy, load_dir(find_dir(getattr(args, "registries_d", None), env)))


def _trust(req: SigstoreSigned, policy_path: str) -> "SigstoreRequirement":
    """The requirement's keys, CA and Rekor keys read and checked (PolicyFileError naming what is wrong)."""
    from .sigstore import FulcioTrust, SignatureRejected, SigstoreRequirement, validate_requirement_keys

    def read(items: Sequence[tuple[str, Union[str, bytes]]]) -> list[bytes]:
        out = []
        for kind, value in items:
            if kind == "data":
                assert isinstance(value, bytes)
                out.append(value)
                continue
            assert isinstance(value, str)
            path = os.path.join(req.base, value)
            try:
                with open(path, "rb") as f:
                    out.append(f.read())
            except OSError as exc:
                raise PolicyFileError(f"policy {policy_path}: {req}: {path}: "
                                      f"{exc.strerror or exc.__class__.__name__}") from None
        return out

    fulcio = None
    if req.fulcio is not None:
        [ca] = read([req.fulcio["ca"]])
        fulcio = FulcioTrust(ca, req.fulcio["oidcIssuer"], req.fulcio["subjectEmail"])
    trust = SigstoreRequirement(public_keys=tuple(read(req.keys)), fulcio=fulcio,
                                rekor_public_keys=tuple(read(req.rekor)))
    try:
        validate_requirement_keys(trust)
    except SignatureRejected as exc:
        raise PolicyFileError(f"policy {policy_path}: {req}: {exc}") from None
    return trust


@dataclass
class ImageCheck:
    """One image's requirements; verify() against the digests resolved for it."""

    name: DockerName
    policy_path: str
    scope: str
    requirements: "tuple[tuple[Requirement, Optional[SigstoreRequirement]], ...]"
    use_attachments: bool = False
    _attachments: dict[str, tuple[list["CosignSignature"], int]] = field(default_factory=dict)

    @property
    def enforced(self) -> bool:
        return bool(self.policy_path)

    @property
    def needs_registry(self) -> bool:
        """Whether verify() looks anything up (sigstoreSigned); accept and reject need no registry."""
        return any(isinstance(r, SigstoreSigned) for r, _ in self.requirements)

    def refuse_early(self) -> None:
        """A reject or unimplemented requirement refuses whatever the tag names: say so before any network."""
        for req, _ in self.requirements:
            if isinstance(req, (Reject, Unimplemented)):
                self.verify(None, "", "")

    def verify(self, client: "Optional[RegistryClient]", repository: str, top: str,
               instances: Sequence[str] = ()) -> Optional[str]:
        """What verified `top`'s signature, for the lock ("sigstoreSigned key SHA256:..."), or None when no
        signature was required (no policy, insecureAcceptAnything: a default machine's locks stay as they were);
        PolicyRefused otherwise. `instances`: the platform manifests being pinned."""
        if not self.enforced:
            return None
        verdicts: list[str] = []
        for req, trust in self.requirements:
            if isinstance(req, Accept):
                continue
            elif isinstance(req, Reject):
                self._refuse(top, req, "the policy rejects every image of this scope")
            elif isinstance(req, Unimplemented):
                self._refuse(top, req, "hocker-fetch does not implement this requirement, so it cannot be met")
            else:
                assert trust is not None and client is not None
                verdicts.append(self._sigstore(client, repository, top, instances, req, trust))
        return "; ".join(dict.fromkeys(verdicts)) or None

    def _refuse(self, digest: str, req: Requirement, why: str) -> NoReturn:
        image = f"{self.name.name}@{digest}" if digest else str(self.name)
        raise PolicyRefused(one_line(f"{image} refused by {self.policy_path} ({self.scope}): "
                                     f"{req}: {why}"))

    def _sigstore(self, client: "RegistryClient", repository: str, top: str, instances: Sequence[str],
                  req: SigstoreSigned, trust: "SigstoreRequirement") -> str:
        reasons: list[str] = []
        signer = self._signed(client, repository, top, req, trust, reasons)
        if signer is not None:
            return f"sigstoreSigned {signer}"
        per_platform = [d for d in instances if d != top]
        if per_platform:
            signers = [self._signed(client, repository, d, req, trust, reasons) for d in per_platform]
            if all(s is not None for s in signers):
                return "sigstoreSigned " + ", ".join(dict.fromkeys(str(s) for s in signers))
        reasons = list(dict.fromkeys(reasons))
        why = reasons[0] if len(reasons) == 1 else "none of the signatures is accepted: " + "; ".join(reasons[:4])
        self._refuse(top, req, why)

    def _signed(self, client: "RegistryClient", repository: str, digest: str, req: SigstoreSigned,
                trust: "SigstoreRequirement", reasons: list[str]) -> Optional[str]:
        """The signer of the first signature of `digest` that satisfies `req`; else None, the reasons noted."""
        from .sigstore import SignatureRejected, verify_cosign

        if not self.use_attachments:
            reasons.append("no signature (registries.d does not enable use-sigstore-attachments for "
                           f"{self.name.name}, so none is looked up)")
            return None
        sigs, others = self._fetch(client, repository, digest, req)
        if not sigs:
            reasons.append("no signature" + (f" ({others} non-signature attachments)" if others else "")
                           + f" for {digest}")
            return None
        for sig in sigs:
            try:
                verified = verify_cosign(sig, trust)
            except SignatureRejected as exc:
                reasons.append(str(exc))
                continue
            if verified.manifest_digest != digest:
                reasons.append(f"the signature is for digest {verified.manifest_digest}, not {digest}")
            elif not req.identity.matches(self.name, verified.docker_reference):
                reasons.append(f"the signature names {verified.docker_reference!r}, which {req.identity} "
                               f"does not accept for {self.name}")
            else:
                return verified.signer
        return None

    def _fetch(self, client: "RegistryClient", repository: str, digest: str,
               req: Requirement) -> tuple[list["CosignSignature"], int]:
        """The simple-signing layers of the `sha256-<hex>.sig` attachment (cached), and how many others."""
        if digest not in self._attachments:
            self._attachments[digest] = _attachments(client, repository, digest,
                                                     lambda why: self._refuse(digest, req, why))
        return self._attachments[digest]


def attachment_tag(digest: str) -> str:
    algorithm, _, hexpart = digest.partition(":")
    return f"{algorithm}-{hexpart}.sig"


def _attachments(client: "RegistryClient", repository: str, digest: str,
                 refuse: Callable[[str], NoReturn]) -> tuple[list["CosignSignature"], int]:
    from .manifest import Descriptor
    from .sigstore import CosignSignature

    tag = attachment_tag(digest)
    try:
        raw, content_type, _ = client.get_manifest(repository, tag)
    except NotFoundError:
        return [], 0
    where = f"signature attachment {repository}:{tag}"
    if content_type != OCI_MANIFEST:
        refuse(f"{where} has media type {content_type or 'none'!r}, not an OCI image manifest")
    try:
        doc = json.loads(raw)
        layers = doc["layers"]
        if not isinstance(layers, list):
            raise TypeError("layers")
    except (ValueError, KeyError, TypeError, RecursionError):
        refuse(f"{where} is not a well-formed OCI manifest with layers")
    sigs: list[CosignSignature] = []
    others = 0
    for layer in layers:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLESIGNING:
            others += 1
            continue
        annotations = layer.get("annotations", {})
        if not isinstance(annotations, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                        for k, v in annotations.items()):
            refuse(f"{where}: a layer's annotations are not a map of strings")
        if len(sigs) >= MAX_SIGNATURES:
            refuse(f"{where} has more than {MAX_SIGNATURES} signatures")
        try:
            desc = Descriptor(SIMPLESIGNING, layer.get("digest"), layer.get("size"))  # type: ignore[arg-type]
        except HockerError as exc:
            refuse(f"{where}: a signature layer's descriptor is malformed ({exc})")
        try:
            payload = client.get_blob_bytes(repository, desc, limit=MAX_PAYLOAD)
        except (NotFoundError, ManifestError, VerificationError) as exc:
            refuse(f"{where}: signature payload {desc.digest}: {exc}")
        sigs.append(CosignSignature(payload, dict(annotations)))
    return sigs, others
