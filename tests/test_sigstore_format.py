"""The strict decoders under the signature checks: RFC 8785 canonical JSON (the Rekor SET is signed over it),
JSON without duplicate keys, PEM and base64 as containers/image reads them."""
from __future__ import annotations

import json

import pytest

from hocker_fetch.sigstore_format import (
    SignatureRejected,
    b64decode,
    canonical_json,
    exact_fields,
    loads,
    pem_blocks,
    single_pem,
)


def test_canonical_json_sorts_keys_by_utf16_code_units() -> None:
    """RFC 8785 section 3.2.3's example: the emoji (a surrogate pair) sorts before U+FB33."""
    keys = ["\u20ac", "\r", "\ufb33", "1", "\U0001F600", "\u0080", "\u00f6"]
    got = canonical_json({k: 0 for k in keys}).decode()
    assert [k for k in json.loads(got)] == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001F600", "\ufb33"]


def test_canonical_json_strings_numbers_and_nesting() -> None:
    """RFC 8785 section 3.2.2.2's string example, integers as ECMAScript prints them, no whitespace."""
    s = "\u20ac$\u000f\nA'B\"\\\\\"/"
    assert canonical_json(s) == '"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"'.encode()
    assert canonical_json({"b": [1, 1.0, -0, True, None], "a": {"z": "x", "y": 1674247893}}) == \
        b'{"a":{"y":1674247893,"z":"x"},"b":[1,1,0,true,null]}'


@pytest.mark.parametrize("value", [1.5, 2.0**53, -(2**60), "\ud800"])
def test_canonical_json_refuses_what_it_cannot_reproduce_exactly(value: object) -> None:
    with pytest.raises(SignatureRejected):
        canonical_json({"x": value})


@pytest.mark.parametrize("raw", [b'{"a":1,"a":2}', b'{"a":NaN}', b'{"a":Infinity}', b"\xff", b"[" * 100000,
                                 "{}".encode("utf-16"), b'{"a":1} x', b'1' * 5000])
def test_loads_refuses(raw: bytes) -> None:
    with pytest.raises(SignatureRejected) as e:
        loads(raw, "thing")
    assert str(e.value).startswith("thing") and "\n" not in str(e.value)


def test_exact_fields() -> None:
    assert exact_fields({"a": 1, "b": 2}, ("a", "b"), "x") == {"a": 1, "b": 2}
    for bad in ({"a": 1}, {"a": 1, "b": 2, "c": 3}, [], None):
        with pytest.raises(SignatureRejected):
            exact_fields(bad, ("a", "b"), "x")


def test_base64_like_go_std_encoding() -> None:
    assert b64decode("aGVs\nbG8=", "x") == b"hello"  # Go skips CR and LF
    for bad in ("aGVsbG8", "aGVs bG8=", "aGVsbG8=!", "aGVsbG8-"):
        with pytest.raises(SignatureRejected):
            b64decode(bad, "x")


PEM = "-----BEGIN PUBLIC KEY-----\naGVsbG8=\n-----END PUBLIC KEY-----\n"


def test_pem_blocks() -> None:
    assert pem_blocks(PEM, "x") == [("PUBLIC KEY", b"hello")]
    assert pem_blocks(PEM.replace("\n", "\r\n"), "x") == [("PUBLIC KEY", b"hello")]
    assert pem_blocks(PEM + "\n" + PEM.replace("PUBLIC KEY", "CERTIFICATE"), "x") == \
        [("PUBLIC KEY", b"hello"), ("CERTIFICATE", b"hello")]
    assert pem_blocks("", "x") == []
    assert single_pem(PEM.rstrip("\n"), "x") == ("PUBLIC KEY", b"hello")


@pytest.mark.parametrize("bad", [PEM + "junk", "junk" + PEM, PEM.replace("END PUBLIC", "END PRIVATE"),
                                 PEM.replace("aGVsbG8=", "Proc-Type: 4,ENCRYPTED\n\naGVsbG8="), b"\xff" + PEM.encode(),
                                 PEM.replace("aGVsbG8=", "aGVsbG8")])
def test_pem_refuses(bad: str | bytes) -> None:
    with pytest.raises(SignatureRejected):
        pem_blocks(bad, "x")


def test_single_pem_wants_exactly_one() -> None:
    for bad in ("", PEM + PEM):
        with pytest.raises(SignatureRejected, match="one PEM block"):
            single_pem(bad, "x")
