"""WWW-Authenticate parsing and the plain-HTTP credential guard."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hocker_fetch.auth import parse_challenges
from hocker_fetch.errors import UsageError
from hocker_fetch.transport import check_transport, is_loopback


def test_bearer_challenge():
    (c,) = parse_challenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                            'scope="repository:library/debian:pull"')
    assert c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                        "scope": "repository:library/debian:pull"}


def test_error_and_multiple_challenges():
    cs = parse_challenges('Bearer realm="http://127.0.0.1:1/token",error="insufficient_scope", Basic realm="x"')
    assert [c.scheme for c in cs] == ["bearer", "basic"]
    assert cs[0].params["error"] == "insufficient_scope"


def test_basic_challenge_and_garbage():
    assert parse_challenges('Basic realm="Registry Realm"')[0].scheme == "basic"
    assert parse_challenges("") == []


@pytest.mark.parametrize("host, loop", [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                        ("::1", True), ("[::1]", True), ("10.0.0.1", False),
                                        ("example.com", False)])
def test_loopback(host, loop):
    assert is_loopback(host) is loop


def test_no_credentials_in_clear_text_to_remote_hosts():
    check_transport("http://127.0.0.1:5000/v2/", insecure=False)
    check_transport("https://example.com/v2/", insecure=False)
    check_transport("http://example.com/v2/", insecure=True)
    with pytest.raises(UsageError, match="plain HTTP"):
        check_transport("http://example.com/v2/", insecure=False)



@settings(max_examples=2000, deadline=None)
@given(st.text(max_size=200))
def test_any_header_parses_without_exceptions(header):
    for c in parse_challenges(header):
        assert c.scheme and c.scheme == c.scheme.lower()
