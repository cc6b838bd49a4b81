"""Secrets never leak: every tool, every credential source, both authenticated registries, and Nix builds.

The secrets are unique strings: the registries' random passwords (`pw-<16 hex>`), a signed JWT made for the
test, and per-test `wrong-<hex>` passwords. For each run we assert that neither the secret nor the Basic
`base64(user:password)` form appears in stdout, stderr or any output file, nor in the argv of ANY process the
tool starts: every run is traced with `strace -f -e trace=execve`, which records the argv of each descendant
(the credential helper, a docker-credential-* script that also logs its own argv and stdin). Only the tool's
own argv may hold a secret, and only when the user put it there (-p, -t: documented as visible).

Also here: credentials are refused before any connection or name lookup for a plain-HTTP host that is not
loopback (and for a token realm on such a host), and TLS is verified by default: a self-signed server is a
one-line error with exit 6, and the server never sees an HTTP request.

Nix: a private image built with DOCKER_USER/DOCKER_PASS (impure env) and with `-I DOCKER_CREDENTIALS=FILE`,
both traced; no secret in the generated .nix, any .drv, any store path name or file under the test store,
the Nix state/log directories, nix-build's output, or the argv of any builder process.
"""
from __future__ import annotations

import base64
import bz2
import json
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional

import pytest
from support import nixenv
from support.clitools import clean_env, tool
from support.nixenv import docker2nix as nix_docker2nix
from support.nixenv import file_sha, skopeo_config_digest, stream_image

nix = nixenv.nix  # module-scoped fixtures: one throw-away store for this module
gen_dir = nixenv.gen_dir

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")

HELPER = """\
#!{python}
import json, os, sys
server = sys.stdin.read()
with open({log!r}, "a") as log:
    log.write(json.dumps({{"argv": sys.argv, "stdin": server}}) + "\\n")
print(json.dumps({{"ServerURL": server, "Username": {user!r}, "Secret": {secret!r}}}))
"""


class Setup:
    """One registry, its image, the secrets and the ways to hand them over."""

    def __init__(self, reg, image: str, root: Path, token: Optional[str]) -> None:
        self.reg, self.image, self.root, self.token = reg, image, root, token
        self.user, self.password = reg.username, reg.password
        self.repo, self.tag = image.rsplit(":", 1)
        self.info = reg.images[image].single

    def secrets(self, password: Optional[str] = None) -> list[bytes]:
        pw = password or self.password
        out = [pw.encode(), base64.b64encode(f"{self.user}:{pw}".encode())]
        if self.token:
            out += [self.token.encode(), self.token.rsplit(".", 1)[-1].encode()]  # the JWT and its signature
        return out

    def source(self, name: str, root: Path, password: Optional[str] = None,
               token: Optional[str] = None) -> tuple[list[str], dict[str, str], Optional[bytes], Path]:
        """(argv, env additions, stdin, helper log) for credential source `name`."""
        pw, tok = password or self.password, token or self.token
        log = root / "helper.log"
        env: dict[str, str] = {}
        if name == "argv":
            return ["-u", self.user, "-p", pw], env, None, log
        if name == "stdin":
            return ["-u", self.user, "--password-stdin"], env, pw.encode() + b"\n", log
        if name == "file":
            f = root / "creds.txt"
            f.write_text(f"USERNAME={self.user}\nPASSWORD={pw}\n")
            return ["-f", str(f)], env, None, log
        if name == "env":
            return [], {"DOCKER_USER": self.user, "DOCKER_PASS": pw}, None, log
        if name == "helper":
            bindir = root / "bin"
            bindir.mkdir(exist_ok=True)
            helper = bindir / "docker-credential-leakcheck"
            helper.write_text(HELPER.format(python=sys.executable, log=str(log), user=self.user, secret=pw))
            helper.chmod(0o755)
            conf = root / "docker"
            conf.mkdir(exist_ok=True)
            (conf / "config.json").write_text(json.dumps({"credHelpers": {self.reg.host: "leakcheck"}}))
            return [], {"DOCKER_CONFIG": str(conf), "PATH": f"{bindir}:{os.environ['PATH']}"}, None, log
        if name == "token-argv":
            return ["-t", tok], env, None, log
        if name == "token-env":
            return [], {"DOCKER_TOKEN": tok}, None, log
        if name == "token-file":
            f = root / "token.txt"
            f.write_text(f"BEARER_TOKEN={tok}\n")
            return ["-f", str(f)], env, None, log
        raise ValueError(name)


