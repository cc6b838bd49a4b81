"""Blob sinks: where the registry client streams a blob's bytes while it verifies them.

The client writes a blob, hashing it as it goes, into `sink.write`; on a resumed download it asks
`sink.tell()` for the `Range: bytes=N-` start, and if the server ignores the Range (200 instead of 206) it
calls `sink.restart()` and starts over; at the end the caller checks `sink.verify_complete()`. Keeping the
destination behind this small protocol is what lets one download loop fill a file (`FileSink`, e.g.
`blobs/sha256/<hex>` of an OCI layout), a region of a tar file shared with other threads (`RegionSink`,
see `archive.TarLayout`) or memory (`BytesSink`, a config). Sinks with a declared size refuse bytes past
it (VerificationError) before writing any of them.
"""

from __future__ import annotations

import errno
import os
from typing import BinaryIO, Optional, Protocol, runtime_checkable

from .errors import VerificationError

__all__ = ["BlobSink", "FileSink", "RegionSink", "BytesSink"]


@runtime_checkable
class BlobSink(Protocol):
    """Where the registry client writes a blob's bytes while verifying them."""

    def write(self, data: bytes) -> None:
        """Append `data`."""

    def restart(self) -> None:
        """Discard everything written (the server ignored our Range; we start over)."""

    def tell(self) -> int:
        """Bytes written so far (used to resume with `Range: bytes=N-`)."""

    def verify_complete(self) -> None:
        """VerificationError unless the whole blob arrived (its declared size, where the sink knows one)."""


class _Counted:
    """What every sink shares: a byte count, and the declared size it may not exceed (when there is one)."""

    def __init__(self, size: Optional[int], digest: Optional[str]) -> None:
        self.size = size
        self.digest = digest
        self._written = 0

    def _make_room(self, n: int) -> None:
        """Refuse `n` more bytes past the declared size, before any of them is written."""
        if self.size is not None and self._written + n > self.size:
            raise VerificationError(f"blob{self._label} larger than its declared size ({self.size} bytes)")

    @property
    def _label(self) -> str:
        return f" {self.digest}" if self.digest else ""

    def tell(self) -> int:
        return self._written

    def verify_complete(self) -> None:
        """VerificationError unless exactly `size` bytes were written."""
        if self.size is not None and self._written != self.size:
            raise VerificationError(
                f"blob{self._label} has {self._written} bytes, its declared size is {self.size}"
            )


class FileSink(_Counted):
    """Sequential writes into a binary file object, starting at its current position.

    `restart()` seeks back to that start and truncates there. With `size` given, bytes past it are
    refused with VerificationError (nothing of the offending chunk is written).
    """

    def __init__(self, fileobj: BinaryIO, size: Optional[int] = None, digest: Optional[str] = None) -> None:
        super().__init__(size, digest)
        self.file = fileobj
        self._start = fileobj.tell()

    def write(self, data: bytes) -> None:
        self._make_room(len(data))
        self.file.write(data)
        self._written += len(data)

    def restart(self) -> None:
        self.file.seek(self._start)
        self.file.truncate(self._start)
        self._written = 0


class RegionSink(_Counted):
    """Writes into the fixed region `[offset, offset+size)` of an open file with `os.pwrite`.

    The file must already be sized (`TarLayout.write_skeleton` does it). Each sink is meant for one writer
    thread; different sinks over the same `fd` may be used concurrently (`pwrite` does not move the shared
    file offset). Bytes past `size` are refused with VerificationError before anything of the offending
    chunk is written, so a lying server can never overwrite a neighbouring member.
    """

    size: int

    def __init__(self, fd: int, offset: int, size: int, digest: Optional[str] = None) -> None:
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        super().__init__(size, digest)
        self.fd = fd
        self.offset = offset

    def write(self, data: bytes) -> None:
        n = len(data)
        self._make_room(n)
        view = memoryview(data)
        pos = self.offset + self._written
        while view:
            k = os.pwrite(self.fd, view, pos)
            if k <= 0:  # pragma: no cover - pwrite on a regular file does not return 0
                raise OSError(errno.EIO, "short write")
            view = view[k:]
            pos += k
        self._written += n

    def restart(self) -> None:
        # The region is rewritten from its start; stale bytes beyond the new
        # end are caught by verify_complete (size mismatch) or overwritten.
        self._written = 0


class BytesSink(_Counted):
    """Collects a small blob (a config) in memory; `buffer` holds what arrived.

    With `size` given, bytes past it are refused and `verify_complete` checks that exactly `size` arrived;
    without, any length is complete (the client's digest check still covers the content).
    """

    def __init__(self, size: Optional[int] = None, digest: Optional[str] = None) -> None:
        super().__init__(size, digest)
        self.buffer = bytearray()

    def write(self, data: bytes) -> None:
        self._make_room(len(data))
        self.buffer += data
        self._written += len(data)

    def restart(self) -> None:
        self.buffer.clear()
        self._written = 0
