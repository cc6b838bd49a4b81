"""Property-based tests (hypothesis) of every parser that sees untrusted input.

The promise: arbitrary input gives either a valid result or the project's own error (a HockerError subclass,
whose message is one line), never another exception (a traceback in a CLI, a crash in a Nix builder).

What test_reference.py / test_digest.py / test_credentials.py / test_auth.py already cover is not repeated
(parse_reference on arbitrary text, Nix base32 round trip of bytes, WWW-Authenticate headers, the credentials
file on short text/bytes, docker config.json). Added here: the hocker form (--registry URI REPO TAG) and
grammar-generated references, --registry URIs, platforms, digests and DigestVerifier, Nix base32 decoding of
arbitrary text and known vectors, credentials files built line by line from hostile values, the environment
and the whole credential resolution, and manifest/index parsing on st.recursive JSON documents and on
mutated real manifests (byte level and JSON level), followed by platform selection.

Case counts: each property runs exactly as a nested @given function, counted by `Count`; the test asserts the
count reached its max_examples, so the numbers in README.md's "Guarantees" section (the row "Parsers take
arbitrary input") are checked, not hoped for.
"""
from __future__ import annotations

import hashlib
import json
import string
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.leaks import SECRET_FIELDS, assert_independent_of_secrets, mark_secrets, marked, outcome

from hocker_fetch.auth import resolve_credentials as resolve
from hocker_fetch.credentials import Credentials, from_environment, parse_credentials_file
from hocker_fetch.digest import DigestVerifier, nix_base32, nix_base32_decode, parse_digest, to_nix_base32, to_sri
from hocker_fetch.errors import HockerError, ManifestError, UsageError, VerificationError
from hocker_fetch.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_BLOB_BYTES,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageIndex,
    ImageManifest,
    Platform,
    parse_manifest,
    select_platform,
)
from hocker_fetch.reference import parse_reference, parse_registry_base, resolve_reference

# The case counts promised in README.md, section "Guarantees" (keep the two in step).
N_REF = 1000
N_DIGEST = 1500
N_BASE32 = 2000
N_CREDS = 500
N_MANIFEST = 800
N_MUTATED = 1000

