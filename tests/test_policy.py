"""policy.json and registries.d as files (issue 20): where they are found, what is a fault (one line naming the
file, exit 2, before any network), unimplemented requirements (refused, exit 8), and the YAML subset."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.clitools import clean_env, run

from hocker_fetch.errors import UsageError
from hocker_fetch.policy import (
    Accept,
    DockerName,
    Reject,
    Unimplemented,
    docker_name,
    find_policy,
    load_policy,
    scopes,
)
from hocker_fetch.reference import parse_reference
from hocker_fetch.registriesd import RegistriesDError, load_dir, parse_yaml
from hocker_fetch.signatures import gate_from_args

ACCEPT = {"type": "insecureAcceptAnything"}
# an address nothing listens on: a tool that reached the network would fail with exit 6, not the code expected
NOWHERE = "127.0.0.1:9/library/x:1"


def write(path: Path, doc: object) -> Path:
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_scopes_most_specific_first():
    name = docker_name(parse_reference("a.b.example.com:5000/ns/sub/repo:tag"))
    assert scopes(name) == ["a.b.example.com:5000/ns/sub/repo:tag", "a.b.example.com:5000/ns/sub/repo",
                            "a.b.example.com:5000/ns/sub", "a.b.example.com:5000/ns", "a.b.example.com:5000",
                            "*.b.example.com", "*.example.com", "*.com"]
    hub = docker_name(parse_reference("debian@sha256:" + "a" * 64))
    assert scopes(hub)[:2] == ["docker.io/library/debian@sha256:" + "a" * 64, "docker.io/library/debian"]


def test_where_the_policy_is_found(tmp_path):
    system = tmp_path / "etc-policy.json"
    assert find_policy(None, {"HOME": str(tmp_path)}, str(system)) is None  # none anywhere: accept
    write(system, {"default": [ACCEPT]})
    assert find_policy(None, {"HOME": str(tmp_path)}, str(system)) == str(system)
    user = tmp_path / ".config/containers/policy.json"
    user.parent.mkdir(parents=True)
    write(user, {"default": [ACCEPT]})
    assert find_policy(None, {"HOME": str(tmp_path)}, str(system)) == str(user)
    assert find_policy("/given", {"HOME": str(tmp_path)}, str(system)) == "/given"


def test_no_policy_and_insecure_policy_accept(tmp_path):
    args = argparse.Namespace(policy=None, insecure_policy=True, registries_d=None)
    assert gate_from_args(args).policy is None
    args = argparse.Namespace(policy=str(tmp_path / "p.json"), insecure_policy=True, registries_d=None)
    with pytest.raises(UsageError, match="either --policy or --insecure-policy"):
        gate_from_args(args)


def test_the_users_policy_is_read_without_flags(tmp_path):
    user = tmp_path / ".config/containers/policy.json"
    user.parent.mkdir(parents=True)
    write(user, {"default": [{"type": "reject"}]})
    r = run("hocker-manifest", NOWHERE, env=clean_env(HOME=str(tmp_path)))
    assert r.returncode == 8 and "reject" in r.stderr.decode(), r.stderr
    r = run("hocker-manifest", NOWHERE, "--insecure-policy", "--retries", "0", env=clean_env(HOME=str(tmp_path)))
    assert r.returncode == 6, r.stderr  # accepted: it went on to the (absent) registry


def test_help_says_no_policy_means_accept():
    out = run("hocker-lock", "update", "--help").stdout.decode() + run("docker2nix", "--help").stdout.decode()
    assert "no policy file anywhere" in " ".join(out.split())
    assert "8 refused by the signature policy" in run("hocker-config", "--help").stdout.decode()


MALFORMED = [
    ("{", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ({"transports": {}}, "no `default`"),
    ({"default": []}, "must not be empty"),
    ({"default": [ACCEPT], "extra": 1}, "unknown field 'extra'"),
    ('{"default": [{"type": "reject"}], "default": []}', "duplicate field 'default'"),
    ({"default": [{"type": "reject", "keyPath": "/x"}]}, "unknown field 'keyPath'"),
    ({"default": [{"type": "sigstoreSigned"}]}, "exactly one of keyPath"),
    ({"default": [{"type": "sigstoreSigned", "keyPath": "/a", "keyData": "AA=="}]}, "exactly one of keyPath"),
    ({"default": [{"type": "sigstoreSigned", "keyData": "%%"}]}, "not base64"),
    ({"default": [{"type": "sigstoreSigned", "keyPaths": []}]}, "non-empty list"),
    ({"default": [{"type": "sigstoreSigned", "fulcio": {"caPath": "/c", "oidcIssuer": "i", "subjectEmail": "e"}}]},
     "fulcio needs one of rekorPublicKeyPath"),
    ({"default": [{"type": "sigstoreSigned", "keyPath": "/a", "signedIdentity": {"type": "matchAnything"}}]},
     "unknown signedIdentity type 'matchAnything'"),
    ({"default": [{"type": "sigstoreSigned", "keyPath": "/a",
                   "signedIdentity": {"type": "exactReference", "dockerReference": "repo"}}]}, "neither a tag"),
    ({"default": [{"type": "sigstoreSigned", "keyPath": "/a",
                   "signedIdentity": {"type": "remapIdentity", "prefix": "a//b", "signedPrefix": "x"}}]},
     "not a host[:port] or a repository namespace"),
    ({"default": [ACCEPT], "transports": {"docker": {"h": {"type": "reject"}}}}, "a list of requirements"),
]


@pytest.mark.parametrize("doc,fault", MALFORMED)
def test_malformed_policy_is_one_line_naming_the_file(tmp_path, doc, fault):
    path = write(tmp_path / "policy.json", doc)
    with pytest.raises(UsageError) as exc:
        load_policy(str(path))
    assert str(path) in str(exc.value) and fault in str(exc.value)
    r = run("hocker-manifest", NOWHERE, "--policy", str(path))
    assert r.returncode == 2, r.stderr  # before any network: the registry does not exist
    assert r.stderr.decode().count("\n") == 1 and str(path) in r.stderr.decode()


def test_unreadable_key_is_a_policy_fault_before_any_network(tmp_path):
    path = write(tmp_path / "policy.json", {"default": [{"type": "sigstoreSigned", "keyPath": "missing.pub"}]})
    r = run("hocker-manifest", NOWHERE, "--policy", str(path))
    assert r.returncode == 2 and str(tmp_path / "missing.pub") in r.stderr.decode(), r.stderr
    bad = write(tmp_path / "bad.pub", "not a key")
    write(path, {"default": [{"type": "sigstoreSigned", "keyPath": str(bad)}]})
    r = run("docker2nix", NOWHERE, "--policy", str(path))
    assert r.returncode == 2 and len(r.stderr.decode().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("req,label", [
    ({"type": "signedBy", "keyType": "GPGKeys", "keyPath": "/k"}, "signedBy"),
    ({"type": "sigstoreSigned", "pki": {"caRootsPath": "/r"}}, "pki"),
    ({"type": "somethingNew"}, "somethingNew"),
])
def test_unimplemented_requirements_refuse_their_scope_only(tmp_path, req, label):
    path = write(tmp_path / "policy.json", {"default": [ACCEPT], "transports": {"docker": {"127.0.0.1:9": [req]}}})
    policy = load_policy(str(path))
    [got] = policy.requirements_for(DockerName("127.0.0.1:9/library/x", tag="1"))[1]
    assert isinstance(got, Unimplemented) and label in str(got)
    assert policy.requirements_for(DockerName("127.0.0.2:9/library/x", tag="1"))[1] == (Accept(),)
    r = run("hocker-manifest", NOWHERE, "--policy", str(path))
    assert r.returncode == 8 and label in r.stderr.decode() and "does not implement" in r.stderr.decode()


def test_other_transports_are_read_but_ignored(tmp_path):
    path = write(tmp_path / "policy.json", {"default": [{"type": "reject"}],
                                            "transports": {"docker-daemon": {"": [ACCEPT]}}})
    assert load_policy(str(path)).requirements_for(DockerName("h/x", tag="1")) == ("default", (Reject(),))


YAML = """\
# comment
default-docker:
  use-sigstore-attachments: false
