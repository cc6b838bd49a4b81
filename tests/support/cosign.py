"""Make signatures in cosign's format with `cryptography`, for tests: keys, simple-signing payloads, Fulcio-like
certificates from a test CA (root + intermediate), Rekor SETs from a test log key, and the `sha256-<hex>.sig`
manifest that carries them, pushed to a registry with the plain registry API.

Independent of hocker_fetch on purpose (its own JSON and PEM handling), so a bug there cannot sign its own tests.

    key = new_key("p256"); layer = keyed_layer(key, digest, "localhost:5000/ns/app")
    ca = TestCA(); log = RekorLog(); layer = keyless_layer(ca, log, digest, ref, email="dev@example.com")
    push_signatures(registry, "ns/app", digest, [layer])   # tag sha256-<hex>.sig
"""
from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional, Union

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

PAYLOAD_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE = "dev.cosignproject.cosign/signature"
CERTIFICATE = "dev.sigstore.cosign/certificate"
CHAIN = "dev.sigstore.cosign/chain"
BUNDLE = "dev.sigstore.cosign/bundle"
OID_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

PrivateKey = Union[ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey]


@dataclass
class Layer:
    """One layer of a `.sig` manifest: the payload blob and its annotations (CosignSignature's shape)."""

    payload: bytes
    annotations: dict[str, str] = field(default_factory=dict)


def new_key(kind: str = "p256") -> PrivateKey:
    """kind: p256, p384, ed25519 or rsa (2048 bits)."""
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError(kind)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def sign_blob(key: PrivateKey, data: bytes) -> bytes:
    """What `cosign sign` does with each key type: ECDSA/SHA-256 (ASN.1), RSA PKCS #1 v1.5/SHA-256, Ed25519."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(data)


def payload_json(digest: str, reference: str, optional: Any = None) -> bytes:
    """cosign's simple-signing payload (cosign writes "optional": null without annotations)."""
    return json.dumps({"critical": {"identity": {"docker-reference": reference},
                                    "image": {"docker-manifest-digest": digest},
                                    "type": "cosign container image signature"},
                       "optional": optional}, separators=(",", ":")).encode()


def keyed_layer(key: PrivateKey, digest: str, reference: str, rekor: Optional["RekorLog"] = None,
                payload: Optional[bytes] = None) -> Layer:
    """A signature by `key`; with `rekor`, also the bundle annotation (a SET naming the public key)."""
    payload = payload if payload is not None else payload_json(digest, reference)
    sig = base64.b64encode(sign_blob(key, payload)).decode()
    layer = Layer(payload, {SIGNATURE: sig})
    if rekor is not None:
        layer.annotations[BUNDLE] = rekor.bundle(sig, public_pem(key), payload)
    return layer


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "hocker-test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def der_utf8(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 128
    return bytes([0x0C, len(raw)]) + raw


class TestCA:
    """A Fulcio-like CA: a root and an intermediate (ECDSA P-384, like Fulcio's), valid 2020..2040."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "hocker-test-fulcio") -> None:
        start, end = datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2040, 1, 1, tzinfo=timezone.utc)
        self.root_key = ec.generate_private_key(ec.SECP384R1())
        self.root = self._ca(_name(name), self.root_key, _name(name), self.root_key, start, end, None)
        self.intermediate_key = ec.generate_private_key(ec.SECP384R1())
        self.intermediate = self._ca(_name(name + "-intermediate"), self.intermediate_key, _name(name),
                                     self.root_key, start, end, 0)

    @staticmethod
    def _ca(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
            issuer_key: ec.EllipticCurvePrivateKey, start: datetime, end: datetime,
            path_length: Optional[int]) -> x509.Certificate:
        b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
             .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
             .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
             .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
        if path_length is not None:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        return b.sign(issuer_key, hashes.SHA384())

    @property
    def root_pem(self) -> bytes:
        return _pem(self.root).encode()

    @property
    def chain_pem(self) -> str:
        """The chain annotation as cosign writes it: intermediate, then root."""
        return _pem(self.intermediate) + _pem(self.root)

    def issue(self, key: PrivateKey, email: Optional[str], issuer: Optional[str], not_before: datetime,
              lifetime: timedelta = timedelta(minutes=10), issuer_ext: str = "both",
              eku: Optional[list[ObjectIdentifier]] = None) -> x509.Certificate:
        """A Fulcio-style leaf: empty subject, critical email SAN, code signing, the OIDC issuer extension(s)
        (issuer_ext: "both", "v1", "v2" or "none")."""
        b = (x509.CertificateBuilder().subject_name(x509.Name([])).issuer_name(self.intermediate.subject)
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(not_before).not_valid_after(not_before + lifetime)
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                            critical=True)
             .add_extension(x509.ExtendedKeyUsage(eku if eku is not None else [ExtendedKeyUsageOID.CODE_SIGNING]),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()),
                            critical=False))
        if email is not None:
            b = b.add_extension(x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=True)
        if issuer is not None and issuer_ext in ("both", "v1"):
            b = b.add_extension(x509.UnrecognizedExtension(OID_ISSUER_V1, issuer.encode()), critical=False)
        if issuer is not None and issuer_ext in ("both", "v2"):
            b = b.add_extension(x509.UnrecognizedExtension(OID_ISSUER_V2, der_utf8(issuer)), critical=False)
        return b.sign(self.intermediate_key, hashes.SHA384())


class RekorLog:
    """A Rekor stand-in: an ECDSA P-256 key that signs SETs over hashedrekord entries."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.index = 0

    @property
    def public_pem(self) -> bytes:
        return public_pem(self.key)

    def body(self, b64_signature: str, key_or_cert_pem: bytes, payload: bytes) -> dict[str, Any]:
        return {"apiVersion": "0.0.1", "kind": "hashedrekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(payload).hexdigest()}},
            "signature": {"content": b64_signature,
                          "publicKey": {"content": base64.b64encode(key_or_cert_pem).decode()}}}}

    def bundle(self, b64_signature: str, key_or_cert_pem: bytes, payload: bytes,
               integrated_time: Optional[int] = None, body: Optional[dict[str, Any]] = None,
               signing_key: Optional[ec.EllipticCurvePrivateKey] = None) -> str:
        """The bundle annotation; `body` replaces the entry, `signing_key` signs the SET instead of the log's."""
        self.index += 1
        der = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        entry = {"body": base64.b64encode(json.dumps(body or self.body(b64_signature, key_or_cert_pem, payload))
                                          .encode()).decode(),
                 "integratedTime": int(time.time()) if integrated_time is None else integrated_time,
                 "logIndex": self.index, "logID": hashlib.sha256(der).hexdigest()}
        # RFC 8785 for this shape (ASCII keys, integers, strings): sorted keys, no spaces.
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        set_sig = (signing_key or self.key).sign(canonical, ec.ECDSA(hashes.SHA256()))
        return json.dumps({"SignedEntryTimestamp": base64.b64encode(set_sig).decode(), "Payload": entry})


