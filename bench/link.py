"""A link emulator: a user-space TCP proxy with one-way delay per chunk and one shared bandwidth limit (issue 19).

Loopback has no latency and no bandwidth limit, so there a process start-up per layer is everything. Users sit
behind a link: `Link` puts one in front of any number of TCP targets (the registry, the token server). Every
chunk read from either side is held for `delay` seconds before it is written to the other (20 ms each way is a
40 ms round trip), and every chunk first takes its bytes from one token bucket that all connections and both
directions share (`rate` bits per second, a short burst): a single link, not a limit per connection. Chunks stay
in order and in flight while they wait, so a long transfer is limited by the rate, not by the delay (as on a real
link with a large enough TCP window). TLS passes through untouched: the handshakes pay the round trips.

It runs its own asyncio loop on a thread; `stop()` closes every listener and connection and joins the thread.
`bytes_up`/`bytes_down` count what went through (client -> target, target -> client), `connections` the
accepted connections; `reset()` zeroes them between measured runs.
"""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

DELAY_S = 0.020        # one way: a 40 ms round trip
RATE_BITS = 100e6      # 100 Mbit/s, shared by all connections
BURST = 32 << 10       # bytes the bucket holds when the link has been idle
CHUNK = 16 << 10       # the most read from a socket at once (one "packet train")
IN_FLIGHT = 256        # chunks queued per direction of a connection before the sender is paused (4 MiB)


class TokenBucket:
    """Bytes per second with a burst of `burst` bytes; `take(n)` waits until n bytes may go. One event loop only.

    Tokens go negative when a chunk is larger than what is left: the taker waits for the debt, and the next
    taker waits behind it, so concurrent connections share the rate in the order they asked.
    """

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp: float | None = None

    async def take(self, n: int) -> None:
        now = asyncio.get_running_loop().time()
        if self.stamp is not None:
            self.tokens = min(float(self.burst), self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


@dataclass
class Route:
    """One listening port of the link and the target it forwards to."""

    port: int
    target: tuple[str, int]


class Link:
    """The emulated link; `forward(host, port)` opens a listening port on 127.0.0.1 in front of a target."""

    def __init__(self, delay: float = DELAY_S, rate_bits: float = RATE_BITS, burst: int = BURST,
                 chunk: int = CHUNK) -> None:
        self.delay = delay
        self.rate_bits = rate_bits
        self.chunk = chunk
        self.bucket = TokenBucket(rate_bits / 8, burst)
        self.bytes_up = 0
        self.bytes_down = 0
        self.connections = 0
        self.routes: list[Route] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bench-link", daemon=True)
        self._servers: list[Any] = []  # asyncio.Server
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> Link:
        self._thread.start()
        return self

    def forward(self, host: str, port: int) -> int:
        """Listen on a free port of 127.0.0.1 and forward every connection to host:port through the link."""
        async def listen() -> int:
            server = await asyncio.start_server(lambda r, w: self._accept(r, w, (host, port)), "127.0.0.1", 0)
            self._servers.append(server)
            return int(server.sockets[0].getsockname()[1])

        bound = asyncio.run_coroutine_threadsafe(listen(), self._loop).result(timeout=10)
        self.routes.append(Route(bound, (host, port)))
        return bound

    def stop(self) -> None:
        """Close the listeners and every connection, stop the loop, join the thread."""
        if not self._thread.is_alive():
            return

        async def shutdown() -> None:
            for server in self._servers:
                server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            for server in self._servers:
                await server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Link:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Zero the counters (between measured runs)."""
        def zero() -> None:
            self.bytes_up = self.bytes_down = self.connections = 0

        self._loop.call_soon_threadsafe(zero)
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop).result(timeout=10)

    @property
    def bytes_total(self) -> int:
        return self.bytes_up + self.bytes_down

    # -- the data path ---------------------------------------------------------------------------------
    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, target: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._connection(reader, writer, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connection(self, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter,
                          target: tuple[str, int]) -> None:
        self.connections += 1
        try:
            t_reader, t_writer = await asyncio.open_connection(*target)
        except OSError:
            c_writer.close()
            return
        try:
            await both(self._direction(c_reader, t_writer, up=True), self._direction(t_reader, c_writer, up=False))
        finally:
            for w in (c_writer, t_writer):
                w.close()

    async def _direction(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        """Copy one direction: each chunk takes its bytes from the shared bucket, then arrives `delay` later."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(IN_FLIGHT)

        async def send() -> None:
            while True:
                data = await reader.read(self.chunk)
                if not data:
                    await queue.put(None)  # end of this direction: a half-close, after what is in flight
                    return
                await self.bucket.take(len(data))
                await queue.put((loop.time() + self.delay, data))

        async def deliver() -> None:
            while True:
                item = await queue.get()
                if item is None:
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                due, data = item
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)

        await both(send(), deliver())


async def both(*coros: Coroutine[Any, Any, None]) -> None:
    """Run the coroutines together until all end; when one fails (a reset connection), cancel the others.

    A broken connection is the end of that connection, not an error of the link: nothing is raised.
    """
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
