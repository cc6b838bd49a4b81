"""Tests for hocker_fetch.credentials: files, environment, docker/podman config, real credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.leaks import SECRET_FIELDS, assert_independent_of_secrets, mark_secrets, outcome

from hocker_fetch.auth import resolve_credentials as resolve
from hocker_fetch.credentials import Credentials, from_environment, parse_credentials_file
from hocker_fetch.dockerconfig import DOCKER_HUB_SERVER_URL, config_locations, from_docker_config
from hocker_fetch.errors import AuthError, UsageError

SECRET = "s3cr3t-Pa55=word"
TOKEN = "tok.en-XYZ.987"


def write(path: Path, text: str | bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def assert_no_secret(message: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in message, f"secret leaked into {message!r}"
    assert "\n" not in message


# --------------------------------------------------------------------------------------------------------
# Credentials


def test_repr_and_str_mask_every_secret() -> None:
    creds = Credentials(username="bob", password=SECRET, token=TOKEN, identity_token="idtok-777", source="x")
    for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}", repr([creds])):
        assert_no_secret(text, SECRET, TOKEN, "idtok-777")
    assert "bob" in repr(creds) and "***" in repr(creds)
    assert "password=None" in repr(Credentials(username="bob"))


def test_kind_helpers() -> None:
    basic = Credentials(username="u", password="p")
    assert basic.is_basic and not basic.is_token and not basic.is_identity_token
    assert "username 'u' with password" in str(basic)
    tok = Credentials(token="t", source="--token")
    assert tok.is_token and not tok.is_basic
    assert str(tok) == "bearer token (from --token)"
    ident = Credentials(identity_token="r")
    assert ident.is_identity_token and not ident.is_basic and not ident.is_token
    assert not Credentials(username="u").is_basic
    assert not Credentials(username="u", password="").is_basic


def test_frozen() -> None:
    creds = Credentials(username="u", password="p")
    with pytest.raises(AttributeError):
        creds.password = "x"  # type: ignore[misc]


# --------------------------------------------------------------------------------------------------------
# credentials file


def test_hocker_file_token(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt", f"BEARER_TOKEN={TOKEN}\n")
    creds = parse_credentials_file(path)
    assert creds == Credentials(token=TOKEN, source=f"credentials file {path}")
    assert creds.is_token


def test_hocker_file_basic(tmp_path: Path) -> None:
    path = write(tmp_path / "c.txt", f"USERNAME=alice\nPASSWORD={SECRET}\n")
    creds = parse_credentials_file(path)
    assert (creds.username, creds.password, creds.token) == ("alice", SECRET, None)
    assert creds.source == f"credentials file {path}"


def test_nixpkgs_file_basic_and_token(tmp_path: Path) -> None:
    basic = parse_credentials_file(write(tmp_path / "a", "DOCKER_USER=alice\nDOCKER_PASS=pw\n"))
    assert (basic.username, basic.password) == ("alice", "pw")
    token = parse_credentials_file(write(tmp_path / "b", f"DOCKER_TOKEN={TOKEN}"))
    assert token.token == TOKEN and token.username is None


def test_comments_crlf_quotes_and_equals(tmp_path: Path) -> None:
    text = (
        "# my registry\r\n"
        "\r\n"
        "   # indented comment\r\n"
        '  USERNAME = "alice smith"  \r\n'
        "PASSWORD='a=b==c#d'\r\n"
        "SOMETHING_ELSE=ignored\r\n"
    )
    creds = parse_credentials_file(write(tmp_path / "c", text.encode()))
    assert creds.username == "alice smith"
    assert creds.password == "a=b==c#d"


def test_bom_export_lowercase_and_last_line_wins(tmp_path: Path) -> None:
    text = "\ufeffexport docker_user=first\nDOCKER_USER=second\nexport DOCKER_PASS=pw"
    creds = parse_credentials_file(write(tmp_path / "c", text.encode("utf-8")))
    assert (creds.username, creds.password) == ("second", "pw")


def test_unmatched_quote_is_kept(tmp_path: Path) -> None:
    creds = parse_credentials_file(write(tmp_path / "c", "BEARER_TOKEN=\"abc\n"))
    assert creds.token == '"abc'


def test_token_beats_pair_in_file(tmp_path: Path) -> None:
    creds = parse_credentials_file(write(tmp_path / "c", f"USERNAME=u\nPASSWORD=p\nBEARER_TOKEN={TOKEN}\n"))
    assert creds.token == TOKEN and creds.username is None and creds.password is None


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.txt")
    with pytest.raises(UsageError) as info:
        parse_credentials_file(path)
    message = str(info.value)
    assert path in message and "no such file" in message
    assert "BEARER_TOKEN" in message and "DOCKER_USER" in message
    assert info.value.exit_code == 2


def test_directory_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a directory"):
        parse_credentials_file(str(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "c", f"PASSWORD={SECRET}")
    os.chmod(path, 0)
    with pytest.raises(UsageError, match="cannot read"):
        parse_credentials_file(path)


def test_os_error_is_usage_error_even_as_root(tmp_path: Path) -> None:
    # a path through a regular file fails with ENOTDIR, which root cannot bypass
    write(tmp_path / "plainfile", "x")
    path = str(tmp_path / "plainfile" / "creds.txt")
    with pytest.raises(UsageError) as info:
        parse_credentials_file(path)
    assert "cannot read (Not a directory)" in str(info.value) and path in str(info.value)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("USERNAME=alice\n", "USERNAME is set but PASSWORD is not"),
        (f"PASSWORD={SECRET}\n", "PASSWORD is set but USERNAME is not"),
        ("DOCKER_USER=alice\nDOCKER_PASS=\n", "DOCKER_USER is set but DOCKER_PASS is not"),
        (f"DOCKER_PASS={SECRET}\nBEARER_TOKEN={TOKEN}\n", "DOCKER_PASS is set but DOCKER_USER is not"),
        ("", "no usable credentials"),
        ("# only a comment\n\n", "no usable credentials"),
        (f"{SECRET}\n", "no usable credentials"),
        ("BEARER_TOKEN=\nTOKEN=x\n", "no usable credentials"),
        (b"USERNAME=\xff\xfe\nPASSWORD=" + SECRET.encode(), "not UTF-8"),
    ],
)
def test_bad_files_name_the_path_and_hide_secrets(tmp_path: Path, text: str | bytes, problem: str) -> None:
    path = write(tmp_path / "creds.txt", text)
    with pytest.raises(UsageError) as info:
        parse_credentials_file(path)
    message = str(info.value)
    assert problem in message
    assert path in message
    assert "BEARER_TOKEN=" in message  # the accepted keys are listed
    assert_no_secret(message, SECRET, TOKEN, "alice")
    # no chained exception (a UnicodeDecodeError carries the file's bytes) would print under this one
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_path_with_newline_stays_one_line(tmp_path: Path) -> None:
    path = str(tmp_path / "a\nb")
    with pytest.raises(UsageError) as info:
        parse_credentials_file(path)
    assert "\n" not in str(info.value) and "a\\nb" in str(info.value)


_LINE = st.text(st.characters(blacklist_categories=("Cs",),
                              blacklist_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), max_size=40)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300), st.lists(st.sampled_from([
    "BEARER_TOKEN=", "USERNAME=", "PASSWORD=", "DOCKER_TOKEN=", "DOCKER_USER=", "DOCKER_PASS=",
    "#", "export ", "\"", "'", "=", "\r\n", "\n", " ", "x", "\ufeff", "\x00", "\udcff",
]), max_size=30).map("".join)))
def test_property_any_file_gives_credentials_or_usage_error(tmp_path: Path, content: str | bytes) -> None:
    data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
    path = tmp_path / "prop.txt"
    path.write_bytes(data)
    try:
        creds = parse_credentials_file(str(path))
    except UsageError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
    else:
        assert isinstance(creds, Credentials)
        assert creds.is_token or creds.is_basic


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(user=_LINE, password=_LINE)
def test_property_round_trip_and_no_leak(tmp_path: Path, user: str, password: str) -> None:
    path = tmp_path / "rt.txt"
    secret = "ZQ" + password + "QZ"  # markers so it cannot be a substring of the fixed message text
    path.write_text(f"USERNAME=u{user}u\nPASSWORD={secret}\n", encoding="utf-8")
    creds = parse_credentials_file(str(path))
    assert (creds.username, creds.password) == (f"u{user}u".strip(), secret)
    # not `secret not in repr(creds)`: the user name may contain "ZQ...QZ" too, and is shown (support/leaks.py)
    assert_independent_of_secrets(outcome(lambda: creds, UsageError),
                                  outcome(lambda: mark_secrets(creds), UsageError), SECRET_FIELDS)
    path.write_text(f"PASSWORD={secret}\n", encoding="utf-8")
    with pytest.raises(UsageError) as info:
        parse_credentials_file(str(path))
    assert secret.strip() not in str(info.value)


# --------------------------------------------------------------------------------------------------------
# environment


def test_env_token_beats_pair() -> None:
    creds = from_environment({"DOCKER_TOKEN": TOKEN, "DOCKER_USER": "u", "DOCKER_PASS": "p"})
    assert creds == Credentials(token=TOKEN, source="environment DOCKER_TOKEN")


def test_env_pair() -> None:
    creds = from_environment({"DOCKER_USER": "u", "DOCKER_PASS": SECRET})
    assert creds == Credentials(username="u", password=SECRET, source="environment DOCKER_USER/DOCKER_PASS")


def test_env_empty_strings_are_unset() -> None:
    # exactly what a Nix builder sees when the impure variables are not set
    assert from_environment({"DOCKER_TOKEN": "", "DOCKER_USER": "", "DOCKER_PASS": ""}) is None
    assert from_environment({}) is None
    creds = from_environment({"DOCKER_TOKEN": "", "DOCKER_USER": "u", "DOCKER_PASS": "p"})
    assert creds is not None and creds.is_basic


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"DOCKER_USER": "u", "DOCKER_PASS": ""}, "DOCKER_USER is set but DOCKER_PASS is not"),
        ({"DOCKER_PASS": SECRET}, "DOCKER_PASS is set but DOCKER_USER is not"),
    ],
)
def test_env_half_pair_is_usage_error(env: dict[str, str], expected: str) -> None:
    with pytest.raises(UsageError) as info:
        from_environment(env)
    assert expected in str(info.value)
    assert_no_secret(str(info.value), SECRET)


# --------------------------------------------------------------------------------------------------------
# docker / podman config: locations and keys


def config(path: Path, data: object) -> Path:
    write(path, json.dumps(data))
    return path


def inline(user: str, password: str) -> dict[str, str]:
    return {"auth": b64(f"{user}:{password}")}


def test_config_locations_order(tmp_path: Path) -> None:
    env = {
        "REGISTRY_AUTH_FILE": "/a/auth.json",
        "XDG_RUNTIME_DIR": "/run/user/1",
        "DOCKER_CONFIG": "/d",
        "HOME": "/h",
    }
    assert config_locations(env) == [
        "/a/auth.json",
        "/run/user/1/containers/auth.json",
        "/d/config.json",
        "/h/.docker/config.json",
    ]
    assert config_locations({"HOME": "", "DOCKER_CONFIG": ""}) == []


@pytest.mark.parametrize("location", ["REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG", "HOME"])
def test_each_location_is_read(tmp_path: Path, location: str) -> None:
    paths = {
        "REGISTRY_AUTH_FILE": tmp_path / "custom" / "my-auth.json",
        "XDG_RUNTIME_DIR": tmp_path / "run" / "containers" / "auth.json",
        "DOCKER_CONFIG": tmp_path / "dc" / "config.json",
        "HOME": tmp_path / "home" / ".docker" / "config.json",
    }
    values = {
        "REGISTRY_AUTH_FILE": str(paths["REGISTRY_AUTH_FILE"]),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "DOCKER_CONFIG": str(tmp_path / "dc"),
        "HOME": str(tmp_path / "home"),
    }
    path = config(paths[location], {"auths": {"reg.example:5000": inline("alice", SECRET)}})
    creds = from_docker_config("reg.example:5000", {location: values[location]})
    assert creds is not None
    assert (creds.username, creds.password) == ("alice", SECRET)
    assert creds.source == f"docker config {path}"


def test_locations_precedence_and_fall_through(tmp_path: Path) -> None:
    env = {
        "REGISTRY_AUTH_FILE": str(tmp_path / "first.json"),
        "XDG_RUNTIME_DIR": str(tmp_path / "run"),
        "DOCKER_CONFIG": str(tmp_path / "dc"),
        "HOME": str(tmp_path / "home"),
    }
    config(tmp_path / "first.json", {"auths": {"other.example": inline("x", "y")}})
    config(tmp_path / "run" / "containers" / "auth.json", {"auths": {"reg.example": inline("podman", "p1")}})
    config(tmp_path / "dc" / "config.json", {"auths": {"reg.example": inline("docker", "p2")}})
    config(tmp_path / "home" / ".docker" / "config.json", {"auths": {"reg.example": inline("home", "p3")}})
    # the first file has nothing for reg.example, the second has: it wins over the later ones
    assert from_docker_config("reg.example", env).username == "podman"  # type: ignore[union-attr]
    assert from_docker_config("other.example", env).username == "x"  # type: ignore[union-attr]
    # only the last file knows this one
    config(tmp_path / "home" / ".docker" / "config.json", {"auths": {"late.example": inline("home", "p3")}})
    assert from_docker_config("late.example", env).username == "home"  # type: ignore[union-attr]
    assert from_docker_config("unknown.example", env) is None


def test_no_config_anywhere(tmp_path: Path) -> None:
    assert from_docker_config("reg.example", {"HOME": str(tmp_path)}) is None
    assert from_docker_config("reg.example", {}) is None
    # a Nix builder's environment
    assert from_docker_config("reg.example", {"HOME": "/homeless-shelter", "PATH": "/path-not-set"}) is None


@pytest.mark.parametrize(
    "key",
    [
        "reg.example:5000",
        "https://reg.example:5000",
        "http://reg.example:5000",
        "https://reg.example:5000/",
        "https://reg.example:5000/v1/",
        "https://reg.example:5000/v2/",
        "reg.example:5000/v2",
        "REG.Example:5000",
    ],
)
def test_key_forms_that_match(tmp_path: Path, key: str) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {key: inline("alice", SECRET)}})
    creds = from_docker_config("reg.example:5000", {"HOME": str(tmp_path)})
    assert creds is not None and creds.username == "alice"


@pytest.mark.parametrize(
    "key", ["reg.example", "reg.example:50001", "https://reg.example:500", "other.example:5000", "xreg.example:5000"]
)
def test_key_forms_that_do_not_match(tmp_path: Path, key: str) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {key: inline("alice", SECRET)}})
    assert from_docker_config("reg.example:5000", {"HOME": str(tmp_path)}) is None


@pytest.mark.parametrize("host", ["registry-1.docker.io", "docker.io", "index.docker.io", "https://registry-1.docker.io/v2/"])
@pytest.mark.parametrize("key", [DOCKER_HUB_SERVER_URL, "docker.io", "index.docker.io", "https://index.docker.io/v1"])
def test_docker_hub_keys(tmp_path: Path, host: str, key: str) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {key: inline("hubuser", SECRET)}})
    creds = from_docker_config(host, {"HOME": str(tmp_path)})
    assert creds is not None and creds.username == "hubuser"


def test_docker_hub_key_does_not_leak_to_other_registries(tmp_path: Path) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {DOCKER_HUB_SERVER_URL: inline("hubuser", SECRET)}})
    assert from_docker_config("ghcr.io", {"HOME": str(tmp_path)}) is None


def test_best_key_wins(tmp_path: Path) -> None:
    auths = {
        "reg.example/some-org": inline("scoped", "p0"),
        "https://reg.example/v2/": inline("versioned", "p1"),
        "reg.example": inline("exact", "p2"),
    }
    config(tmp_path / ".docker" / "config.json", {"auths": auths})
    assert from_docker_config("reg.example", {"HOME": str(tmp_path)}).username == "exact"  # type: ignore[union-attr]
    del auths["reg.example"]
    config(tmp_path / ".docker" / "config.json", {"auths": auths})
    assert from_docker_config("reg.example", {"HOME": str(tmp_path)}).username == "versioned"  # type: ignore[union-attr]

    hub = {"docker.io": inline("short", "p"), DOCKER_HUB_SERVER_URL: inline("canonical", "p")}
    config(tmp_path / ".docker" / "config.json", {"auths": hub})
    assert from_docker_config("registry-1.docker.io", {"HOME": str(tmp_path)}).username == "canonical"  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------------------
# docker config: entry forms


def test_auth_base64_password_with_colon(tmp_path: Path) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {"r.example": {"auth": b64("bob:pa:ss")}}})
    creds = from_docker_config("r.example", {"HOME": str(tmp_path)})
    assert (creds.username, creds.password) == ("bob", "pa:ss")  # type: ignore[union-attr]


def test_auth_without_padding(tmp_path: Path) -> None:
    encoded = b64("bo:pw").rstrip("=")
    assert len(encoded) % 4  # really unpadded
    config(tmp_path / ".docker" / "config.json", {"auths": {"r.example": {"auth": encoded}}})
    creds = from_docker_config("r.example", {"HOME": str(tmp_path)})
    assert (creds.username, creds.password) == ("bo", "pw")  # type: ignore[union-attr]


def test_username_password_fields(tmp_path: Path) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {"r.example": {"username": "u", "password": SECRET}}})
    creds = from_docker_config("r.example", {"HOME": str(tmp_path)})
    assert (creds.username, creds.password) == ("u", SECRET)  # type: ignore[union-attr]


def test_identitytoken(tmp_path: Path) -> None:
    entry = {"auth": b64("<token>:"), "identitytoken": "refresh-abc"}
    config(tmp_path / ".docker" / "config.json", {"auths": {"r.example": entry}})
    creds = from_docker_config("r.example", {"HOME": str(tmp_path)})
    assert creds is not None
    assert creds.identity_token == "refresh-abc" and creds.is_identity_token
    assert creds.token is None and not creds.is_basic
    assert "refresh-abc" not in repr(creds)


def test_registrytoken(tmp_path: Path) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {"r.example": {"registrytoken": TOKEN}}})
    creds = from_docker_config("r.example", {"HOME": str(tmp_path)})
    assert creds is not None and creds.token == TOKEN and creds.is_token


def test_empty_entry_and_empty_file_fall_through(tmp_path: Path) -> None:
    config(tmp_path / "a.json", {"auths": {"r.example": {}}})
    write(tmp_path / "dc" / "config.json", "  \n")
    config(tmp_path / ".docker" / "config.json", {"auths": {"r.example": inline("late", "pw")}})
    env = {"REGISTRY_AUTH_FILE": str(tmp_path / "a.json"), "DOCKER_CONFIG": str(tmp_path / "dc"), "HOME": str(tmp_path)}
    assert from_docker_config("r.example", env).username == "late"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "content, problem",
    [
        ("{not json", "not valid JSON"),
        ("[]", "top level is not a JSON object"),
        (json.dumps({"auths": []}), '"auths" is not a JSON object'),
        (json.dumps({"auths": {"r.example": "x"}}), "entry is not a JSON object"),
        (json.dumps({"auths": {"r.example": {"auth": "!!" + SECRET}}}), '"auth" is not base64'),
        (json.dumps({"auths": {"r.example": {"auth": b64("nocolon" + SECRET)}}}), "does not decode to user:password"),
        (json.dumps({"auths": {"r.example": {"username": "u"}}}), "username is set but password is not"),
        (json.dumps({"auths": {"r.example": {"password": SECRET}}}), "password is set but username is not"),
        (json.dumps({"auths": {"r.example": {"password": 5}}}), '"password" is not a string'),
        (json.dumps({"credsStore": 3}), '"credsStore" is not a string'),
        (json.dumps({"credHelpers": {"r.example": ["x"]}}), "is not a string"),
        (json.dumps({"credHelpers": {"r.example": "../evil"}}), "invalid credential helper name"),
    ],
)
def test_malformed_config_is_usage_error(tmp_path: Path, content: str, problem: str) -> None:
    path = write(tmp_path / ".docker" / "config.json", content)
    with pytest.raises(UsageError) as info:
        from_docker_config("r.example", {"HOME": str(tmp_path), "PATH": str(tmp_path)})
    message = str(info.value)
    assert problem in message and path in message
    assert_no_secret(message, SECRET, b64("nocolon" + SECRET))


def test_config_that_is_a_directory_is_usage_error(tmp_path: Path) -> None:
    (tmp_path / "dc" / "config.json").mkdir(parents=True)
    with pytest.raises(UsageError, match="cannot read"):
        from_docker_config("r.example", {"DOCKER_CONFIG": str(tmp_path / "dc")})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10)
    | st.sampled_from(["r.example", b64("u:p"), b64("nocolon"), "=", "", "https://r.example/v2/", "../x"]),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["auths", "auth", "username", "password", "identitytoken", "registrytoken", "credsStore",
                         "credHelpers", "r.example", "https://r.example", "docker.io", "x"]),
        inner,
        max_size=4,
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(_JSON)
def test_property_any_config_gives_credentials_none_or_usage_error(tmp_path: Path, data: object) -> None:
    write(tmp_path / "dc" / "config.json", json.dumps(data))
    # PATH is empty: any helper the data names is "not installed" and falls through
    env = {"DOCKER_CONFIG": str(tmp_path / "dc"), "PATH": ""}
    try:
        creds = from_docker_config("r.example", env)
    except UsageError as exc:
        assert "\n" not in str(exc)
    else:
        assert creds is None or isinstance(creds, Credentials)


# --------------------------------------------------------------------------------------------------------
# real credential helpers

HELPER_SOURCE = """\
#!{python}
import json, os, sys
server = sys.stdin.read()
with open(os.environ["FAKE_HELPER_LOG"], "a") as log:
    log.write(json.dumps({{"name": {name!r}, "argv": sys.argv, "stdin": server}}) + "\\n")