@pytest.fixture(scope="module")
def token_setup(token_registry, tmp_path_factory) -> Setup:
    ts = token_registry.token_server
    token = ts.make_token(token_registry.username, [{"type": "repository", "name": "private/secret",
                                                    "actions": ["pull"]}], lifetime=3600)
    return Setup(token_registry, "private/secret:1", tmp_path_factory.mktemp("token-secrets"), token)


@pytest.fixture(scope="module")
def basic_setup(basic_registry, tmp_path_factory) -> Setup:
    return Setup(basic_registry, "library/hello:oci", tmp_path_factory.mktemp("basic-secrets"), None)


TOOLS: dict[str, list[str]] = {
    "manifest": ["hocker-manifest"],
    "manifest-out": ["hocker-manifest", "--out", "{out}/m.json"],
    "config": ["hocker-config", "--out", "{out}/c.json"],
    "layer": ["hocker-layer", "--layer", "{layer}", "--out", "{out}/l.tgz"],
    "image-docker-archive": ["hocker-image", "--out", "{out}/i.tar"],
    "image-oci": ["hocker-image", "--format", "oci", "--out", "{out}/layout"],
    "image-oci-archive": ["hocker-image", "--format", "oci-archive", "--out", "{out}/i.oci.tar"],
    "docker2nix": ["docker2nix", "--out", "{out}/i.nix"],
    "docker2nix-json": ["docker2nix", "--json", "--out", "{out}/i.json"],
}
BASIC_SOURCES = ["argv", "stdin", "file", "env", "helper"]
TOKEN_SOURCES = BASIC_SOURCES + ["token-argv", "token-env", "token-file"]


