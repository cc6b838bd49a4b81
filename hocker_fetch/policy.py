"""The signature policy (containers-policy.json(5)), read the way containers/image reads it.

Where: --policy PATH, else $HOME/.config/containers/policy.json, else /etc/containers/policy.json; no file
anywhere means "accept", as before this existed (hocker's command lines keep working on machines without the
containers configuration). Parsing is as strict as containers/image's (unknown or repeated fields, a missing
`default`, an empty requirement list are faults), and every fault is one line naming the file.

Only the `docker` transport's scopes matter here: `host[:port]/namespace/repo[:tag|@digest]`, its parent
namespaces, the host, `*.domain` wildcards, then the transport's "" entry, then `default`.

Where this differs from containers/image (the README says so too): a requirement type it knows but this project
does not implement (`signedBy` with GPG keys, `signedBaseLayer`, `sigstoreSigned` with `pki`) or does not know
at all is kept as `Unimplemented`: images of the scopes that use it are refused with one line naming it,
others are unaffected (containers/image refuses a policy with an unknown type as a whole).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Optional, Union

from .errors import HockerError, UsageError
from .reference import DOCKER_HUB_HOSTS, Reference

SYSTEM_POLICY = "/etc/containers/policy.json"
USER_POLICY = ".config/containers/policy.json"


class PolicyFileError(UsageError):
    """The policy file is unreadable or malformed (exit 2: one line naming the file and the fault)."""


# -- image names as containers/image's docker references ---------------------------------------------------

@dataclass(frozen=True)
class DockerName:
    """A normalised docker reference: `name` is `docker.io/library/debian` or `127.0.0.1:5000/a/b`."""

    name: str
    tag: Optional[str] = None
    digest: Optional[str] = None

    @property
    def name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def docker_name(ref: Reference) -> DockerName:
    """What containers/image calls the image: its docker reference, by digest when one is pinned."""
    host = "docker.io" if ref.registry in DOCKER_HUB_HOSTS else ref.registry
    name = f"{host}/{ref.repository}"
    return DockerName(name, digest=ref.digest) if ref.digest else DockerName(name, tag=ref.tag or "latest")


def parse_docker_name(text: Any) -> DockerName:
    """reference.ParseNormalizedNamed: `busybox` is docker.io/library/busybox; no default tag. UsageError if bad."""
    from .reference import _parse_reference

    if not isinstance(text, str):
        raise UsageError("not a string")
    ref = _parse_reference(text)
    host = "docker.io" if ref.registry in DOCKER_HUB_HOSTS else ref.registry
    return DockerName(f"{host}/{ref.repository}", ref.tag, ref.digest)


def scopes(name: DockerName) -> list[str]:
    """The policy scopes naming an image, most specific first (policyconfiguration/naming.go)."""
    out = [str(replace(name, tag=None) if name.digest else name)] if not name.name_only else []
    path = name.name
    while True:
        out.append(path)
        if "/" not in path:
            break
        path = path.rsplit("/", 1)[0]
    host = path.split(":", 1)[0]
    while "." in host:
        host = host.split(".", 1)[1]
        out.append("*." + host)
    return out


# -- signedIdentity ----------------------------------------------------------------------------------------

_HOST = re.compile(r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                   r"|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?")
_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*")


def _valid_prefix(text: str) -> bool:
    """remapIdentity's prefixes: a host[:port], or a [host/]namespace path (reference.DomainRegexp|NameRegexp)."""
    first, _, rest = text.partition("/")
    if not rest:
        return bool(_HOST.fullmatch(text))
    return bool(_HOST.fullmatch(first)) and all(_PATH_COMPONENT.fullmatch(c) for c in rest.split("/"))


