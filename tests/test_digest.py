"""Digest parsing, streaming verification and the Nix encodings (checked against the seed's example)."""

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hocker_fetch.digest import (
    DigestVerifier,
    file_digest,
    nix_base32,
    nix_base32_decode,
    parse_digest,
    sha256_digest,
    to_nix_base32,
    to_sri,
    verify_bytes,
)
from hocker_fetch.errors import UsageError, VerificationError


def test_seed_example():
    # hocker's README: this config digest became this sha256 in the generated expression
    d = "sha256:054abe38b1e6f863befa4258cbfaf127b1cc9440d2e2e349b15d22e676b591e7"
    assert to_nix_base32(d) == "1rwinmvfc8jxn54y7qnj82acrc97y7xcnn22zaz67y76n4wbwjh5"
    layer = "sha256:cd0a524342efac6edff500c17e625735bbe479c926439b263bbe3c8518a0849c"
    assert to_nix_base32(layer) == "1744l0c8ag5y7ck9nhr6r5wy9frmaxi7xh80ypgnxb7g891m42nd"


def test_sri():
    d = "sha256:" + hashlib.sha256(b"").hexdigest()
    assert to_sri(d) == "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


def test_parse_digest_forms():
    hexd = "a" * 64
    assert parse_digest(hexd) == "sha256:" + hexd
    assert parse_digest("sha256:" + hexd) == "sha256:" + hexd
    for bad in ["", "sha256:", "sha512:" + "a" * 128, "sha256:" + "A" * 64, "a" * 63, "sha256:../../etc/passwd",
                "sha256:" + "a" * 65]:
        with pytest.raises(UsageError):
            parse_digest(bad)


def test_file_digest_reads_in_chunks(tmp_path):
    data = os.urandom(10_000)
    (tmp_path / "blob").write_bytes(data)
    assert file_digest(str(tmp_path / "blob"), chunk_size=999) == sha256_digest(data)


def test_verify_bytes():
    data = b"config"
    verify_bytes(data, sha256_digest(data), len(data))
    for digest, size in [(sha256_digest(b"other"), None), (sha256_digest(data), len(data) + 1)]:
        with pytest.raises(VerificationError):
            verify_bytes(data, digest, size)


def test_verifier_accepts_exact_and_rejects_others():
    data = os.urandom(5000)
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    v = DigestVerifier(d, len(data))
    for i in range(0, len(data), 999):
        v.update(data[i:i + 999])
    v.check()
    flipped = bytearray(data)
    flipped[10] ^= 1
    v = DigestVerifier(d, len(data))
    v.update(bytes(flipped))
    with pytest.raises(VerificationError, match=d):
        v.check()
    v = DigestVerifier(d, len(data))
    v.update(data[:-1])
    with pytest.raises(VerificationError, match="expected 5000"):
        v.check()
    v = DigestVerifier(d, len(data))
    with pytest.raises(VerificationError):
        v.update(data + b"x")


@settings(max_examples=2000)
@given(st.binary(min_size=0, max_size=64))
def test_nix_base32_roundtrip(data):
    text = nix_base32(data)
    assert len(text) == (len(data) * 8 + 4) // 5
    assert nix_base32_decode(text) == data