def traced(argv: list[str], root: Path, env: dict[str, str], stdin: Optional[bytes], cwd: Optional[Path] = None,
           trace: str = "execve", timeout: float = 180) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run argv under strace -f; return the result and the trace lines (argv of every exec'd process)."""
    log = root / f"strace-{secrets.token_hex(4)}.log"
    r = subprocess.run(["strace", "-f", "-qq", "-s", "65536", "-e", f"trace={trace}", "-o", str(log), *argv],
                       capture_output=True, env=env, input=stdin, timeout=timeout, cwd=cwd,
                       stdin=None if stdin is not None else subprocess.DEVNULL)
    lines = log.read_text(errors="replace").splitlines()
    log.unlink()
    return r, lines


def all_files(root: Path) -> list[Path]:
    return [Path(d, f) for d, _, fs in os.walk(root) for f in fs]


def assert_no_secret(setup: Setup, r: subprocess.CompletedProcess, trace: list[str], out: Path,
                     own_argv_may_hold: bool, password: Optional[str] = None) -> None:
    forbidden = setup.secrets(password)
    for s in forbidden:
        assert s not in r.stdout and s not in r.stderr, s
        for f in all_files(out):
            assert s not in f.read_bytes(), (s, f)
    execs = [line for line in trace if "execve(" in line and "ENOENT" not in line]
    assert execs, "strace recorded nothing"
    # the first execve is the tool itself (the user's own command line); every later one is a child
    for i, line in enumerate(execs):
        if i == 0 and own_argv_may_hold:
            continue
        for s in forbidden:
            assert s.decode() not in line, line


def run_tool(setup: Setup, tool_name: str, source: str, root: Path, password: Optional[str] = None,
             token: Optional[str] = None):
    out = root / "out"
    out.mkdir()
    args, env_extra, stdin, helper_log = setup.source(source, root, password, token)
    argv_tmpl = TOOLS[tool_name]
    layer = setup.info.layers[0][0]
    argv = [tool(argv_tmpl[0]), *[a.format(out=out, layer=layer) for a in argv_tmpl[1:]],
            "--registry", setup.reg.url, "--platform", "linux/amd64", "-q", *args]
    if setup.reg.ca_file:
        argv += ["--ca-file", setup.reg.ca_file]
    argv += [setup.repo, setup.tag]
    r, trace = traced(argv, root, clean_env(**env_extra), stdin)
    return r, trace, out, helper_log


def _check_helper(source: str, helper_log: Path, setup: Setup, password: Optional[str] = None) -> None:
    if source != "helper":
        return
    calls = [json.loads(line) for line in helper_log.read_text().splitlines()]
    assert calls, "the credential helper was never run"
    for call in calls:
        assert call["argv"][1:] == ["get"] and call["stdin"] == setup.reg.host
        for s in setup.secrets(password):
            assert s.decode() not in json.dumps(call)


@pytest.mark.parametrize("tool_name", list(TOOLS))
@pytest.mark.parametrize("source", TOKEN_SOURCES)
def test_token_registry_no_leak(token_setup: Setup, tmp_path: Path, source: str, tool_name: str) -> None:
    r, trace, out, helper_log = run_tool(token_setup, tool_name, source, tmp_path)
    assert r.returncode == 0, r.stderr
    assert_no_secret(token_setup, r, trace, out, own_argv_may_hold=source in ("argv", "token-argv"))
    _check_helper(source, helper_log, token_setup)
    if tool_name == "config":
        assert file_sha(out / "c.json") == token_setup.info.config_digest


@pytest.mark.parametrize("tool_name", list(TOOLS))
@pytest.mark.parametrize("source", BASIC_SOURCES)
def test_basic_tls_registry_no_leak(basic_setup: Setup, tmp_path: Path, source: str, tool_name: str) -> None:
    r, trace, out, helper_log = run_tool(basic_setup, tool_name, source, tmp_path)
    assert r.returncode == 0, r.stderr
    assert_no_secret(basic_setup, r, trace, out, own_argv_may_hold=source == "argv")
    _check_helper(source, helper_log, basic_setup)


@pytest.mark.parametrize("tool_name", ["manifest", "image-docker-archive", "docker2nix"])
@pytest.mark.parametrize("registry, source",
                         [("token", s) for s in TOKEN_SOURCES] + [("basic", s) for s in BASIC_SOURCES])
def test_wrong_secret_is_never_echoed(token_setup: Setup, basic_setup: Setup, tmp_path: Path, registry: str,
                                      source: str, tool_name: str) -> None:
    setup = token_setup if registry == "token" else basic_setup
    wrong = f"wrong-{secrets.token_hex(12)}"
    bad_token = None
    if source.startswith("token"):
        # a well-formed JWT the registry refuses (no access to the repository)
        bad_token = setup.reg.token_server.make_token(setup.user, [], lifetime=3600)
    r, trace, out, helper_log = run_tool(setup, tool_name, source, tmp_path, password=wrong, token=bad_token)
    assert r.returncode == 3, r.stderr
    err = r.stderr.decode().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr.decode()
    forbidden = [wrong.encode(), base64.b64encode(f"{setup.user}:{wrong}".encode())]
    if bad_token:
        forbidden += [bad_token.encode(), bad_token.rsplit(".", 1)[-1].encode()]
    for s in forbidden:
        assert s not in r.stdout + r.stderr
        for f in all_files(out):
            assert s not in f.read_bytes()
    execs = [line for line in trace if "execve(" in line and "ENOENT" not in line]
    for line in execs[1:] if source in ("argv", "token-argv") else execs:
        if line is execs[0] and source in ("argv", "token-argv"):
            continue
        for s in forbidden:
            assert s.decode() not in line, line
    assert os.listdir(out) == []


# ---------------------------------------------------------------------------------------------------------
# no credentials in clear text to a remote host: refused before any connection or name lookup

REMOTE = "registry.invalid:5000"


def _no_network(trace: list[str]) -> None:
    connects = [line for line in trace if "connect(" in line and ("AF_INET" in line or "AF_INET6" in line)]
    assert not connects, connects
    lookups = [line for line in trace if "resolv.conf" in line or "/etc/hosts" in line or "nsswitch" in line]
    assert not lookups, lookups


@pytest.mark.parametrize("tool_name", list(TOOLS))
@pytest.mark.parametrize("source", ["argv", "stdin", "file", "env", "helper", "token-argv"])
def test_credentials_never_go_to_a_remote_plain_http_host(token_setup: Setup, tmp_path: Path, source: str,
                                                          tool_name: str) -> None:
    setup = token_setup
    out = tmp_path / "out"
    out.mkdir()
    args, env_extra, stdin, helper_log = setup.source(source, tmp_path)
    if source == "helper":  # the helper is configured for the remote host
        conf = Path(env_extra["DOCKER_CONFIG"]) / "config.json"
        conf.write_text(json.dumps({"credHelpers": {REMOTE: "leakcheck"}}))
    tmpl = TOOLS[tool_name]
    argv = [tool(tmpl[0]), *[a.format(out=out, layer=setup.info.layers[0][0]) for a in tmpl[1:]],
            "--registry", f"http://{REMOTE}", "--platform", "linux/amd64", *args, setup.repo, setup.tag]
    r, trace = traced(argv, tmp_path, clean_env(**env_extra), stdin, trace="execve,connect,openat,open,stat,newfstatat")
    assert r.returncode == 2, r.stderr
    line = r.stderr.decode().strip()
    assert line.count("\n") == 0 and "refusing to send credentials over plain HTTP" in line and "--insecure" in line
    _no_network(trace)
    assert os.listdir(out) == []
    for s in setup.secrets():
        assert s not in r.stderr + r.stdout


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: list = []
    challenge = 'Bearer realm="http://auth.invalid/token",service="evil"'

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append((self.path, dict(self.headers)))
        self.send_response_only(401)
        self.send_header("WWW-Authenticate", self.challenge)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type, context: Optional[ssl.SSLContext] = None):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def test_token_realm_on_a_remote_plain_http_host_gets_no_credentials(token_setup: Setup, tmp_path: Path) -> None:
    """A registry (on loopback) whose challenge sends us to http://auth.invalid for a token: with credentials
    that is refused before the realm is even looked up; the registry itself never gets the password."""
    _Recorder.seen = []
    httpd = _serve(_Recorder)
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        argv = [tool("hocker-manifest"), "--registry", url, "-q", "private/secret", "1"]
        r, trace = traced(argv, tmp_path, clean_env(DOCKER_USER=token_setup.user, DOCKER_PASS=token_setup.password),
                          None, trace="connect,openat,open,stat,newfstatat,execve")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert r.returncode == 2, r.stderr
    assert "auth.invalid" in r.stderr.decode() and "--insecure" in r.stderr.decode()
    connects = [line for line in trace if "connect(" in line and "AF_INET" in line]
    assert connects and all("127.0.0.1" in line for line in connects), connects
    assert not [line for line in trace if "resolv.conf" in line or "/etc/hosts" in line]
    assert _Recorder.seen and not any("Authorization" in h for _, h in _Recorder.seen)