@dataclass(frozen=True)
class Identity:
    """One `signedIdentity` (policy_reference_match.go): does a signature's docker-reference fit the image?"""

    kind: str = "matchRepoDigestOrExact"
    reference: str = ""  # exactReference's dockerReference, exactRepository's dockerRepository
    prefix: str = ""
    signed_prefix: str = ""

    def matches(self, intended: DockerName, signed_text: str) -> bool:
        try:
            signed = parse_docker_name(signed_text)
            fixed = parse_docker_name(self.reference) if self.reference else None
        except HockerError:
            return False
        if self.kind == "matchExact":
            return not intended.name_only and not signed.name_only and str(signed) == str(intended)
        if self.kind == "matchRepoDigestOrExact":
            return _repo_digest_or_exact(intended, signed)
        if self.kind == "matchRepository":
            return signed.name == intended.name
        if self.kind == "exactReference":
            assert fixed is not None
            return not fixed.name_only and not signed.name_only and str(signed) == str(fixed)
        if self.kind == "exactRepository":
            assert fixed is not None
            return signed.name == fixed.name
        if self.kind == "remapIdentity":
            return _repo_digest_or_exact(self._remap(intended), signed)
        return False

    def _remap(self, intended: DockerName) -> DockerName:
        name = intended.name
        if name != self.prefix and not name.startswith(self.prefix + "/"):
            return intended
        try:
            remapped = parse_docker_name(str(intended).replace(self.prefix, self.signed_prefix, 1))
        except HockerError:
            return DockerName("")  # containers/image: the rewrite does not parse, nothing matches
        return remapped

    def __str__(self) -> str:
        if self.kind in ("exactReference", "exactRepository"):
            return f"{self.kind} {self.reference}"
        if self.kind == "remapIdentity":
            return f"remapIdentity {self.prefix} -> {self.signed_prefix}"
        return self.kind


def _repo_digest_or_exact(intended: DockerName, signed: DockerName) -> bool:
    if signed.name_only or not intended.name:
        return False
    if intended.tag is not None:
        return str(signed) == str(intended)
    if intended.digest is not None:
        return signed.name == intended.name  # the digest itself is checked against the payload's
    return False


# -- requirements ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Accept:
    """insecureAcceptAnything"""

    def __str__(self) -> str:
        return "insecureAcceptAnything"


@dataclass(frozen=True)
class Reject:
    """reject"""

    def __str__(self) -> str:
        return "reject"


@dataclass(frozen=True)
class Unimplemented:
    """A requirement this project cannot check: images of its scope are refused, naming it."""

    what: str

    def __str__(self) -> str:
        return self.what


@dataclass(frozen=True)
class SigstoreSigned:
    """sigstoreSigned: keys, or a Fulcio CA; Rekor keys; the signedIdentity. Key material is read lazily."""

    identity: Identity
    keys: tuple[tuple[str, Union[str, bytes]], ...] = ()  # ("path", p) or ("data", pem bytes)
    fulcio: Optional[Mapping[str, Any]] = None  # caPath/caData, oidcIssuer, subjectEmail
    rekor: tuple[tuple[str, Union[str, bytes]], ...] = ()
    base: str = "."  # where relative paths are resolved

    def __str__(self) -> str:
        if self.fulcio is not None:
            return f"sigstoreSigned fulcio {self.fulcio['oidcIssuer']} {self.fulcio['subjectEmail']}"
        where = [v if kind == "path" else "keyData" for kind, v in self.keys]
        return f"sigstoreSigned key {', '.join(str(w) for w in where)}"


Requirement = Union[Accept, Reject, Unimplemented, SigstoreSigned]


@dataclass(frozen=True)
class Policy:
    path: str
    default: tuple[Requirement, ...]
    docker: Mapping[str, tuple[Requirement, ...]]

    def requirements_for(self, name: DockerName) -> tuple[str, tuple[Requirement, ...]]:
        """(the scope that applies, as a label, and its requirements): policy_eval.go's lookup."""
        for scope in scopes(name):
            if scope in self.docker:
                return f"docker scope {scope!r}", self.docker[scope]
        if "" in self.docker:
            return 'docker scope ""', self.docker[""]
        return "default", self.default


# -- loading -----------------------------------------------------------------------------------------------

def find_policy(flag: Optional[str], env: Mapping[str, str], system_path: str = SYSTEM_POLICY) -> Optional[str]:
    """--policy, else the user's, else the system's file; None when there is none at all."""
    if flag:
        return flag
    home = env.get("HOME")
    if home:
        user = os.path.join(home, USER_POLICY)
        if os.path.exists(user):
            return user
    return system_path if os.path.exists(system_path) else None


