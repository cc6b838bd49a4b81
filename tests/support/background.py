"""A stdlib HTTP server on a thread of its own, and a child process, each stopped by the test that owns it."""
from __future__ import annotations

import subprocess
import threading
from http.server import HTTPServer
from typing import Optional


def stop_process(proc: "subprocess.Popen[bytes]", timeout: float) -> None:
    """End a server process through our own handle: terminate, then kill if it lingers past `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)


class BackgroundServer:
    """Owns one HTTPServer and its serving thread; `stop()` shuts both down and waits for the thread."""

    def __init__(self) -> None:
        self._httpd: Optional[HTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def _start_serving(self, httpd: HTTPServer, name: str) -> None:
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
        self._thread.start()

    def _stop_serving(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _bound_port(self, what: str) -> int:
        assert self._httpd is not None, f"{what} not started"
        return self._httpd.server_address[1]