# ---------------------------------------------------------------------------------------------------------
# TLS is verified by default

@pytest.fixture(scope="module")
def self_signed(tmp_path_factory) -> tuple[str, list]:
    d = tmp_path_factory.mktemp("selfsigned")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")

    class Handler(_Recorder):
        seen: list = []

    httpd = _serve(Handler, ctx)
    yield f"127.0.0.1:{httpd.server_address[1]}", Handler.seen
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("form", ["https-uri", "reference"])
@pytest.mark.parametrize("tool_name", list(TOOLS))
def test_self_signed_server_is_a_clear_tls_error(self_signed, token_setup: Setup, tmp_path: Path, tool_name: str,
                                                 form: str) -> None:
    host, seen = self_signed
    out = tmp_path / "out"
    out.mkdir()
    tmpl = TOOLS[tool_name]
    if form == "https-uri":
        image = ["--registry", f"https://{host}", "library/hello", "oci"]
    else:  # no scheme: loopback may fall back to http, but never because of a certificate error
        image = [f"{host}/library/hello:oci"]
    argv = [tool(tmpl[0]), *[a.format(out=out, layer="sha256:" + "a" * 64) for a in tmpl[1:]],
            "--platform", "linux/amd64", *image]
    n_seen = len(seen)
    r = subprocess.run(argv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=clean_env(DOCKER_USER=token_setup.user, DOCKER_PASS=token_setup.password))
    assert r.returncode == 6, r.stderr
    lines = r.stderr.decode().splitlines()
    assert len(lines) == 1 and "TLS" in lines[0] and "--ca-file" in lines[0], lines
    assert len(seen) == n_seen  # not one HTTP request got through: the handshake failed first
    assert os.listdir(out) == []
    assert token_setup.password.encode() not in r.stderr