def load_policy(path: str) -> Policy:
    """Parse the policy file strictly; PolicyFileError naming the file and the fault."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise PolicyFileError(f"policy {path}: {exc.strerror or exc.__class__.__name__}") from None
    try:
        return parse_policy(data, path)
    except _Fault as exc:
        raise PolicyFileError(f"policy {path}: {exc}") from None


class _Fault(Exception):
    pass


def _pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in items:
        if key in out:
            raise _Fault(f"duplicate field {key!r}")
        out[key] = value
    return out


def parse_policy(data: bytes, path: str) -> Policy:
    try:
        doc = json.loads(data.decode("utf-8"), object_pairs_hook=_pairs)
    except _Fault:
        raise
    except (ValueError, RecursionError) as exc:
        raise _Fault(f"not valid JSON ({exc})") from None
    obj = _object(doc, "the policy", {"default", "transports"})
    if "default" not in obj:
        raise _Fault("no `default` requirements")
    base = os.path.dirname(os.path.abspath(path))
    default = _requirements(obj["default"], "default", base)
    docker: dict[str, tuple[Requirement, ...]] = {}
    transports = _object(obj.get("transports", {}), "transports", None)
    for transport, scopes_ in transports.items():
        table = _object(scopes_, f"transports.{transport}", None)
        if transport == "docker":
            docker = {scope: _requirements(reqs, f"docker scope {scope!r}", base) for scope, reqs in table.items()}
        else:  # other transports (oci, dir, docker-daemon...) are not ours, but still must be well-formed
            for scope, reqs in table.items():
                _requirements(reqs, f"{transport} scope {scope!r}", base)
    return Policy(path, default, docker)


def _object(value: Any, what: str, allowed: Optional[set[str]]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Fault(f"{what} must be a JSON object")
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise _Fault(f"{what}: unknown field {unknown[0]!r}")
    return value


def _requirements(value: Any, where: str, base: str) -> tuple[Requirement, ...]:
    if not isinstance(value, list):
        raise _Fault(f"{where}: a list of requirements expected")
    if not value:
        raise _Fault(f"{where}: the list of requirements must not be empty")
    return tuple(_requirement(r, where, base) for r in value)


def _requirement(value: Any, where: str, base: str) -> Requirement:
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise _Fault(f"{where}: each requirement must be an object with a string `type`")
    kind = value["type"]
    if kind in ("insecureAcceptAnything", "reject"):
        _object(value, f"{where} {kind}", {"type"})
        return Accept() if kind == "insecureAcceptAnything" else Reject()
    if kind == "signedBy":
        return Unimplemented("signedBy (GPG/X.509 simple signing; use sigstoreSigned)")
    if kind == "signedBaseLayer":
        return Unimplemented("signedBaseLayer")
    if kind != "sigstoreSigned":
        return Unimplemented(f"unknown requirement type {kind!r}")
    return _sigstore(value, f"{where} sigstoreSigned", base)


_KEYS = ("keyPath", "keyPaths", "keyData", "keyDatas", "fulcio", "pki")
_REKOR = ("rekorPublicKeyPath", "rekorPublicKeyPaths", "rekorPublicKeyData", "rekorPublicKeyDatas")


def _sigstore(value: dict[str, Any], where: str, base: str) -> Requirement:
    _object(value, where, {"type", "signedIdentity", *_KEYS, *_REKOR})
    sources = [k for k in _KEYS if k in value]
    if len(sources) != 1:
        raise _Fault(f"{where}: exactly one of {', '.join(_KEYS)} must be given")
    rekor_sources = [k for k in _REKOR if k in value]
    if len(rekor_sources) > 1:
        raise _Fault(f"{where}: at most one of {', '.join(_REKOR)} may be given")
    identity = _identity(value.get("signedIdentity"), where)
    if sources[0] == "pki":
        return Unimplemented("sigstoreSigned with pki (X.509 keys without Fulcio)")
    rekor = _material(value, rekor_sources[0], where) if rekor_sources else ()
    if sources[0] == "fulcio":
        if not rekor:
            raise _Fault(f"{where}: fulcio needs one of {', '.join(_REKOR)}")
        fulcio = _object(value["fulcio"], f"{where} fulcio", {"caPath", "caData", "oidcIssuer", "subjectEmail"})
        if ("caPath" in fulcio) == ("caData" in fulcio):
            raise _Fault(f"{where} fulcio: exactly one of caPath and caData must be given")
        for key in ("oidcIssuer", "subjectEmail"):
            if not isinstance(fulcio.get(key), str) or not fulcio[key]:
                raise _Fault(f"{where} fulcio: `{key}` must be a non-empty string")
        ca = _material(fulcio, "caPath" if "caPath" in fulcio else "caData", f"{where} fulcio")
        return SigstoreSigned(identity, fulcio={**fulcio, "ca": ca[0]}, rekor=rekor, base=base)
    return SigstoreSigned(identity, keys=_material(value, sources[0], where), rekor=rekor, base=base)


def _material(obj: dict[str, Any], key: str, where: str) -> tuple[tuple[str, Union[str, bytes]], ...]:
    """keyPath/keyPaths/keyData/keyDatas (and the rekor and CA forms) as ("path", p) / ("data", bytes)."""
    value = obj[key]
    many = key.endswith("s")  # keyPaths, keyDatas, rekorPublicKeyPaths, rekorPublicKeyDatas
    items = value if many else [value]
    if not isinstance(items, list) or not items:
        raise _Fault(f"{where}: `{key}` must be a non-empty list")
    out: list[tuple[str, Union[str, bytes]]] = []
    for item in items:
        if not isinstance(item, str) or not item:
            raise _Fault(f"{where}: `{key}` must hold non-empty strings")
        if "Path" in key:
            out.append(("path", item))
        else:
            try:
                out.append(("data", base64.b64decode(item, validate=True)))
            except (binascii.Error, ValueError):
                raise _Fault(f"{where}: `{key}` is not base64") from None
    return tuple(out)


def _identity(value: Any, where: str) -> Identity:
    if value is None:
        return Identity()
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise _Fault(f"{where}: signedIdentity must be an object with a string `type`")
    kind = value["type"]
    what = f"{where} signedIdentity {kind}"
    checks: dict[str, tuple[set[str], Callable[[dict[str, Any]], Identity]]] = {
        "matchExact": ({"type"}, lambda v: Identity(kind)),
        "matchRepoDigestOrExact": ({"type"}, lambda v: Identity(kind)),
        "matchRepository": ({"type"}, lambda v: Identity(kind)),
        "exactReference": ({"type", "dockerReference"},
                           lambda v: Identity(kind, _name(v, "dockerReference", what, True))),
        "exactRepository": ({"type", "dockerRepository"},
                            lambda v: Identity(kind, _name(v, "dockerRepository", what, False))),
        "remapIdentity": ({"type", "prefix", "signedPrefix"},
                          lambda v: Identity(kind, prefix=_prefix(v, "prefix", what),
                                             signed_prefix=_prefix(v, "signedPrefix", what))),
    }
    if kind not in checks:
        raise _Fault(f"{where}: unknown signedIdentity type {kind!r}")
    fields, make = checks[kind]
    _object(value, what, fields)
    return make(value)


def _name(v: dict[str, Any], key: str, what: str, exact: bool) -> str:
    text = v.get(key)
    try:
        name = parse_docker_name(text)
    except HockerError as exc:
        raise _Fault(f"{what}: `{key}` {text!r} is not a docker reference ({exc})") from None
    if exact and name.name_only:
        raise _Fault(f"{what}: `{key}` {text!r} has neither a tag nor a digest")
    return str(text)


def _prefix(v: dict[str, Any], key: str, what: str) -> str:
    text = v.get(key)
    if not isinstance(text, str) or not _valid_prefix(text):
        raise _Fault(f"{what}: `{key}` {text!r} is not a host[:port] or a repository namespace")
    return text