docker:
  127.0.0.1:5000/library/hello:   # a scope with a port
    use-sigstore-attachments: true
  "quay.io":
    lookaside: https://example.com/sigs#frag
  empty: {}
"""


def test_registries_d_subset(tmp_path):
    assert parse_yaml(YAML, "f") == {
        "default-docker": {"use-sigstore-attachments": "false"},
        "docker": {"127.0.0.1:5000/library/hello": {"use-sigstore-attachments": "true"},
                   "quay.io": {"lookaside": "https://example.com/sigs#frag"}, "empty": {}}}
    assert parse_yaml('a: "x\\\\y"\nb: "q\\"r"\nc: \'it\'\'s\'', "f") == {"a": "x\\y", "b": 'q"r', "c": "it's"}
    (tmp_path / "a.yaml").write_text(YAML)
    (tmp_path / "ignored.yml").write_text("docker: [")
    conf = load_dir(str(tmp_path))
    assert conf.use_attachments(DockerName("127.0.0.1:5000/library/hello", tag="x"))
    assert not conf.use_attachments(DockerName("127.0.0.1:5000/library/other", tag="x"))
    (tmp_path / "b.yaml").write_text("default-docker:\n  use-sigstore-attachments: true\n")
    with pytest.raises(RegistriesDError, match="default-docker"):
        load_dir(str(tmp_path))
    assert load_dir(str(tmp_path / "missing")).default is None


@pytest.mark.parametrize("text", ["a: [1]", "a:\n  - x", "a: b\n  c: d", "a: |\n  x", "a: &x b", "a: 1\na: 2",
                                  "\ta: 1", "docker:\n  h:\n    use-sigstore-attachments: maybe",
                                  "default-docker:\n  use-sigstore-attachments: 'true'", 'a: "bad\\x"'])
def test_registries_d_refuses_what_it_does_not_read(tmp_path, text):
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(RegistriesDError) as exc:
        load_dir(str(tmp_path))
    assert str(tmp_path / "x.yaml") in str(exc.value) and "\n" not in str(exc.value)


@given(st.text(max_size=200))
def test_registries_d_parser_never_crashes(text):
    try:
        parse_yaml(text, "f")
    except RegistriesDError:
        pass