# ---------------------------------------------------------------------------------------------------------
# Nix builds of the private image


def _scan_tree(root: Path, forbidden: list[bytes], skip: tuple[Path, ...] = ()) -> int:
    """No forbidden bytes in any file name or file under root (bz2 logs decompressed); returns files scanned."""
    n = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            for s in forbidden:
                assert s.decode() not in name, os.path.join(dirpath, name)
        for f in filenames:
            p = Path(dirpath, f)
            if p.is_symlink() or any(p == s or s in p.parents for s in skip):
                continue
            data = p.read_bytes()
            if f.endswith(".bz2"):
                data += bz2.decompress(data)
            for s in forbidden:
                assert s not in data, p
            n += 1
    return n


def test_nix_build_of_a_private_image_leaks_nothing(nix, gen_dir: Path, token_setup: Setup, basic_setup: Setup,
                                                    tmp_path: Path) -> None:
    setup = token_setup
    forbidden = setup.secrets() + basic_setup.secrets()
    creds = {"DOCKER_USER": setup.user, "DOCKER_PASS": setup.password}
    expr = nix_docker2nix(setup.reg, setup.image, gen_dir / "secret.nix", env=creds)
    outputs: list[bytes] = [expr.read_bytes()]

    def build(*extra: str, env: Optional[dict[str, str]] = None, attr: Optional[str] = None) -> list[str]:
        args = ["nix-build", str(nix.build_nix), "--no-out-link", "--arg", "file", str(expr), *extra]
        if attr:
            args += ["-A", attr]
        full = nixenv.base_env(**nix.env)
        full.update(env or {})
        r, trace = traced(args, tmp_path, full, None, timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        outputs.extend([r.stdout, r.stderr])
        builders = [line for line in trace if "execve(" in line and "hocker-" in line]
        assert builders, "no fetcher ran"
        for line in trace:
            for s in forbidden:
                assert s.decode() not in line, line
        return r.stdout.decode().split()

    # 1. impure env variables
    [result] = build(env=creds)
    archive = stream_image(result, tmp_path / "secret.tar")
    assert skopeo_config_digest(f"docker-archive:{archive}") == setup.info.config_digest
    # 2. a credentials file named by -I DOCKER_CREDENTIALS=, re-fetched with --check (no env variables)
    cred_file = tmp_path / "creds-outside-the-store"
    cred_file.write_text(f"DOCKER_USER={setup.user}\nDOCKER_PASS={setup.password}\n")
    build("--check", "-I", f"DOCKER_CREDENTIALS={cred_file}", attr="imageLayers")
    build("--check", "-I", f"DOCKER_CREDENTIALS={cred_file}", attr="imageConfig")
    # 3. the TLS + htpasswd registry, Basic auth from the env, its CA through the impure NIX_SSL_CERT_FILE
    b = basic_setup
    bexpr = gen_dir / "basic.nix"
    gen = subprocess.run([tool("docker2nix"), "--registry", b.reg.url, "--ca-file", b.reg.ca_file, "-q",
                          b.repo, b.tag, "--out", str(bexpr)], capture_output=True, timeout=60,
                         env=clean_env(DOCKER_USER=b.user, DOCKER_PASS=b.password), stdin=subprocess.DEVNULL)
    assert gen.returncode == 0, gen.stderr
    outputs.append(bexpr.read_bytes())
    expr = bexpr
    build(env={"DOCKER_USER": b.user, "DOCKER_PASS": b.password,
                          "NIX_SSL_CERT_FILE": b.reg.ca_file}, attr="imageConfig")

    for data in outputs:
        for s in forbidden:
            assert s not in data
    drvs = list(nix.store.glob("*.drv"))
    assert len(drvs) >= 4
    # everything Nix wrote: the store (names and contents), its database, logs and state
    scanned = _scan_tree(nix.root, forbidden)
    assert scanned > len(drvs)
    assert _scan_tree(gen_dir, forbidden) >= 2