# derandomize and database come from the profile conftest.py loads ("ci": derandomized; "dev": random)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Count:
    """Counts how many examples a property really ran (hypothesis calls the body once per example)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> None:
        self.n += 1


def run_property(max_examples: int, strategy: st.SearchStrategy, body: Callable[[Any], None]) -> int:
    count = Count()

    @settings(max_examples=max_examples, **SETTINGS)
    @given(strategy)
    def prop(value: Any) -> None:
        count()
        body(value)

    prop()
    assert count.n >= max_examples, f"only {count.n} of {max_examples} examples ran"
    return count.n


def assert_own_error(exc: BaseException) -> None:
    assert isinstance(exc, HockerError), f"{type(exc).__name__}: {exc}"
    assert "\n" not in str(exc) and str(exc).strip(), repr(str(exc))


# -------------------------------------------------------------------------------------------------------
# references: grammar-generated ones round-trip; the hocker form and --registry URIs never crash

_ALNUM = string.ascii_lowercase + string.digits
_component = st.builds(
    lambda parts, seps: parts[0] + "".join(s + p for s, p in zip(seps, parts[1:])),
    st.lists(st.text(_ALNUM, min_size=1, max_size=6), min_size=1, max_size=3),
    st.lists(st.sampled_from([".", "_", "__", "-", "--"]), min_size=2, max_size=2))
_path = st.lists(_component, min_size=1, max_size=4).map("/".join)
_tag = st.builds(lambda a, b: a + b, st.sampled_from(list(string.ascii_letters + string.digits + "_")),
                 st.text(string.ascii_letters + string.digits + "_.-", max_size=20))
_hex = st.binary(min_size=32, max_size=32).map(bytes.hex)
_host = st.one_of(
    st.sampled_from(["localhost", "127.0.0.1", "registry.invalid", "ghcr.io", "docker.io", "[::1]",
                     "Quay.IO", "index.docker.io"]),
    st.builds(lambda a, b: f"{a}.{b}", st.text(_ALNUM, min_size=1, max_size=8), st.text(_ALNUM, min_size=1,
                                                                                       max_size=4)))
_port = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))


@st.composite
def valid_references(draw: st.DrawFn) -> tuple[str, dict]:
    host = draw(st.one_of(st.none(), st.builds(str.__add__, _host, _port)))
    path = draw(_path)
    first = path.split("/")[0]
    if host is None and "/" in path and ("." in first or first == "localhost"):
        host = "registry.invalid"  # docker reads such a first component as a registry host
    if host in ("docker.io", "index.docker.io") and ("." in first or first == "localhost"):
        host = "registry.invalid"  # see test_docker_hub_name_with_dotted_namespace_round_trips
    tag = draw(st.one_of(st.none(), _tag))
    digest = draw(st.one_of(st.none(), _hex.map(lambda h: "sha256:" + h)))
    text = (f"{host}/" if host else "") + path + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    return text, {"host": host, "path": path, "tag": tag, "digest": digest}


def test_generated_references_parse_to_their_parts() -> None:
    def body(item: tuple[str, dict]) -> None:
        text, parts = item
        ref = parse_reference(text)
        assert ref.repository.endswith(parts["path"])
        assert ref.tag == (parts["tag"] or (None if parts["digest"] else "latest"))
        assert ref.digest == parts["digest"]
        assert parse_reference(str(ref)) == ref
        # the hocker form of the same image names the same repository on the same registry
        if parts["host"] and ref.registry not in ("registry-1.docker.io",):
            same = resolve_reference(ref.repository + (f"@{ref.digest}" if ref.digest else ""), ref.tag,
                                     f"https://{ref.registry}/v2/")
            assert (same.registry, same.repository, same.tag, same.digest) == \
                   (ref.registry, ref.repository, ref.tag, ref.digest)

    run_property(N_REF, valid_references(), body)


_uri_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(["http://", "https://", "ftp://", "127.0.0.1", ":5000", ":", "/v2/", "/v1", "/",
                              "?q", "#f", "user:pw@", "[::1]", "[", "]", "docker.io", "x.invalid", "%2f", " ",
                              "\n", "..", "@"]), max_size=8).map("".join))


def _hocker_form_body(item: tuple[str, "str | None", str]) -> None:
    image, tag, uri = item
    try:
        scheme, host, _prefix = parse_registry_base(uri)
    except HockerError as exc:
        assert_own_error(exc)
    else:
        assert scheme in ("http", "https") and host and "/" not in host
    try:
        ref = resolve_reference(image, tag, uri)
    except HockerError as exc:
        assert_own_error(exc)
    else:
        assert ref.scheme in ("http", "https") and ref.scheme_given == ("://" in uri)
        assert ref.repository and (ref.tag or ref.digest)
        assert "//" not in ref.base_url[len(ref.scheme) + 3:]


_image_arg = st.one_of(st.text(max_size=40), _path, st.builds(str.__add__, _path, st.sampled_from(
    [":t", "@sha256:" + "a" * 64, "@sha256:../../etc/passwd", ":", "@"])))


def test_hocker_form_and_registry_uris_never_crash() -> None:
    """--registry URIs of every kind, square brackets (IPv6 hosts, broken ones) included."""
    run_property(N_REF, st.tuples(_image_arg, st.one_of(st.none(), st.text(max_size=20), _tag), _uri_text),
                 _hocker_form_body)


@pytest.mark.parametrize("uri", ["[", "http://[", "http://[]", "[::1"])
def test_registry_uri_with_bad_brackets_is_a_usage_error(uri: str) -> None:
    """Once a crash (urllib's ValueError escaped the --registry parser): the cases the property first found."""
    with pytest.raises(UsageError):
        parse_registry_base(uri)


def test_docker_hub_name_with_dotted_namespace_round_trips() -> None:
    ref = parse_reference("docker.io/my.org/app:1")
    assert parse_reference(str(ref)) == ref


def test_platform_strings_never_crash() -> None:
    def body(text: str) -> None:
        try:
            p = Platform.parse(text)
        except HockerError as exc:
            assert_own_error(exc)
        else:
            assert p.os and p.architecture and p == p.normalized()
            assert Platform.parse(str(p)) == p

    parts = st.sampled_from(["linux", "amd64", "arm64", "arm", "v8", "v7", "x86_64", "aarch64", "", "/", " ",
                             "windows", "LINUX"])
    run_property(N_REF, st.one_of(st.text(max_size=30), st.lists(parts, max_size=6).map("".join)), body)


# -------------------------------------------------------------------------------------------------------
# digests

def test_any_text_is_a_digest_or_usage_error() -> None:
    def body(text: str) -> None:
        try:
            d = parse_digest(text)
        except UsageError as exc:
            assert_own_error(exc)
            return
        assert d.startswith("sha256:") and len(d) == 71 and all(c in "0123456789abcdef" for c in d[7:])
        assert parse_digest(d) == d  # idempotent
        assert "/" not in d and ".." not in d  # safe in file names
        assert nix_base32_decode(to_nix_base32(d)).hex() == d[7:]
        assert to_sri(d).startswith("sha256-") and len(to_sri(d)) == 51

    hexish = st.text("0123456789abcdefABCDEFg:./ \n", max_size=72)
    forms = st.one_of(
        st.text(max_size=80), hexish, _hex, _hex.map(lambda h: "sha256:" + h),
        st.builds(lambda a, h: f"{a}:{h}", st.sampled_from(["sha512", "SHA256", "sha256 ", "", "md5"]), _hex),
        st.builds(lambda h, s: h[:s], _hex.map(lambda h: "sha256:" + h), st.integers(0, 80)),
        st.builds(lambda h, pad: pad + h + pad, _hex, st.sampled_from([" ", "\t", "\n", "\u00a0"])))
    run_property(N_DIGEST, forms, body)


def test_digest_verifier_accepts_exactly_the_named_bytes() -> None:
    def body(item: tuple[bytes, list[int], int | None, bool]) -> None:
        data, cuts, flip, declare_size = item
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        size = len(data) if declare_size else None
        chunks, last = [], 0
        for c in sorted(set(min(c, len(data)) for c in cuts)):
            chunks.append(data[last:c])
            last = c
        chunks.append(data[last:])
        body_bytes = [bytearray(c) for c in chunks]
        tampered = False
        if flip is not None and data:
            pos = flip % len(data)
            for c in body_bytes:
                if pos < len(c):
                    c[pos] ^= 0x40
                    tampered = True
                    break
                pos -= len(c)
        v = DigestVerifier(digest, size)
        for c in body_bytes:
            v.update(bytes(c))
        if tampered:
            with pytest.raises(VerificationError) as info:
                v.check()
            assert digest in str(info.value)
        else:
            v.check()

    run_property(N_DIGEST, st.tuples(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=6),
                                     st.one_of(st.none(), st.integers(0, 10_000)), st.booleans()), body)


