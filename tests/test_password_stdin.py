"""Issue 17, defect 4: --password-stdin reads ALL of standard input, less one trailing newline (docker, skopeo).

Google's documented `cat key.json | docker login -u _json_key --password-stdin`: the password is a JSON key of
many lines. The token server (a dict of users) and the basic registry (htpasswd -B of argv) hold that exact
password, so a tool that reads one line only, or strips more than one newline, is refused.
"""
from __future__ import annotations

import json

import pytest
from support.clitools import clean_env, run

KEY = json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "k1",
                  "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
                  "client_email": "puller@p.iam.gserviceaccount.com"}, indent=2)
USER = "_json_key"


@pytest.fixture
def json_key_user(token_registry, token_server):
    """The token server knows `_json_key` with the multi-line key as password (removed afterwards)."""
    token_server.users[USER] = KEY
    yield token_registry
    token_server.users.pop(USER, None)


@pytest.mark.parametrize("stdin", [KEY + "\n", KEY, KEY + "\r\n"])
def test_a_json_key_on_stdin_logs_in(json_key_user, token_server, stdin):
    reg = json_key_user
    r = run("hocker-manifest", "--registry", reg.url, "-u", USER, "--password-stdin", "private/secret", "1",
            input=stdin.encode())
    assert r.returncode == 0, r.stderr
    assert r.stdout == reg.images["private/secret:1"].raw
    assert {t.user for t in token_server.snapshot()} == {USER}


def test_only_one_newline_is_stripped(json_key_user):
    r = run("hocker-manifest", "--registry", json_key_user.url, "-u", USER, "--password-stdin", "private/secret",
            "1", input=(KEY + "\n\n").encode())
    assert r.returncode == 3, r.stderr
    assert b"PRIVATE KEY" not in r.stderr


def test_hocker_lock_reads_the_whole_key_too(json_key_user, tmp_path):
    path = tmp_path / "l.json"
    r = run("hocker-lock", "--file", str(path), "add", "--platform", "linux/amd64", "-u", USER,
            "--password-stdin", f"{json_key_user.host}/private/secret:1", input=(KEY + "\n").encode(),
            env=clean_env())
    assert r.returncode == 0, r.stderr
    assert "PRIVATE KEY" not in path.read_text()


def test_a_basic_registry_whose_htpasswd_holds_the_key(registry_factory):
    """htpasswd -B hashes the key with its newlines: the right key finds no repository (4), a first line only
    is refused (3)."""
    reg = registry_factory("basic", username=USER, password=KEY)
    args = ["--registry", reg.url, "--ca-file", str(reg.ca_file), "-u", USER, "--password-stdin", "none/here", "1"]
    r = run("hocker-manifest", *args, input=(KEY + "\n").encode())
    assert r.returncode == 4, r.stderr
    r = run("hocker-manifest", *args, input=(KEY.splitlines()[0] + "\n").encode())
    assert r.returncode == 3, r.stderr
