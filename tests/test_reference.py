"""Reference parsing: docker's normalisation rules and hocker's --registry form."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hocker_fetch.errors import UsageError
from hocker_fetch.reference import parse_reference, parse_registry_base, resolve_reference

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize("text, registry, repository, tag, digest", [
    ("debian", "registry-1.docker.io", "library/debian", "latest", None),
    ("debian:bookworm", "registry-1.docker.io", "library/debian", "bookworm", None),
    ("docker.io/debian", "registry-1.docker.io", "library/debian", "latest", None),
    ("index.docker.io/library/debian:12", "registry-1.docker.io", "library/debian", "12", None),
    ("user/app:1.0", "registry-1.docker.io", "user/app", "1.0", None),
    ("ghcr.io/owner/img:tag", "ghcr.io", "owner/img", "tag", None),
    ("localhost/img", "localhost", "img", "latest", None),
    ("localhost:5000/a/b/c@" + D, "localhost:5000", "a/b/c", None, D),
    ("name:tag@" + D, "registry-1.docker.io", "library/name", "tag", D),
    ("127.0.0.1:5000/x/y:v1", "127.0.0.1:5000", "x/y", "v1", None),
    ("[::1]:5000/x", "[::1]:5000", "x", "latest", None),
    ("foo_bar/a__b/c-d.e", "registry-1.docker.io", "foo_bar/a__b/c-d.e", "latest", None),
])
def test_docker_normalisation(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


def test_familiar_names():
    assert str(parse_reference("debian:bookworm")) == "debian:bookworm"
    assert parse_reference("user/app").name == "user/app"
    assert parse_reference("127.0.0.1:5000/a/b:t").name == "127.0.0.1:5000/a/b"
    assert parse_reference("x@" + D).reference == D
    assert parse_reference("x:t@" + D).reference == D  # the digest wins for fetching


@pytest.mark.parametrize("bad", [
    "", " ", "Debian", "a//b", "a/", "/a", "x:", "x:-bad", "x@sha256:abc", "x@md5:" + "a" * 32,
    "x@sha256:../../etc/passwd", "a b", "-x", "x/" + "a" * 300, "ho$t.io/x", "x:" + "t" * 129,
])
def test_malformed_references_are_usage_errors(bad):
    with pytest.raises(UsageError) as info:
        parse_reference(bad)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("uri, scheme, host", [
    ("https://registry-1.docker.io/v2/", "https", "registry-1.docker.io"),
    ("https://index.docker.io", "https", "registry-1.docker.io"),
    ("http://127.0.0.1:5000", "http", "127.0.0.1:5000"),
    ("http://127.0.0.1:5000/v2", "http", "127.0.0.1:5000"),
    ("quay.io", "https", "quay.io"),
])
def test_registry_uri(uri, scheme, host):
    assert parse_registry_base(uri) == (scheme, host, "")  # none of these has a path prefix


@pytest.mark.parametrize("bad", ["ftp://x", "https://x/v1/", "https://", "https://u:p@x", "http://x?y=1"])
def test_bad_registry_uri(bad):
    with pytest.raises(UsageError):
        parse_registry_base(bad)


def test_hocker_form():
    ref = resolve_reference("library/debian", "jessie", "http://127.0.0.1:5000")
    assert (ref.base_url, ref.repository, ref.tag) == ("http://127.0.0.1:5000", "library/debian", "jessie")
    assert resolve_reference("a/b/c", None, "http://127.0.0.1:5000").tag == "latest"
    # hocker users typed library/ by hand; a bare name on Docker Hub gets it too
    assert resolve_reference("debian", "8", "https://registry-1.docker.io/v2/").repository == "library/debian"
    # other registries keep one-component names as they are
    assert resolve_reference("debian", "8", "http://127.0.0.1:5000").repository == "debian"


def test_tag_argument():
    assert resolve_reference("debian", "jessie").tag == "jessie"
    assert resolve_reference("debian:jessie", "jessie").tag == "jessie"
    with pytest.raises(UsageError, match="tag given twice"):
        resolve_reference("debian:8", "9")
    with pytest.raises(UsageError):
        resolve_reference("debian", "bad tag")
    for unicode_tag in ("débian", "١٢"):  # docker's \w is ASCII: a registry URL or docker load would refuse these
        with pytest.raises(UsageError):
            resolve_reference("debian", unicode_tag)
        with pytest.raises(UsageError):
            parse_reference(f"debian:{unicode_tag}")


@settings(max_examples=3000, deadline=None)
@given(st.text(max_size=120))
def test_arbitrary_text_gives_reference_or_usage_error(text):
    try:
        ref = parse_reference(text)
    except UsageError:
        return
    assert ref.repository and (ref.tag or ref.digest)
    # a parsed reference prints as something that parses to the same thing
    assert parse_reference(str(ref)) == ref


def test_default_repo_tags_are_what_docker_prints():
    from hocker_fetch.image import default_repo_tags

    assert default_repo_tags(parse_reference("debian:bookworm")) == ["debian:bookworm"]
    assert default_repo_tags(parse_reference("docker.io/user/app:1")) == ["user/app:1"]
    assert default_repo_tags(parse_reference("localhost:5000/a/b/c:t")) == ["localhost:5000/a/b/c:t"]
    assert default_repo_tags(resolve_reference("library/debian", "jessie", "https://registry-1.docker.io/v2/")) \
        == ["debian:jessie"]
    assert default_repo_tags(parse_reference("x@" + D)) == []  # a bare digest has no tag to give