# -------------------------------------------------------------------------------------------------------
# Nix base32

# (sha256 hex, Nix base32): checked against `nix hash to-base32` (test_nix_base32.py compares 200 more live)
KNOWN_VECTORS = [
    # sha256("")
    ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
     "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"),
    # sha256("abc")
    ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
     "1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s"),
    ("054abe38b1e6f863befa4258cbfaf127b1cc9440d2e2e349b15d22e676b591e7",
     "1rwinmvfc8jxn54y7qnj82acrc97y7xcnn22zaz67y76n4wbwjh5"),
    ("0" * 64, "0" * 52),
]


@pytest.mark.parametrize("hexdigest, b32", KNOWN_VECTORS)
def test_nix_base32_known_vectors(hexdigest: str, b32: str) -> None:
    assert to_nix_base32("sha256:" + hexdigest) == b32
    assert nix_base32(bytes.fromhex(hexdigest)) == b32
    assert nix_base32_decode(b32).hex() == hexdigest


def test_nix_base32_of_sha256_digests_is_52_chars_of_the_alphabet() -> None:
    def body(data: bytes) -> None:
        text = nix_base32(hashlib.sha256(data).digest())
        assert len(text) == 52 and set(text) <= set("0123456789abcdfghijklmnpqrsvwxyz")
        assert text[0] in "01"  # 256 bits in 260: the top digit holds one bit
        assert nix_base32_decode(text) == hashlib.sha256(data).digest()

    run_property(N_BASE32, st.binary(max_size=100), body)