def keyless_layer(ca: TestCA, log: RekorLog, digest: str, reference: str, email: str = "dev@example.com",
                  issuer: str = "https://issuer.example.com", integrated_time: Optional[int] = None,
                  cert: Optional[x509.Certificate] = None, key: Optional[PrivateKey] = None) -> Layer:
    """A keyless signature: an ephemeral key, a 10-minute certificate issued a minute before integrated_time."""
    when = int(time.time()) if integrated_time is None else integrated_time
    key = key or new_key("p256")
    cert = cert or ca.issue(key, email, issuer, datetime.fromtimestamp(when - 60, tz=timezone.utc))
    payload = payload_json(digest, reference)
    sig = base64.b64encode(sign_blob(key, payload)).decode()
    cert_pem = _pem(cert)
    return Layer(payload, {SIGNATURE: sig, CERTIFICATE: cert_pem, CHAIN: ca.chain_pem,
                           BUNDLE: log.bundle(sig, cert_pem.encode(), payload, when)})


def read_dir_signature(path: Path) -> Layer:
    """containers/image's `dir:` signature file (signature-N): 0x00, "sigstore-json\\n", then JSON."""
    raw = Path(path).read_bytes()
    prefix = b"\x00sigstore-json\n"
    assert raw.startswith(prefix), path
    doc = json.loads(raw[len(prefix):])
    assert doc["mimeType"] == PAYLOAD_MEDIA_TYPE
    return Layer(base64.b64decode(doc["payload"]), dict(doc["annotations"]))


def sig_tag(digest: str) -> str:
    """cosign's attachment tag for a manifest digest: sha256-<hex>.sig."""
    algo, hexpart = digest.split(":", 1)
    return f"{algo}-{hexpart}.sig"


def sig_manifest(layers: list[Layer]) -> tuple[bytes, dict[str, bytes]]:
    """The OCI manifest cosign pushes under the attachment tag, and its blobs by digest (config included)."""
    blobs = {"sha256:" + hashlib.sha256(layer.payload).hexdigest(): layer.payload for layer in layers}
    config = json.dumps({"architecture": "", "os": "", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": list(blobs)}}).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    blobs[config_digest] = config
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_digest},
                "layers": [{"mediaType": PAYLOAD_MEDIA_TYPE, "size": len(layer.payload),
                            "digest": "sha256:" + hashlib.sha256(layer.payload).hexdigest(),
                            "annotations": layer.annotations} for layer in layers]}
    return json.dumps(manifest).encode(), blobs


def push_blob(registry: Any, repo: str, data: bytes) -> str:
    """Monolithic blob upload (POST, then PUT with the digest); returns the digest."""
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = registry.http("POST", f"/v2/{repo}/blobs/uploads/", repo=repo, actions="pull,push")
    r.raise_for_status()
    location = r.headers["Location"]
    if location.startswith("/"):
        location = registry.url + location
    sep = "&" if "?" in location else "?"
    headers = {"Content-Type": "application/octet-stream"}
    headers.update(registry.session_auth(f"repository:{repo}:pull,push"))
    r = requests.put(f"{location}{sep}digest={digest}", data=data, headers=headers, verify=registry.verify,
                     timeout=30)
    r.raise_for_status()
    return digest


def push_manifest(registry: Any, repo: str, reference: str, manifest: bytes, media_type: str) -> str:
    r = registry.http("PUT", f"/v2/{repo}/manifests/{reference}", repo=repo, actions="pull,push",
                      data=manifest, headers={"Content-Type": media_type})
    r.raise_for_status()
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def push_small_image(registry: Any, repo: str, tag: str, seed: str = "x") -> str:
    """A tiny OCI image (one layer, one config) pushed under tag; returns its manifest digest."""
    layer = f"hocker-test layer {seed}".encode()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}},
                        sort_keys=True).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": OCI_CONFIG, "size": len(config),
                                      "digest": push_blob(registry, repo, config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": len(layer),
                                       "digest": push_blob(registry, repo, layer)}]}).encode()
    return push_manifest(registry, repo, tag, manifest, OCI_MANIFEST)


def push_signatures(registry: Any, repo: str, digest: str, layers: list[Layer]) -> str:
    """Push the `.sig` manifest for `digest` under cosign's tag (blobs, then the manifest); returns its digest."""
    manifest, blobs = sig_manifest(layers)
    for data in blobs.values():
        push_blob(registry, repo, data)
    return push_manifest(registry, repo, sig_tag(digest), manifest, OCI_MANIFEST)
