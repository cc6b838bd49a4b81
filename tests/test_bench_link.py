"""bench/link.py, the link emulator of the link cases (issue 19 part 4): it delays, throttles and counts.

Only lower bounds on time (a loaded machine makes things slower, never faster) and exact byte counts.
"""
from __future__ import annotations

import shutil
import socket
import socketserver
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

REPO = str(Path(__file__).resolve().parent.parent)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench.link import Link  # noqa: E402


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on 127.0.0.1, stopped by this fixture."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[0], server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def exchange(port: int, payload: bytes) -> bytes:
    """Send `payload` through the link to the echo server, half-close, read the echo to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            data = s.recv(65536)
            if not data:
                return bytes(got)
            got += data


def test_a_round_trip_takes_at_least_the_delay_both_ways_and_is_counted(echo: tuple[str, int]) -> None:
    with Link(delay=0.05, rate_bits=1e9) as link:
        port = link.forward(*echo)
        t0 = time.perf_counter()
        assert exchange(port, b"ping") == b"ping"
        elapsed = time.perf_counter() - t0
        assert elapsed >= 2 * 0.05
        assert (link.bytes_up, link.bytes_down, link.connections) == (4, 4, 1)
        link.reset()
        assert (link.bytes_up, link.bytes_down, link.connections) == (0, 0, 0)


def test_connections_share_one_bucket(echo: tuple[str, int]) -> None:
    """Two connections at once, 256 KiB each way each: 1 MiB through a 2 MiB/s link takes ~0.5 s, not ~0.25 s."""
    rate = 2 << 20  # bytes per second
    size = 256 << 10
    with Link(delay=0.0, rate_bits=rate * 8, burst=32 << 10) as link:
        port = link.forward(*echo)
        payloads = [bytes([i]) * size for i in (1, 2)]
        results: list[bytes] = []
        threads = [threading.Thread(target=lambda p=p: results.append(exchange(port, p))) for p in payloads]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        elapsed = time.perf_counter() - t0
        assert sorted(results) == sorted(payloads)
        assert (link.bytes_up, link.bytes_down, link.connections) == (2 * size, 2 * size, 2)
        # every byte in both directions took its share of one bucket (less the burst it starts with)
        assert elapsed >= (4 * size - (32 << 10)) / rate


def test_stop_closes_open_connections(echo: tuple[str, int]) -> None:
    link = Link(delay=0.01).start()
    port = link.forward(*echo)
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        s.sendall(b"x")
        assert s.recv(1) == b"x"
        link.stop()
        assert s.recv(1) == b""  # the link closed it: nothing hangs
    finally:
        s.close()
        link.stop()  # a second stop is harmless


@pytest.mark.skipif(shutil.which("nix-build") is None, reason="nix-build is not installed")
def test_the_nix_prefetch_docker_way_makes_the_pull_image_fod_valid(tmp_path: Path) -> None:
    """Case Cp/Bp's peer adds its archive with `nix-store --add-fixed`, then builds pullImage's FOD: the added
    path must be that FOD's output, so the build finds it valid and runs nothing (its builder would fail)."""
    from support.nixenv import Nix

    from bench.cases.link import FOD, archive_name, nix_string

    nix = Nix(tmp_path / "nix")
    archive = tmp_path / archive_name("c")
    archive.write_bytes(b"an image archive\n" * 1000)
    nix_hash = nix.run("nix-hash", "--flat", "--base32", "--type", "sha256", str(archive)).stdout.strip()
    fod = tmp_path / "pullimage.nix"
    fod.write_text(FOD.format(name=nix_string(archive_name("c")), script=nix_string("exit 1"), hash=nix_hash))
    added = nix.run("nix-store", "--add-fixed", "sha256", str(archive)).stdout.strip()
    assert added.startswith(str(nix.store) + "/")
    assert nix.run("nix-build", str(fod), "--no-out-link").stdout.strip() == added