_B32 = "0123456789abcdfghijklmnpqrsvwxyz"


def test_nix_base32_canonical_strings_decode_and_reencode() -> None:
    """Any string of the alphabet whose length is a valid encoding length and whose spare top bits are zero
    decodes, and encodes back to itself (the encoding is a bijection on canonical strings)."""
    def body(item: tuple[int, str]) -> None:
        nbytes, text = item
        length = (nbytes * 8 + 4) // 5
        text = (text * (length // max(len(text), 1) + 1))[:length] if text else "0" * length
        spare = length * 5 - nbytes * 8  # bits of the top digit beyond the byte string
        if length:
            top = _B32.index(text[0]) & ((1 << (5 - spare)) - 1)
            text = _B32[top] + text[1:]
        data = nix_base32_decode(text)
        assert len(data) == nbytes
        assert nix_base32(data) == text

    run_property(N_BASE32, st.tuples(st.integers(0, 64), st.text(_B32, max_size=110)), body)


def test_nix_base32_decode_of_any_text_is_bytes_or_usage_error() -> None:
    def body(text: str) -> None:
        try:
            data = nix_base32_decode(text)
        except UsageError as exc:
            assert_own_error(exc)
        else:
            assert nix_base32(data) == text

    run_property(N_BASE32, st.one_of(st.text(max_size=60), st.text(_B32, max_size=60)), body)


# -------------------------------------------------------------------------------------------------------
# credentials: files built line by line from hostile values, the environment, the whole resolution

_KEYS = ["BEARER_TOKEN", "USERNAME", "PASSWORD", "DOCKER_TOKEN", "DOCKER_USER", "DOCKER_PASS", "username",
         "export PASSWORD", "export\tDOCKER_USER", "#PASSWORD", " USERNAME ", "OTHER", ""]
_value_bytes = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b'"', b"''", b'"quoted"', b"a=b=c", b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\r",
                     b" spaced ", b"\xed\xa0\x80"]))
_line = st.builds(lambda k, sep, v: k.encode() + sep + v, st.sampled_from(_KEYS),
                  st.sampled_from([b"=", b" = ", b"", b"=="]), _value_bytes)
_file = st.builds(lambda bom, lines, nl: bom + nl.join(lines), st.sampled_from([b"", b"\xef\xbb\xbf", b"\xff\xfe"]),
                  st.lists(_line, max_size=8), st.sampled_from([b"\n", b"\r\n", b"\r", b"\x85", b"\x00"]))


def test_credentials_files_of_hostile_lines(tmp_path: Path) -> None:
    path = tmp_path / "creds"

    def body(data: bytes) -> None:
        path.write_bytes(data)
        try:
            creds = parse_credentials_file(str(path))
        except UsageError as exc:
            assert_own_error(exc)
            assert str(path) in str(exc)
        else:
            assert isinstance(creds, Credentials) and (creds.is_token or creds.is_basic)
            # repr and str show nothing of the secrets' values (a password that equals the user name is shown
            # as the user name, which is no leak: see support/leaks.py)
            assert_independent_of_secrets(outcome(lambda: creds, UsageError),
                                          outcome(lambda: mark_secrets(creds), UsageError), SECRET_FIELDS)

    run_property(N_CREDS, _file, body)


