"""A throw-away PKI made with the `openssl` CLI.

Why the CLI: it is always installed next to the registry, while the `cryptography` package may not be in
the test venv. The CA signs the registry's TLS certificate (so clients must be told about the CA, exactly
like a private registry in the wild), and a separate self-signed RSA key signs the token server's JWTs.
"""
from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SERVER_EXT = """\
subjectAltName = DNS:localhost, IP:127.0.0.1
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
"""


@dataclass
class Pki:
    """Paths of everything `make_pki` wrote, plus the token cert as the JWT `x5c` wants it."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    token_cert: Path
    token_key: Path
    token_cert_der_b64: str  # standard base64 of the DER signing cert, for the JWT header's x5c


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(directory: Path) -> Pki:
    """Create a CA, a CA-signed server cert for localhost/127.0.0.1, and a token-signing key + cert."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=hocker-test-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-sha256",
             "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost", cwd=d)
    (d / "server.ext").write_text(_SERVER_EXT)
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-sha256", "-days", "3650", "-extfile", "server.ext",
             "-out", "server.crt", cwd=d)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
             "-keyout", "token.key", "-out", "token.crt", "-subj", "/CN=hocker-test-token-signer", cwd=d)
    der = subprocess.run(["openssl", "x509", "-in", "token.crt", "-outform", "DER"],
                         cwd=d, check=True, capture_output=True).stdout
    return Pki(
        directory=d,
        ca_cert=d / "ca.crt",
        ca_key=d / "ca.key",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        token_cert=d / "token.crt",
        token_key=d / "token.key",
        token_cert_der_b64=base64.b64encode(der).decode("ascii"),
    )


def rs256_sign(key: Path, data: bytes) -> bytes:
    """RSASSA-PKCS1-v1_5 with SHA-256 over `data`, which is exactly JWT RS256."""
    return subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(key)],
                          input=data, check=True, capture_output=True).stdout
