"""How bytes move: a blob body read from the socket in one thread while another hashes and writes it, and many
blobs fetched by a few worker threads at once.

Split from client.py (which decides what to fetch and from where).
"""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator, Optional, Sequence, TypeVar

import urllib3

from .digest import DigestVerifier
from .sinks import BlobSink

CHUNK = 1 << 20
T = TypeVar("T")


class Pipeline:
    """Hash and write in a second thread while this one reads the socket (all three release the GIL).

    Measured on a 512 MB blob: about 1.5x the throughput of doing them in turn. Chunks pass through a
    bounded queue (constant memory); a worker error is re-raised in the reading thread, and the worker is
    always joined before the caller looks at sink.tell() again, so resume offsets stay exact.
    """

    DEPTH = 8

    def __init__(self, verifier: DigestVerifier, sink: BlobSink, progress: Optional[Callable[[int], None]]):
        self.queue: "queue.Queue[Optional[bytes]]" = queue.Queue(self.DEPTH)
        self.verifier, self.sink, self.progress = verifier, sink, progress
        self.error: Optional[BaseException] = None
        self.thread = threading.Thread(target=self._work, daemon=True)

    def _work(self) -> None:
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return
            if self.error is not None:
                continue  # keep draining so the reader never blocks on a full queue
            try:
                self.verifier.update(chunk)
                self.sink.write(chunk)
                if self.progress:
                    self.progress(len(chunk))
            except BaseException as exc:  # handed to the reading thread
                self.error = exc

    def __enter__(self) -> Callable[[bytes], None]:
        self.thread.start()
        return self.push

    def push(self, chunk: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(chunk)

    def __exit__(self, *exc: object) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def chunks(raw: urllib3.response.HTTPResponse) -> Iterator[bytes]:
    """The body as it arrives (read1: whatever is there, up to CHUNK), never decoded.

    Unlike read(CHUNK), nothing received is held back when the connection stalls or breaks, so a resumed
    download continues from the last byte that really arrived.
    """
    read = getattr(raw, "read1", None)
    if read is None:  # urllib3 < 2.3: small reads lose little on a stall
        yield from raw.stream(65536, decode_content=False)
        return
    while True:
        chunk = read(CHUNK, decode_content=False)
        if not chunk:
            return
        yield chunk


def run_parallel(items: Sequence[T], one: Callable[[T], None], jobs: int, stop: threading.Event) -> None:
    """one(item) for every item, `jobs` threads at a time; the first failure sets `stop` (what the others are
    given as their cancel event) and is raised here, in the caller's thread (a Cancelled only when all are).

    Daemon threads: on Ctrl-C/SIGTERM a worker stuck in a socket read must not hold the exit for --timeout
    (the caller discards the output and the process exits without waiting for them). On a failure they are
    joined: a worker may still be writing into the file that is about to be removed.
    """
    from .transport import Cancelled

    todo = list(items)
    errors: list[BaseException] = []

    def worker() -> None:
        while not stop.is_set():
            try:
                item = todo.pop(0)
            except IndexError:
                return
            try:
                one(item)
            except BaseException as exc:  # handed to the main thread
                errors.append(exc)
                stop.set()
                return

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(jobs, len(todo))))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except BaseException:
        stop.set()
        raise
    if errors:
        raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
