"""Bad input and auth failures at the command line: one line on stderr, a distinct exit code, no output file."""

from __future__ import annotations

import base64
import json

import pytest
from support.clitools import clean_env, cred_env, registry_args, run

USAGE, AUTH, NOT_FOUND, VERIFY = 2, 3, 4, 5


def one_line_error(r, prog: str) -> str:
    err = r.stderr.decode()
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith(f"{prog}: "), err
    assert "Traceback" not in err
    return lines[-1]


@pytest.mark.parametrize("args", [
    ["UPPER/case"], ["a//b"], ["x@sha256:abc"], ["x:tag:more"], ["--platform", "linux", "x"],
    ["--registry", "ftp://x", "a"], ["x:1", "2"], [],
])
def test_malformed_input_is_a_usage_error(args):
    r = run("hocker-manifest", *args)
    assert r.returncode == USAGE
    one_line_error(r, "hocker-manifest") if args else None


@pytest.mark.parametrize("digest", ["abc", "sha256:" + "g" * 64, "sha512:" + "a" * 128, "sha256:../../etc/passwd"])
def test_malformed_layer_digest(plain_registry, tmp_path, digest):
    out = tmp_path / "x"
    r = run("hocker-layer", "--registry", plain_registry.url, "--layer", digest, "--out", str(out), "library/hello")
    assert r.returncode == USAGE
    assert "digest" in one_line_error(r, "hocker-layer")
    assert list(tmp_path.iterdir()) == []


def test_unknown_tag_and_repository(plain_registry, tmp_path):
    r = run("hocker-manifest", "--registry", plain_registry.url, "library/hello", "nope")
    assert r.returncode == NOT_FOUND and "not found" in one_line_error(r, "hocker-manifest")
    out = tmp_path / "img.tar"
    r = run("hocker-image", "--registry", plain_registry.url, "--out", str(out), "no/such/repo", "1")
    assert r.returncode == NOT_FOUND
    assert list(tmp_path.iterdir()) == []


def test_unknown_platform(plain_registry):
    r = run("hocker-manifest", "--registry", plain_registry.url, "--platform", "linux/s390x", "library/multi", "oci")
    assert r.returncode == 7
    assert "linux/amd64, linux/arm64/v8" in one_line_error(r, "hocker-manifest")


def test_wrong_password_basic(basic_registry, tmp_path):
    env = cred_env(basic_registry, DOCKER_PASS="definitely-wrong-pw-123")
    r = run("hocker-config", *registry_args(basic_registry), "library/hello", "oci", env=env)
    assert r.returncode == AUTH
    line = one_line_error(r, "hocker-config")
    assert basic_registry.username in line
    assert "definitely-wrong-pw-123" not in r.stderr.decode() + r.stdout.decode()


def test_basic_registry_without_credentials(basic_registry):
    r = run("hocker-manifest", *registry_args(basic_registry), "library/hello", "oci")
    assert r.returncode == AUTH
    assert "username" in one_line_error(r, "hocker-manifest")


def test_tls_without_the_ca_is_a_clear_error(basic_registry):
    r = run("hocker-manifest", "--registry", basic_registry.url, "library/hello", "oci", env=cred_env(basic_registry))
    assert r.returncode == 6
    assert "--ca-file" in one_line_error(r, "hocker-manifest")
    # --insecure skips verification (and still authenticates)
    r = run("hocker-manifest", "--insecure", "--registry", basic_registry.url, "library/hello", "oci",
            env=cred_env(basic_registry))
    assert r.returncode == 0 and r.stdout == basic_registry.images["library/hello:oci"].raw


def test_ssl_cert_file_is_honoured(basic_registry):
    env = cred_env(basic_registry, SSL_CERT_FILE=basic_registry.ca_file)
    env.pop("REQUESTS_CA_BUNDLE", None)
    r = run("hocker-manifest", "--registry", basic_registry.url, "library/hello", "oci", env=env)
    assert r.returncode == 0, r.stderr


def test_wrong_password_token(token_registry):
    env = cred_env(token_registry, DOCKER_PASS="wrong-token-pw-456")
    r = run("hocker-manifest", "--registry", token_registry.url, "private/secret", "1", env=env)
    assert r.returncode == AUTH
    assert "wrong-token-pw-456" not in r.stderr.decode()


def test_private_repo_needs_credentials(token_registry):
    r = run("hocker-manifest", "--registry", token_registry.url, "private/secret", "1")
    assert r.returncode == AUTH
    assert "requires authentication" in one_line_error(r, "hocker-manifest")
    r = run("hocker-manifest", "--registry", token_registry.url, "private/secret", "1", env=cred_env(token_registry))
    assert r.returncode == 0
    assert r.stdout == token_registry.images["private/secret:1"].raw


