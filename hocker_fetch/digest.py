"""Digests, and the only module that hashes: parsing, hashing bytes and files, streaming verification, and
the re-encodings Nix wants (base32, SRI).

A registry digest is the sha256 of the exact bytes served, and a flat fixed-output derivation's hash is the
sha256 of the file it stores: the same 32 bytes. So a Nix hash is the digest re-encoded, no download needed.
Hashing in one place keeps one rule for what a digest is (`parse_digest`: sha256 only).
"""

from __future__ import annotations

import base64
import hashlib
import re

from .errors import UsageError, VerificationError

_HEX64 = re.compile(r"[0-9a-f]{64}")
NIX_BASE32_ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz"


def parse_digest(text: str) -> str:
    """Return `sha256:<hex>` for `sha256:<hex>` or a bare 64-char hex; anything else is a usage error.

    Only sha256 is accepted: it is what registries use and what Nix can pin; the strict pattern also keeps
    hostile values such as `sha256:../../etc/passwd` out of file names built from digests.
    """
    value = text.strip()
    algo, sep, hexpart = value.partition(":")
    if not sep:
        algo, hexpart = "sha256", value
    if algo != "sha256":
        raise UsageError(f"unsupported digest algorithm {algo!r} (only sha256 is supported)")
    if not _HEX64.fullmatch(hexpart):
        raise UsageError(f"malformed digest {_shorten(text)!r}: expected sha256:<64 lowercase hex digits>")
    return f"sha256:{hexpart}"


def digest_hex(digest: str) -> str:
    """The hex part of a validated digest (safe to use in file names)."""
    return parse_digest(digest).split(":", 1)[1]


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: str, chunk_size: int = 1 << 20) -> str:
    """The digest of a file's bytes, read a chunk at a time (a layer need not fit in memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def verify_bytes(data: bytes, expected: str, size: int | None = None, what: str = "blob") -> None:
    """VerificationError unless `data` is exactly the bytes `expected` (and `size`, when given) names."""
    verifier = DigestVerifier(expected, size, what)
    verifier.update(data)
    verifier.check()


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


class DigestVerifier:
    """Hashes bytes as they stream past so a blob is verified without ever being held in memory."""

    def __init__(self, expected: str, size: int | None = None, what: str = "blob"):
        self.expected = parse_digest(expected)
        self.size = size
        self.what = what
        self._hash = hashlib.sha256()
        self.count = 0

    def update(self, data: bytes) -> None:
        self._hash.update(data)
        self.count += len(data)
        if self.size is not None and self.count > self.size:
            raise VerificationError(
                f"{self.what} {self.expected}: got more than the declared {self.size} bytes")

    def reset(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def check(self) -> None:
        """Raise VerificationError unless exactly the expected bytes went through."""
        if self.size is not None and self.count != self.size:
            raise VerificationError(
                f"{self.what} {self.expected}: got {self.count} bytes, expected {self.size}")
        actual = "sha256:" + self._hash.hexdigest()
        if actual != self.expected:
            raise VerificationError(f"{self.what} {self.expected}: content has digest {actual}")


def nix_base32(data: bytes) -> str:
    """Nix's base32 (nixpkgs `toBase32`): odd alphabet, and bits read from the end of the byte string."""
    length = (len(data) * 8 + 4) // 5
    out = []
    for n in range(length - 1, -1, -1):
        bit = n * 5
        i, j = divmod(bit, 8)
        c = data[i] >> j
        if i + 1 < len(data):
            c |= data[i + 1] << (8 - j)
        out.append(NIX_BASE32_ALPHABET[c & 0x1F])
    return "".join(out)


def nix_base32_decode(text: str) -> bytes:
    """Inverse of nix_base32, for reading hashes back (tests and lock files)."""
    size = len(text) * 5 // 8
    if (size * 8 + 4) // 5 != len(text):
        raise UsageError(f"invalid Nix base32 hash: {len(text)} characters is not the length of any hash")
    out = bytearray(size)
    for n, ch in enumerate(reversed(text)):
        digit = NIX_BASE32_ALPHABET.find(ch)
        if digit < 0:
            raise UsageError(f"invalid character {ch!r} in Nix base32 hash")
        bit = n * 5
        i, j = divmod(bit, 8)
        out[i] |= (digit << j) & 0xFF
        carry = digit >> (8 - j)
        if i + 1 < size:
            out[i + 1] |= carry
        elif carry:
            raise UsageError("invalid Nix base32 hash (bits beyond its length)")
    return bytes(out)


def to_nix_base32(digest: str) -> str:
    """`sha256:<hex>` -> the 52-character Nix base32 hash of the same bytes."""
    return nix_base32(bytes.fromhex(digest_hex(digest)))


def to_sri(digest: str) -> str:
    """`sha256:<hex>` -> `sha256-<base64>`, the SRI form Nix's `hash` attribute takes."""
    return "sha256-" + base64.b64encode(bytes.fromhex(digest_hex(digest))).decode()