def test_environment_and_resolution_never_crash(tmp_path: Path) -> None:
    text = st.one_of(st.none(), st.text(max_size=12), st.sampled_from(["", "u", "p", "tok"]))

    def environment(env_user: str | None, env_pass: str | None, env_token: str | None) -> dict[str, str]:
        env = {k: v for k, v in (("DOCKER_USER", env_user), ("DOCKER_PASS", env_pass),
                                 ("DOCKER_TOKEN", env_token)) if v is not None}
        env.update({"HOME": str(tmp_path / "no-home"), "PATH": ""})
        return env

    def body(item: tuple) -> None:
        env_user, env_pass, env_token, user, password, token, registry = item
        env = environment(env_user, env_pass, env_token)
        try:
            found = from_environment(env)
        except UsageError as exc:
            assert_own_error(exc)
        else:
            assert found is None or found.is_token or found.is_basic
        try:
            creds = resolve(username=user, password=password, token=token, credentials_file=None,
                            registry_host=registry, env=env)
        except UsageError as exc:
            assert_own_error(exc)
        else:
            assert creds is None or creds.is_token or creds.is_basic
        # Neither the credentials nor a message depend on a secret's value: the same calls with every set secret
        # replaced by a marker give the same text, without the markers. (A short secret may well occur in an
        # honest message, e.g. "--us" in "--username is set but --password is not": see support/leaks.py.)
        secrets = ("--password", "--token", "DOCKER_PASS", "DOCKER_TOKEN")
        m_password, m_token, m_pass, m_tok = (marked(v, n) for v, n in zip((password, token, env_pass, env_token),
                                                                           secrets))
        m_env = environment(env_user, m_pass, m_tok)
        assert_independent_of_secrets(outcome(lambda: from_environment(env), UsageError),
                                      outcome(lambda: from_environment(m_env), UsageError), secrets)
        assert_independent_of_secrets(
            outcome(lambda: resolve(username=user, password=password, token=token, credentials_file=None,
                                    registry_host=registry, env=env), UsageError),
            outcome(lambda: resolve(username=user, password=m_password, token=m_token, credentials_file=None,
                                    registry_host=registry, env=m_env), UsageError), secrets)

    run_property(N_CREDS, st.tuples(text, text, text, text, text, text,
                                    st.one_of(st.text(max_size=20), _host)), body)


def test_secret_that_equals_public_text_is_no_leak(tmp_path: Path) -> None:
    """The two examples the old substring checks failed on (both honest), and a real leak still caught."""
    path = tmp_path / "creds"
    path.write_bytes(b"USERNAME=!  !\nPASSWORD=!  !")  # the password is the user name, which repr shows
    creds = parse_credentials_file(str(path))
    assert "!  !" in repr(creds)
    assert_independent_of_secrets(outcome(lambda: creds, UsageError),
                                  outcome(lambda: mark_secrets(creds), UsageError), SECRET_FIELDS)

    def lone_user(env_pass: str) -> Callable[[], Any]:
        return lambda: resolve(username="u", password=None, token=None, credentials_file=None,
                               registry_host="r.invalid", env={"DOCKER_PASS": env_pass})

    real = outcome(lone_user("--us"), UsageError)
    assert "--us" in real[2]  # "command line: --username is set but --password is not"
    assert_independent_of_secrets(real, outcome(lone_user(marked("--us", "DOCKER_PASS")), UsageError),
                                  ("DOCKER_PASS",))

    def leaky(secret: str) -> Callable[[], str]:
        return lambda: f"password {secret!r} rejected"

    with pytest.raises(AssertionError):
        assert_independent_of_secrets(outcome(leaky("hunter2"), UsageError),
                                      outcome(leaky(marked("hunter2", "password")), UsageError), ("password",))


# -------------------------------------------------------------------------------------------------------
# manifests: JSON-ish documents from st.recursive, and mutated real manifests

H = "sha256:" + "ab" * 32
_digests = st.one_of(_hex.map(lambda h: "sha256:" + h), st.sampled_from([
    "sha256:../../etc/passwd", "sha256:" + "A" * 64, "sha512:" + "a" * 128, "sha256:" + "a" * 63, "",
    "sha256:", "/etc/passwd", "sha256:" + "a" * 64 + "/..", 7]))
_sizes = st.one_of(st.integers(-5, 5), st.integers(-(1 << 70), 1 << 70), st.sampled_from(
    [MAX_BLOB_BYTES, MAX_BLOB_BYTES + 1, 64 * 1024 * 1024 + 1, True, 1.5, "12", None]))
