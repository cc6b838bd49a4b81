"""Atomic outputs: nothing partial or unverified ever appears under the name the user asked for.

The tools promise that an interrupted or failed run never leaves a partial or unverified file at
`--out PATH`, not even briefly under the final name. Every output is therefore written beside its target
under a hidden temporary name (`.<basename>.hocker-XXXXXXXX`) and renamed onto the target only once the
caller has verified everything (`AtomicFile.commit`, `AtomicDir.commit`; a directory that already exists is
swapped in with renameat2 where the kernel can). Only SIGINT (KeyboardInterrupt) and ordinary exceptions
are cleaned up here; a process killed by SIGKILL may leave a hidden temporary file beside the target, but
never anything under the target's name.

Inside a Nix build the target is `$out`, whose directory is the store itself: a hidden file beside it would be
left in /nix/store when Nix kills the builder (Ctrl-C, a timeout), where nothing ever removes it. There the
file is written straight to `$out` instead (`in_nix_build`): Nix registers it only after a successful build
and deletes it after a failed or interrupted one, which gives the same promise without a temporary name.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import tempfile
import threading
from typing import BinaryIO, Callable, List, Optional, TypeVar, Union

from .errors import UsageError

_Self = TypeVar("_Self", bound="_Atomic")

__all__ = ["AtomicFile", "AtomicDir", "current_umask"]

PathLike = Union[str, "os.PathLike[str]"]

_TEMP_INFIX = ".hocker-"


def current_umask() -> int:
    """The process umask, read without changing it when possible.

    `os.umask` can only be read by setting it, which races with other threads
    creating files; Linux exposes it in `/proc/self/status` instead.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: str) -> None:
    """fsync a directory so a rename in it is durable; ignored where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _split_target(target: PathLike, what: str) -> "tuple[str, str, str]":
    """Return (absolute target, its directory, its basename); UsageError if unusable."""
    path = os.fspath(target)
    if not path:
        raise UsageError(f"empty {what} path")
    absolute = os.path.abspath(path)
    parent, base = os.path.split(absolute)
    if not base or base in (".", ".."):
        raise UsageError(f"not a usable {what} path: {path}")
    if not os.path.isdir(parent):
        raise UsageError(f"output directory does not exist: {parent}")
    return absolute, parent, base


def in_nix_build(target: str) -> bool:
    """True when `target` is the output of the Nix build this process runs in (`$out`, with NIX_BUILD_TOP
    set): Nix itself keeps a partial output from ever being used, and the store is no place for temp files."""
    out = os.environ.get("out") or ""
    return bool(os.environ.get("NIX_BUILD_TOP")) and bool(out) and os.path.abspath(out) == target


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


# --------------------------------------------------------------------------- AtomicFile


class _Atomic:
    """The lifecycle both atomic outputs share: commit on a clean exit, discard on any exception.

    Subclasses set `_state = "open"`, `_lock` and `_dir`, and define `_finish()` (put the output in place)
    and `_cleanup()` (remove the temporary output).
    """

    _state: str
    _lock: threading.Lock
    _dir: str

    def commit(self) -> None:
        """Put the output in place; if that fails, the temporary output is removed and the target untouched."""
        with self._lock:
            if self._state != "open":
                if self._state == "discarded":
                    raise RuntimeError(f"{type(self).__name__}.commit() after discard()")
                return
            try:
                self._finish()
            except BaseException:
                self._cleanup()
                self._state = "discarded"
                raise
            self._state = "committed"
        _fsync_dir(self._dir)

    def _finish(self) -> None:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """Remove the temporary output; the target is left as it was (idempotent)."""
        with self._lock:
            if self._state != "open":
                return
            self._cleanup()
            self._state = "discarded"

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: object) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.discard()

    def __del__(self) -> None:  # last resort: never leave the temporary output behind
        try:
            if getattr(self, "_state", None) == "open":
                self.discard()
        except Exception:
            pass


class AtomicFile(_Atomic):
    """A file output that appears at its target only when complete.

    Usage:

        with AtomicFile("out.tar") as af:
            af.file.write(b"...")        # or os.pwrite(af.fd, ...), RegionSinks ...
            ...verify...
        # clean exit: flushed, fsynced, chmod'ed, os.replace'd onto out.tar,
        # and the directory fsynced.  Exception (even KeyboardInterrupt): the
        # temporary file is closed and removed, the exception propagates, and a
        # pre-existing out.tar keeps its old content.

    `commit()` and `discard()` may also be called explicitly (both are
    idempotent; after one of them the other is a no-op).

    Attributes: `target` (absolute final path), `path` (the temporary
    file, `.<basename>.hocker-XXXXXXXX` in the target's directory; the target itself
    as a Nix build's `$out`), `fd` and
    `file` (a buffered binary file object on `fd` opened `w+b`).  Do not
    mix buffered `file.write` with `os.pwrite` on overlapping regions
    without `file.flush()` in between.

    The committed file's mode is `mode & ~umask` (default 0644 under the
    usual umask 022), as a plain `open()` would have produced.

    The target's directory must exist (`UsageError` otherwise), and the
    target must not be a directory.  A symlink at the target is replaced by
    the file (not followed).
    """

    def __init__(self, target: PathLike, mode: int = 0o644) -> None:
        self.target, self._dir, base = _split_target(target, "output")
        if os.path.isdir(self.target) and not os.path.islink(self.target):
            raise UsageError(f"output path is a directory: {self.target}")
        if os.path.exists(self.target) and not os.path.isfile(self.target):
            # renaming onto /dev/null or a FIFO would replace it with a plain file
            raise UsageError(f"output path is not a regular file: {self.target} (to stream, leave out --out)")
        self._mode = mode & ~current_umask() & 0o7777
        self._direct = in_nix_build(self.target)
        try:
            if self._direct:
                self.path = self.target
                self.fd = os.open(self.target, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0),
                                  0o600)
            else:
                self.fd, self.path = tempfile.mkstemp(prefix=f".{base}{_TEMP_INFIX}", dir=self._dir)
        except OSError as exc:
            raise UsageError(f"cannot create a file in {self._dir}: {_one_line(exc)}") from None
        try:
            self.file: BinaryIO = os.fdopen(self.fd, "w+b")
        except BaseException:
            os.close(self.fd)
            os.unlink(self.path)
            raise
        self._state = "open"  # -> "committed" | "discarded"
        self._lock = threading.Lock()

    # file-object conveniences
    def fileno(self) -> int:
        return self.fd

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def _finish(self) -> None:
        """Flush, fsync and rename the temporary file onto the target (in a Nix build: it is the target)."""
        self.file.flush()
        os.fchmod(self.fd, self._mode)
        os.fsync(self.fd)
        self.file.close()
        if not self._direct:
            os.replace(self.path, self.target)

    def _cleanup(self) -> None:
        try:
            self.file.close()
        except BaseException:
            pass
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass



# --------------------------------------------------------------------------- AtomicDir

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


@functools.lru_cache(maxsize=1)
def _renameat2() -> Optional[Callable[..., int]]:
    """libc's renameat2, looked up once; None where the C library lacks it (ctypes, whose import costs a
    subprocess import, only for AtomicDir: not every blob fetch)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


