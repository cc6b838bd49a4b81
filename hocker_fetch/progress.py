"""Progress on stderr: one self-overwriting line while a terminal watches, nothing otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional, TextIO


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Progress:
    """Thread-safe byte counter across all blobs of one command, redrawn at most 10 times a second."""

    def __init__(self, prog: str, total: Optional[int], items: int, *, enabled: bool,
                 stream: TextIO = sys.stderr):
        self.prog = prog
        self.total = total
        self.items = items
        self.enabled = enabled
        self.stream = stream
        self.done = 0
        self.finished_items = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._start = time.monotonic()

    def add(self, n: int) -> None:
        """Count n more bytes (negative when a download restarts from zero)."""
        with self._lock:
            self.done += n
            self._draw(force=False)

    def item_done(self) -> None:
        with self._lock:
            self.finished_items += 1
            self._draw(force=True)

    def close(self) -> None:
        if self.enabled:
            with self._lock:
                self._draw(force=True)
                self.stream.write("\n")
                self.stream.flush()

    def _draw(self, force: bool) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        rate = self.done / max(now - self._start, 1e-6)
        total = f"/{_mb(self.total)}" if self.total else ""
        line = (f"\r{self.prog}: {_mb(self.done)}{total}  {self.finished_items}/{self.items} blobs  "
                f"{rate / 1e6:.1f} MB/s")
        self.stream.write(line.ljust(72))
        self.stream.flush()