_media = st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST, OCI_INDEX, DOCKER_LIST,
                          "application/vnd.docker.distribution.manifest.v1+prettyjws",
                          "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                          "application/vnd.oci.image.layer.v1.tar+gzip", "application/vnd.in-toto+json",
                          "", "text/html", 3])
_platform = st.fixed_dictionaries({}, optional={
    "os": st.sampled_from(["linux", "unknown", "windows", "", 1, None]),
    "architecture": st.sampled_from(["amd64", "arm64", "arm", "unknown", "", [], None]),
    "variant": st.sampled_from(["v8", "v7", "", None, {}])})
_descriptor = st.fixed_dictionaries({}, optional={
    "mediaType": _media, "digest": _digests, "size": _sizes, "platform": _platform,
    "annotations": st.one_of(st.dictionaries(st.sampled_from(["vnd.docker.reference.type", "x"]),
                                             st.sampled_from(["attestation-manifest", "", 1, None])), st.just([])),
    "urls": st.one_of(st.lists(st.sampled_from(["https://example.invalid/x", 1, None])), st.just("x"))})
_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                  _digests, _media, _sizes)
_json = st.recursive(_leaf | _descriptor, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "manifests", "digest", "size", "platform",
                     "annotations", "urls", "subject", "fsLayers", "signatures", "x"]), inner, max_size=5),
                     max_leaves=12)
_document = st.fixed_dictionaries({}, optional={
    "schemaVersion": st.sampled_from([2, 1, 2.0, "2", 3, None, True, 0]),
    "mediaType": _media,
    "config": st.one_of(_descriptor, _json),
    "layers": st.one_of(st.lists(_descriptor, max_size=4), _json),
    "manifests": st.one_of(st.lists(_descriptor, max_size=4), _json),
    "fsLayers": _json, "signatures": _json, "subject": _descriptor})


def check_parse(raw: bytes, content_type: str | None = None) -> None:
    """parse_manifest then platform selection: a usable result or ManifestError, nothing else."""
    try:
        parsed = parse_manifest(raw, H, content_type)
    except ManifestError as exc:
        assert_own_error(exc)
        return
    assert parsed.raw is raw and parsed.digest == H
    if isinstance(parsed, ImageManifest):
        assert parsed.media_type in MANIFEST_TYPES
        for d in (parsed.config, *parsed.layers):
            assert parse_digest(d.digest) == d.digest and 0 <= d.size <= MAX_BLOB_BYTES
        assert parsed.config.size <= 64 * 1024 * 1024
        return
    assert isinstance(parsed, ImageIndex) and parsed.media_type in INDEX_TYPES
    for d in parsed.manifests:
        assert parse_digest(d.digest) == d.digest and 0 <= d.size <= MAX_BLOB_BYTES
    for wanted in (Platform("linux", "amd64"), Platform("linux", "arm64", "v8"), Platform("linux", "arm")):
        try:
            chosen = select_platform(parsed, wanted)
        except ManifestError as exc:
            assert_own_error(exc)
        else:
            assert chosen in parsed.manifests and not chosen.is_attestation
            assert chosen.media_type in MANIFEST_TYPES + INDEX_TYPES


def test_manifest_documents_from_st_recursive() -> None:
    def body(item: tuple[Any, str | None]) -> None:
        doc, content_type = item
        check_parse(json.dumps(doc).encode(), content_type)

    ctype = st.one_of(st.none(), _media.filter(lambda m: isinstance(m, str)),
                      st.sampled_from(["application/json; charset=utf-8", "text/plain"]))
    run_property(N_MANIFEST, st.tuples(st.one_of(_document, _json), ctype), body)


def _real(media_type: str, layer_type: str, n_layers: int) -> bytes:
    layers = [{"mediaType": layer_type, "size": 1000 + i, "digest": "sha256:" + hashlib.sha256(bytes([i])).hexdigest()}
              for i in range(n_layers)]
    config_type = ("application/vnd.oci.image.config.v1+json" if media_type == OCI_MANIFEST
                   else "application/vnd.docker.container.image.v1+json")
    return json.dumps({"schemaVersion": 2, "mediaType": media_type,
                       "config": {"mediaType": config_type, "size": 1469, "digest": "sha256:" + "c" * 64},
                       "layers": layers, "annotations": {"org.opencontainers.image.created": "2024-01-01"}},
                      indent=3).encode()