def test_public_repo_anonymous_token(token_registry, token_server):
    r = run("hocker-manifest", "--registry", token_registry.url, "library/hello", "oci")
    assert r.returncode == 0 and r.stdout == token_registry.images["library/hello:oci"].raw
    reqs = token_server.snapshot()
    assert reqs and not any(q.has_authorization for q in reqs)
    assert any("repository:library/hello:pull" in q.scopes for q in reqs)


def test_credential_sources(token_registry, tmp_path):
    user, pw = token_registry.username, token_registry.password
    args = ["--registry", token_registry.url, "private/secret", "1"]
    expected = token_registry.images["private/secret:1"].raw
    hocker_file = tmp_path / "hocker.txt"
    hocker_file.write_text(f"USERNAME={user}\nPASSWORD={pw}\n")
    nixpkgs_file = tmp_path / "nixpkgs.txt"
    nixpkgs_file.write_text(f"DOCKER_USER={user}\nDOCKER_PASS={pw}\n")
    for f in (hocker_file, nixpkgs_file):
        r = run("hocker-manifest", "-f", str(f), *args)
        assert r.returncode == 0 and r.stdout == expected, r.stderr
    r = run("hocker-manifest", "-u", user, "--password-stdin", *args, input=pw.encode() + b"\n")
    assert r.returncode == 0 and r.stdout == expected, r.stderr
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True)
    auth = base64.b64encode(f"{user}:{pw}".encode()).decode()
    (home / ".docker" / "config.json").write_text(json.dumps({"auths": {token_registry.host: {"auth": auth}}}))
    r = run("hocker-manifest", *args, env=clean_env(HOME=str(home)))
    assert r.returncode == 0 and r.stdout == expected, r.stderr


def test_token_option_and_bad_token(token_registry):
    r = run("hocker-manifest", "-t", "not-a-real-token", "--registry", token_registry.url, "library/hello", "oci")
    assert r.returncode == AUTH
    assert "token" in one_line_error(r, "hocker-manifest")


def test_no_basic_credentials_over_plain_http_to_remote_hosts():
    # refused before any connection is attempted (the host name is never even resolved)
    r = run("hocker-manifest", "--registry", "http://registry.invalid", "-u", "u", "-p", "secret-pw-789", "x", "1")
    assert r.returncode == USAGE
    assert "--insecure" in one_line_error(r, "hocker-manifest")
    assert "secret-pw-789" not in r.stderr.decode()


def test_corrupted_blob_is_never_written(registry_factory, tmp_path, skopeo_policy, test_layout):
    from support.images import push_ref, read_back

    reg = registry_factory("plain")
    push_ref(reg, test_layout, "nested", "a/b/c:nested", ["--preserve-digests"], skopeo_policy)
    info = read_back(reg, "a/b/c", "nested")
    digest = info.single.layers[0][0]
    hexd = digest.split(":")[1]
    data = reg.storage / "docker/registry/v2/blobs/sha256" / hexd[:2] / hexd / "data"
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    data.write_bytes(bytes(blob))
    out = tmp_path / "out" / "layer.tgz"
    out.parent.mkdir()
    out.write_bytes(b"previous content")
    r = run("hocker-layer", "--registry", reg.url, "--layer", digest, "--out", str(out), "a/b/c")
    assert r.returncode == VERIFY
    assert digest in one_line_error(r, "hocker-layer")
    assert out.read_bytes() == b"previous content"
    assert sorted(p.name for p in out.parent.iterdir()) == ["layer.tgz"]
    img = tmp_path / "out" / "img.tar"
    r = run("hocker-image", "--registry", reg.url, "--out", str(img), "a/b/c", "nested")
    assert r.returncode == VERIFY
    assert not img.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == ["layer.tgz"]


def test_help_documents_every_option():
    for prog in ("hocker-manifest", "hocker-config", "hocker-layer", "hocker-image"):
        r = run(prog, "--help")
        assert r.returncode == 0
        text = r.stdout.decode()
        for opt in ("--registry", "--username", "--password", "--token", "--credentials-file", "--platform",
                    "--insecure", "--ca-file", "--quiet", "Exit codes"):
            assert opt in text, (prog, opt)


def test_a_netrc_entry_does_not_replace_our_authorization(token_registry, tmp_path):
    """requests reads ~/.netrc when no auth is given; it must not overwrite the Bearer token we send."""
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pw\n")
    netrc.chmod(0o600)
    r = run("hocker-manifest", "--registry", token_registry.url, "private/secret", "1",
            env=cred_env(token_registry, HOME=str(home)))
    assert r.returncode == 0, r.stderr
    assert r.stdout == token_registry.images["private/secret:1"].raw
