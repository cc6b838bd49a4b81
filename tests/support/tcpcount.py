"""A TCP front that counts the connections it accepts and forwards every byte to a real server, untouched.

Why TCP and not HTTP: what is counted is what a client pays for (TCP and TLS set-ups); TLS passes through
unopened, so the client still verifies the registry's own certificate (issued for 127.0.0.1, any port).

    with ConnectionCounter(registry.host) as front:     # "127.0.0.1:PORT" of the real server
        run(..., "--registry", f"{registry.scheme}://{front.host}", ...)
        assert front.accepted == 1
"""
from __future__ import annotations

import socket
import threading
from typing import Callable, Optional


class ConnectionCounter:
    """Listens on 127.0.0.1 (a free port), counts accepts, pipes each connection to `upstream`."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.accepted = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._listener: Optional[socket.socket] = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        assert self._listener is not None, "not started"
        return self._listener.getsockname()[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "ConnectionCounter":
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in self._sockets:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        for t in list(self._threads):
            t.join(timeout=5)

    def __enter__(self) -> "ConnectionCounter":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.accepted = 0

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self.accepted += 1
                self._sockets += [client, server]
            self._spawn(self._pipe, client, server)
            self._spawn(self._pipe, server, client)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