# What registries really serve: docker schema2 (indent 3, as docker pushes), OCI, a docker list with an
# attestation (buildx), an OCI index.
REAL_DOCUMENTS = [
    _real(DOCKER_MANIFEST, "application/vnd.docker.image.rootfs.diff.tar.gzip", 3),
    _real(OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+gzip", 2),
    json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "size": 528, "digest": "sha256:" + "1" * 64,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": DOCKER_MANIFEST, "size": 528, "digest": "sha256:" + "2" * 64,
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}}]}, indent=3).encode(),
    json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "size": 1, "digest": "sha256:" + "3" * 64,
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": OCI_MANIFEST, "size": 566, "digest": "sha256:" + "4" * 64,
         "annotations": {"vnd.docker.reference.digest": "sha256:" + "3" * 64,
                         "vnd.docker.reference.type": "attestation-manifest"},
         "platform": {"architecture": "unknown", "os": "unknown"}}]}).encode(),
]


@st.composite
def mutated_manifests(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(REAL_DOCUMENTS)))
    kind = draw(st.sampled_from(["bytes", "json", "truncate"]))
    if kind == "truncate":
        return bytes(raw[:draw(st.integers(0, len(raw)))])
    if kind == "bytes":
        for _ in range(draw(st.integers(1, 6))):
            op = draw(st.sampled_from(["flip", "delete", "insert"]))
            pos = draw(st.integers(0, max(len(raw) - 1, 0)))
            if op == "flip" and raw:
                raw[pos] ^= 1 << draw(st.integers(0, 7))
            elif op == "delete" and raw:
                del raw[pos:pos + draw(st.integers(1, 8))]
            else:
                raw[pos:pos] = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(
                    [b"{", b"[", b'"', b"\\u0000", b"\xff", b"-1", b"1e999", b"NaN"]))
        return bytes(raw)
    # JSON level: replace, delete or insert values anywhere in the tree
    doc = json.loads(bytes(raw))
    for _ in range(draw(st.integers(1, 4))):
        node, target = doc, None
        while True:
            children = list(node.items()) if isinstance(node, dict) else list(enumerate(node)) \
                if isinstance(node, list) else []
            if not children or (target is not None and draw(st.integers(0, 3)) == 0):
                break
            key, child = draw(st.sampled_from(children))
            target = (node, key)
            if not isinstance(child, (dict, list)) or draw(st.booleans()):
                break
            node = child
        if target is None:
            continue
        parent, key = target
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if action == "delete":
            del parent[key]
        elif action == "replace":
            parent[key] = draw(_json)
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["mediaType", "size", "digest", "platform", "schemaVersion", "urls"]))] = \
                draw(_leaf)
        else:
            parent.append(draw(_descriptor))
    return json.dumps(doc).encode()


def test_real_manifests_parse() -> None:
    for raw in REAL_DOCUMENTS:
        parsed = parse_manifest(raw, H)
        assert isinstance(parsed, (ImageManifest, ImageIndex))
    idx = parse_manifest(REAL_DOCUMENTS[3], H)
    assert isinstance(idx, ImageIndex)
    assert select_platform(idx, Platform("linux", "arm64")).digest == "sha256:" + "3" * 64


def test_mutated_real_manifests() -> None:
    run_property(N_MUTATED, mutated_manifests(), check_parse)


def test_arbitrary_bytes_as_manifest() -> None:
    run_property(N_MUTATED, st.one_of(st.binary(max_size=200), st.text(max_size=200).map(
        lambda t: t.encode("utf-8", "surrogatepass"))), check_parse)


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 50_000, b'{"schemaVersion":2,"layers":'
                                 + b"[" * 100_000])
def test_deeply_nested_manifest_is_a_manifest_error(raw: bytes) -> None:
    with pytest.raises(ManifestError):
        parse_manifest(raw, H)