def _exchange(a: str, b: str) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    rc = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a)


class AtomicDir(_Atomic):
    """A directory output (e.g. an OCI layout) that appears at its target only when complete.

    Usage:

        with AtomicDir("out-layout") as ad:
            ad.write_file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
            f = ad.create_file("blobs/sha256/<hex>")   # closed+fsynced at commit
            ...
        # clean exit: every file fsynced, the tree moved onto the target.

    The tree is built in a hidden temporary directory beside the target
    (`.<basename>.hocker-XXXXXXXX`, `.path`).  On commit:

    * target absent: `rename(tmp, target)`;
    * target present: it is swapped with the new tree atomically with
      `renameat2(RENAME_EXCHANGE)` where the kernel and filesystem support it
      (the target name then never disappears), otherwise the old tree is
      renamed away to a hidden sibling, the new one renamed in (the old one is
      renamed back if that fails) -- leaving only a window of microseconds
      in which the target name is absent, never one where it is partial.  The
      old tree is then removed.

    Because replacing means deleting, an existing target is only replaced if
    it is a directory that is empty or contains `replace_marker` (default
    `oci-layout`, i.e. it is an earlier OCI layout); anything else is a
    `UsageError`, checked up front and again at commit.  This keeps a
    mistyped `--out ~` from deleting a home directory.

    On an exception (including KeyboardInterrupt) the temporary tree is removed
    and the target is left untouched.  Directory modes are `0777 & ~umask`,
    file modes `0666 & ~umask` (`mode` argument of `create_file`).
    """

    def __init__(self, target: PathLike, replace_marker: Optional[str] = "oci-layout") -> None:
        self.target, self._dir, base = _split_target(target, "output")
        self._base = base
        self._marker = replace_marker
        self._check_target()
        try:
            self.path = tempfile.mkdtemp(prefix=f".{base}{_TEMP_INFIX}", dir=self._dir)
        except OSError as exc:
            raise UsageError(f"cannot create a directory in {self._dir}: {_one_line(exc)}") from None
        self._files: List[BinaryIO] = []
        self._state = "open"
        self._lock = threading.Lock()
        self.use_exchange = True  # tests may turn the renameat2 path off

    def _check_target(self) -> None:
        t = self.target
        if os.path.islink(t) or (os.path.lexists(t) and not os.path.isdir(t)):
            raise UsageError(f"output path exists and is not a directory: {t}")
        if os.path.isdir(t):
            try:
                entries = os.listdir(t)
            except OSError as exc:
                raise UsageError(f"cannot read existing output directory {t}: {_one_line(exc)}") from None
            if entries and (self._marker is None or self._marker not in entries):
                raise UsageError(
                    f"refusing to replace non-empty directory {t}"
                    + (f" (no {self._marker} file in it)" if self._marker else "")
                )

    def join(self, relpath: str) -> str:
        """Absolute path of `relpath` inside the temporary tree (no escaping it)."""
        rel = os.path.normpath(relpath)
        if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep) or rel == ".":
            raise ValueError(f"path escapes the output directory: {relpath!r}")
        return os.path.join(self.path, rel)

    def create_file(self, relpath: str, mode: int = 0o666) -> BinaryIO:
        """Create (truncate) `relpath` and return a binary file object on it.

        Parent directories are created.  The object is flushed, fsynced and
        closed by `commit` (or closed by `discard`); the caller may
        close it earlier.
        """
        if self._state != "open":
            raise RuntimeError("AtomicDir already committed or discarded")
        full = self.join(relpath)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        fd = os.open(full, os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), mode)
        f = os.fdopen(fd, "w+b")
        with self._lock:
            self._files.append(f)
        return f

    def write_file(self, relpath: str, data: bytes, mode: int = 0o666) -> None:
        """Write a small file completely (fsynced now)."""
        f = self.create_file(relpath, mode)
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
        f.close()

    def _finish(self) -> None:
        """Close and fsync every file and directory, then install the tree at the target."""
        for f in self._files:
            if not f.closed:
                f.flush()
                os.fsync(f.fileno())
                f.close()
        self._files.clear()
        for root, _dirs, _files in os.walk(self.path, topdown=False):
            _fsync_dir(root)
        os.chmod(self.path, 0o777 & ~current_umask())
        self._check_target()
        self._install()

    def _install(self) -> None:
        """Put the tree in place; another writer racing for the same target only makes us try again."""
        races = (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT)
        for attempt in range(8):
            try:
                self._install_once()
                return
            except OSError as exc:
                if exc.errno not in races or attempt == 7:
                    raise

    def _install_once(self) -> None:
        if not os.path.lexists(self.target):
            os.rename(self.path, self.target)  # ENOTEMPTY if someone else just created it
            return
        if self.use_exchange and _exchange(self.path, self.target):
            # self.path now holds the old tree
            shutil.rmtree(self.path, ignore_errors=True)
            return
        old = tempfile.mkdtemp(prefix=f".{self._base}{_TEMP_INFIX}old-", dir=self._dir)
        try:
            os.rename(self.target, old)  # onto an empty directory: allowed
        except BaseException:
            os.rmdir(old)
            raise
        try:
            os.rename(self.path, self.target)
        except BaseException:
            os.rename(old, self.target)
            raise
        shutil.rmtree(old, ignore_errors=True)

    def _cleanup(self) -> None:
        for f in self._files:
            try:
                f.close()
            except BaseException:
                pass
        self._files.clear()
        shutil.rmtree(self.path, ignore_errors=True)