mode = {mode!r}
if mode == "ok":
    print(json.dumps({{"ServerURL": server, "Username": "helper-user", "Secret": {secret!r}}}))
elif mode == "identity":
    print(json.dumps({{"ServerURL": server, "Username": "<token>", "Secret": "refresh-from-helper"}}))
elif mode == "only":
    if server != {only!r}:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": server, "Username": "stored-user", "Secret": {secret!r}}}))
elif mode == "notfound":
    print("credentials not found in native keychain")
    sys.exit(1)
elif mode == "crash":
    sys.stderr.write("Traceback: boom " + {secret!r} + "\\n")
    sys.exit(3)
elif mode == "garbage":
    print("not json " + {secret!r})
elif mode == "empty":
    print(json.dumps({{"ServerURL": server, "Username": "", "Secret": ""}}))
elif mode == "sleep":
    import time
    time.sleep(30)
"""


class Helpers:
    """Writes real executable docker-credential-* scripts into a bin directory and reads their call log."""

    def __init__(self, root: Path) -> None:
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / "helper-calls.jsonl"
        self.home = root / "home"
        self.home.mkdir()

    def add(self, name: str, mode: str, only: str = "") -> None:
        script = self.bin / f"docker-credential-{name}"
        script.write_text(HELPER_SOURCE.format(python=sys.executable, name=name, mode=mode, secret=SECRET, only=only))
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)

    def env(self) -> dict[str, str]:
        return {"PATH": str(self.bin), "HOME": str(self.home), "FAKE_HELPER_LOG": str(self.log)}

    def config(self, data: object) -> Path:
        return config(self.home / ".docker" / "config.json", data)

    def calls(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def helpers(tmp_path: Path) -> Helpers:
    return Helpers(tmp_path)


def test_helper_gets_server_url_on_stdin_not_argv(helpers: Helpers) -> None:
    helpers.add("fake", "ok")
    path = helpers.config({"credHelpers": {"reg.example:5000": "fake"}})
    creds = from_docker_config("reg.example:5000", helpers.env())
    assert creds is not None
    assert (creds.username, creds.password) == ("helper-user", SECRET)
    assert creds.source == f"credential helper docker-credential-fake (credHelpers in {path})"
    calls = helpers.calls()
    assert len(calls) == 1
    assert calls[0]["stdin"] == "reg.example:5000"
    argv = calls[0]["argv"]
    assert isinstance(argv, list) and argv[1:] == ["get"]
    assert argv[0].endswith("docker-credential-fake")
    assert not any("reg.example" in arg or SECRET in arg for arg in argv)


def test_helper_asked_about_docker_hub_url(helpers: Helpers) -> None:
    helpers.add("fake", "ok")
    helpers.config({"credHelpers": {"docker.io": "fake"}})
    creds = from_docker_config("registry-1.docker.io", helpers.env())
    assert creds is not None and creds.password == SECRET
    assert [call["stdin"] for call in helpers.calls()] == [DOCKER_HUB_SERVER_URL]


def test_helper_identity_token(helpers: Helpers) -> None:
    helpers.add("fake", "identity")
    helpers.config({"credsStore": "fake"})
    creds = from_docker_config("reg.example", helpers.env())
    assert creds is not None
    assert creds.identity_token == "refresh-from-helper" and creds.username is None and creds.password is None
    assert "refresh-from-helper" not in repr(creds) + str(creds)


def test_cred_helpers_beat_creds_store_beat_inline(helpers: Helpers) -> None:
    helpers.add("specific", "ok")
    helpers.add("store", "identity")
    data = {
        "credHelpers": {"reg.example": "specific"},
        "credsStore": "store",
        "auths": {"reg.example": inline("inline-user", "inline-pw")},
    }
    helpers.config(data)
    creds = from_docker_config("reg.example", helpers.env())
    assert creds is not None and creds.username == "helper-user"
    assert [call["name"] for call in helpers.calls()] == ["specific"]  # the store was not even asked

    # credHelpers only covers reg.example: another registry goes to the store, which beats inline auths
    data["auths"]["other.example"] = inline("inline-user", "inline-pw")  # type: ignore[index]
    helpers.config(data)
    creds = from_docker_config("other.example", helpers.env())
    assert creds is not None and creds.identity_token == "refresh-from-helper"
    assert helpers.calls()[-1]["name"] == "store"


def test_creds_store_asked_about_the_stored_key_first(helpers: Helpers) -> None:
    # `docker login https://reg.example` with a store leaves an empty auths stub under the URL it used
    helpers.add("fake", "only", only="https://reg.example")
    helpers.config({"credsStore": "fake", "auths": {"https://reg.example": {}}})
    creds = from_docker_config("reg.example", helpers.env())
    assert creds is not None and creds.username == "stored-user"
    assert [call["stdin"] for call in helpers.calls()] == ["https://reg.example"]


def test_creds_store_falls_back_to_canonical_url(helpers: Helpers) -> None:
    helpers.add("fake", "only", only="reg.example")
    helpers.config({"credsStore": "fake", "auths": {"https://reg.example/v1/": {}}})
    creds = from_docker_config("reg.example", helpers.env())
    assert creds is not None and creds.username == "stored-user"
    assert [call["stdin"] for call in helpers.calls()] == ["https://reg.example/v1/", "reg.example"]


def test_helper_not_found_falls_through(helpers: Helpers) -> None:
    helpers.add("notfound", "notfound")
    helpers.config(
        {
            "credHelpers": {"reg.example": "notfound"},
            "credsStore": "missing-helper-not-installed",
            "auths": {"reg.example": inline("inline-user", "inline-pw")},
        }
    )
    creds = from_docker_config("reg.example", helpers.env())
    assert creds is not None and (creds.username, creds.password) == ("inline-user", "inline-pw")
    assert [call["name"] for call in helpers.calls()] == ["notfound"]


def test_helper_not_found_falls_through_to_next_file(helpers: Helpers, tmp_path: Path) -> None:
    helpers.add("notfound", "notfound")
    config(tmp_path / "auth.json", {"credsStore": "notfound"})
    helpers.config({"auths": {"reg.example": inline("docker-user", "pw")}})
    env = {**helpers.env(), "REGISTRY_AUTH_FILE": str(tmp_path / "auth.json")}
    assert from_docker_config("reg.example", env).username == "docker-user"  # type: ignore[union-attr]
    assert from_docker_config("nothing.example", env) is None


def test_helper_empty_answer_falls_through(helpers: Helpers) -> None:
    helpers.add("fake", "empty")
    helpers.config({"credsStore": "fake"})
    assert from_docker_config("reg.example", helpers.env()) is None
    assert len(helpers.calls()) == 1


@pytest.mark.parametrize("mode, problem", [("crash", "exit status 3"), ("garbage", "not JSON")])
def test_helper_failure_is_auth_error_without_secret(helpers: Helpers, mode: str, problem: str) -> None:
    helpers.add("fake", mode)
    helpers.config({"credHelpers": {"reg.example": "fake"}, "auths": {"reg.example": inline("u", "p")}})
    with pytest.raises(AuthError) as info:
        from_docker_config("reg.example", helpers.env())
    message = str(info.value)
    assert "docker-credential-fake" in message and problem in message
    assert_no_secret(message, SECRET)
    assert info.value.exit_code == 3
    assert len(helpers.calls()) == 1


def test_helper_timeout_is_auth_error(helpers: Helpers) -> None:
    helpers.add("fake", "sleep")
    helpers.config({"credsStore": "fake"})
    with pytest.raises(AuthError, match="timed out"):
        from_docker_config("reg.example", helpers.env(), helper_timeout=1.0)


def test_helper_not_executable_is_not_found(helpers: Helpers) -> None:
    helpers.add("fake", "ok")
    (helpers.bin / "docker-credential-fake").chmod(0o644)
    helpers.config({"credsStore": "fake", "auths": {"reg.example": inline("inline-user", "pw")}})
    assert from_docker_config("reg.example", helpers.env()).username == "inline-user"  # type: ignore[union-attr]
    assert helpers.calls() == []


def test_helper_found_only_through_env_path(helpers: Helpers) -> None:
    helpers.add("fake", "ok")
    helpers.config({"credsStore": "fake"})
    env = helpers.env()
    env["PATH"] = "/nonexistent"
    assert from_docker_config("reg.example", env) is None
    assert helpers.calls() == []


# --------------------------------------------------------------------------------------------------------
# resolve: precedence across sources


@pytest.fixture
def everything(helpers: Helpers, tmp_path: Path) -> tuple[dict[str, str], str]:
    """An environment where every source has credentials, so each test can peel one away."""
    helpers.add("fake", "ok")
    helpers.config({"credsStore": "fake"})
    env = {**helpers.env(), "DOCKER_TOKEN": "env-token", "DOCKER_USER": "envuser", "DOCKER_PASS": "envpass"}
    creds_file = write(tmp_path / "creds.txt", "USERNAME=fileuser\nPASSWORD=filepass\n")
    return env, creds_file


def call(env: dict[str, str], **kwargs: str | None) -> Credentials | None:
    args: dict[str, str | None] = {"username": None, "password": None, "token": None, "credentials_file": None}
    args.update(kwargs)
    return resolve(registry_host="reg.example", env=env, **args)  # type: ignore[arg-type]


def test_resolve_precedence(everything: tuple[dict[str, str], str], helpers: Helpers) -> None:
    env, creds_file = everything
    full = dict(username="cliuser", password="clipass", token="cli-token", credentials_file=creds_file)
    assert call(env, **full) == Credentials(token="cli-token", source="--token")
    full.pop("token")
    assert call(env, **full) == Credentials(username="cliuser", password="clipass", source="--username")
    full.pop("username"), full.pop("password")
    assert call(env, **full).username == "fileuser"  # type: ignore[union-attr]
    assert call(env).token == "env-token"  # type: ignore[union-attr]
    env["DOCKER_TOKEN"] = ""
    assert call(env).username == "envuser"  # type: ignore[union-attr]
    assert helpers.calls() == []  # nothing stronger ever ran a helper
    env["DOCKER_USER"] = env["DOCKER_PASS"] = ""
    creds = call(env)
    assert creds is not None and creds.username == "helper-user"
    assert creds.source.startswith("credential helper docker-credential-fake")
    assert len(helpers.calls()) == 1


def test_resolve_anonymous(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "PATH": str(tmp_path), "DOCKER_TOKEN": "", "DOCKER_USER": "", "DOCKER_PASS": ""}
    assert call(env) is None


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"username": "u"}, "--username is set but --password is not"),
        ({"password": SECRET}, "--password is set but --username is not"),
        ({"password": SECRET, "token": TOKEN}, "--password is set but --username is not"),
        ({"token": ""}, "--token is empty"),
        ({"username": "", "password": SECRET}, "--username is empty"),
        ({"username": "u", "password": ""}, "--password is empty"),
        ({"credentials_file": ""}, "--credentials-file is empty"),
    ],
)
def test_resolve_usage_errors(tmp_path: Path, kwargs: dict[str, str], problem: str) -> None:
    with pytest.raises(UsageError) as info:
        call({"HOME": str(tmp_path)}, **kwargs)
    assert problem in str(info.value)
    assert_no_secret(str(info.value), SECRET, TOKEN)


def test_resolve_bad_credentials_file_does_not_fall_through(everything: tuple[dict[str, str], str],
                                                            tmp_path: Path) -> None:
    env, _ = everything
    with pytest.raises(UsageError, match="no such file"):
        call(env, credentials_file=str(tmp_path / "missing"))


def test_resolve_accepts_registry_url(tmp_path: Path) -> None:
    config(tmp_path / ".docker" / "config.json", {"auths": {DOCKER_HUB_SERVER_URL: inline("hub", "pw")}})
    creds = resolve(
        username=None, password=None, token=None, credentials_file=None,
        registry_host="https://registry-1.docker.io/v2/", env={"HOME": str(tmp_path)},
    )
    assert creds is not None and creds.username == "hub"


def test_module_does_not_read_os_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_TOKEN", "from-os-environ")
    monkeypatch.setenv("HOME", str(tmp_path))
    config(tmp_path / ".docker" / "config.json", {"auths": {"reg.example": inline("os-home", "pw")}})
    assert from_environment({}) is None
    assert from_docker_config("reg.example", {}) is None
    assert call({}) is None


@pytest.mark.parametrize("module", ["credentials.py", "dockerconfig.py"])
def test_no_stray_import_of_other_modules(module: str) -> None:
    """The credential sources stay leaves: no network code, no os.environ, no home directory of their own."""
    source = Path(__file__).resolve().parents[1].joinpath("hocker_fetch", module).read_text()
    imports = [line for line in source.splitlines() if line.startswith(("from .", "import hocker", "from hocker"))]
    allowed = ("from .credentials import", "from .errors import", "from .reference import DOCKER_HUB_HOSTS")
    assert imports and all(line.startswith(allowed) for line in imports), imports
    assert "os.environ[" not in source and "os.environ.get" not in source and "getenv" not in source
    assert "expanduser" not in source and "Path.home" not in source
    assert textwrap.dedent(source) == source


def test_deeply_nested_docker_config_is_a_usage_error(tmp_path):
    """json's RecursionError on absurd nesting must surface as the project's own error, not a traceback."""
    cfg = tmp_path / "config.json"
    cfg.write_text('{"auths":' + "[" * 100_000)
    with pytest.raises(UsageError, match="not valid JSON"):
        from_docker_config("registry.example", {"REGISTRY_AUTH_FILE": str(cfg), "HOME": str(tmp_path)})
