"""One TCP connection per registry host per fetch: a discarded response (the 401 challenge, a 503 before its
retry) is read to its end, so urllib3 keeps its connection for the next request instead of opening another
(one more TCP and TLS set-up per blob builder, issue 19).

Counted where the client pays for it: a TCP front (support/tcpcount.py) in front of the real registry counts
accepted connections. The token server speaks HTTP/1.0 (one connection per request), so its request log is
its connection count. The builder is what nix/default.nix runs per blob: `python -m hocker_fetch.fetchblob`.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
from support.clitools import clean_env, cred_env, run
from support.tcpcount import ConnectionCounter

IMAGE_REPO, IMAGE_TAG = "library/hello", "oci"


def fetch_blob(registry_url: str, digest: str, out: Path, *extra: str, env: dict[str, str],
               repo: str = IMAGE_REPO) -> subprocess.CompletedProcess:
    """The fixed-output builder's command, as nix/default.nix runs it."""
    return subprocess.run([sys.executable, "-m", "hocker_fetch.fetchblob", "--quiet", "--registry", registry_url,
                           *extra, "--layer", digest, repo, IMAGE_TAG, "--out", str(out)],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)


@pytest.fixture
def front(request: pytest.FixtureRequest) -> Iterator[tuple[ConnectionCounter, Any]]:
    """(a connection counter in front of the registry fixture named by the parameter, that registry)"""
    reg = request.getfixturevalue(request.param)
    with ConnectionCounter(reg.host) as counter:
        yield counter, reg


def _largest_layer(reg) -> str:
    return max(reg.images[f"{IMAGE_REPO}:{IMAGE_TAG}"].single.layers, key=lambda layer: layer[2])[0]


@pytest.mark.parametrize("front", ["basic_registry"], indirect=True)
def test_builder_under_basic_auth_uses_one_tls_connection(front: tuple[ConnectionCounter, Any], tmp_path: Path) -> None:
    counter, reg = front
    digest = _largest_layer(reg)
    out = tmp_path / "blob"
    proc = fetch_blob(f"https://{counter.host}", digest, out, "--ca-file", reg.ca_file, env=cred_env(reg))
    assert proc.returncode == 0, proc.stderr
    assert "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest() == digest
    # the anonymous GET's 401 and the authorised GET share one TCP+TLS connection
    assert counter.accepted == 1


@pytest.mark.parametrize("front", ["token_registry"], indirect=True)
def test_builder_under_token_auth_one_connection_each_to_registry_and_token_server(
        front: tuple[ConnectionCounter, Any], token_server, tmp_path: Path) -> None:
    counter, reg = front
    digest = _largest_layer(reg)
    out = tmp_path / "blob"
    proc = fetch_blob(f"http://{counter.host}", digest, out, env=cred_env(reg))
    assert proc.returncode == 0, proc.stderr
    assert "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert counter.accepted == 1
    assert len(token_server.snapshot()) == 1  # HTTP/1.0: one request is one connection


@pytest.mark.parametrize("front", ["token_registry"], indirect=True)
@pytest.mark.parametrize("jobs", [1, 2])
def test_hocker_image_workers_reuse_their_connections(front: tuple[ConnectionCounter, Any], token_server,
                                                      tmp_path: Path, jobs: int) -> None:
    counter, reg = front
    out = tmp_path / "image.tar"
    proc = run("hocker-image", "--registry", f"http://{counter.host}", "--jobs", str(jobs), "--quiet",
               IMAGE_REPO, IMAGE_TAG, "--out", str(out), env=cred_env(reg))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 0
    # manifest, config and layers: never more connections than workers (the first one is reused by all)
    assert 1 <= counter.accepted <= jobs
    assert len(token_server.snapshot()) == 1  # one token for the repository's pull scope, reused


class _BusyOnce(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive: the first blob GET gets a short 503 body, the next ones the blob."""

    protocol_version = "HTTP/1.1"
    blob = b""
    busy = b""
    hits = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        with self.lock:
            type(self).hits += 1
            first = type(self).hits == 1
        status, body = (503, self.busy) if first else (200, self.blob)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json" if first else "application/octet-stream")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("busy, connections", [
    (b'{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}', 1),
    (b"<html>" + b"x" * (1 << 20) + b"</html>", 2),  # past DRAIN_LIMIT: not read, the connection is dropped
], ids=["short-body", "long-body"])
def test_a_retried_503_keeps_its_connection_when_its_body_is_short(tmp_path: Path, busy: bytes,
                                                                   connections: int) -> None:
    """The real registry never answers 503 on demand: a small keep-alive server of our own does."""
    blob = b"x" * 5000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    handler = type("Handler", (_BusyOnce,), {"blob": blob, "busy": busy, "hits": 0, "lock": threading.Lock()})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        with ConnectionCounter(f"127.0.0.1:{httpd.server_address[1]}") as counter:
            out = tmp_path / "blob"
            proc = fetch_blob(f"http://{counter.host}", digest, out, "--retries", "2", env=clean_env())
            assert proc.returncode == 0, proc.stderr
            assert out.read_bytes() == blob
            assert handler.hits == 2
            assert counter.accepted == connections
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
