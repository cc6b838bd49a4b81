"""Atomic outputs and blob sinks: nothing partial ever appears under the final name."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time

import pytest

from hocker_fetch import atomic
from hocker_fetch.atomic import AtomicDir, AtomicFile
from hocker_fetch.errors import UsageError, VerificationError
from hocker_fetch.sinks import BlobSink, BytesSink, FileSink, RegionSink

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def leftovers(d):
    return sorted(n for n in os.listdir(d) if ".hocker-" in n)


# --------------------------------------------------------------------------- AtomicFile


def test_atomic_file_success_writes_exact_content(tmp_path):
    target = tmp_path / "out.tar"
    with AtomicFile(target) as af:
        assert os.path.dirname(af.path) == str(tmp_path)
        assert os.path.basename(af.path).startswith(".out.tar.hocker-")
        af.file.write(b"hello ")
        af.write(b"world")
        af.file.flush()
        os.pwrite(af.fd, b"W", 6)
        assert not target.exists()
    assert target.read_bytes() == b"hello World"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644 & ~atomic.current_umask()
    assert leftovers(tmp_path) == []


def test_atomic_file_mode_honours_umask(tmp_path):
    old = os.umask(0o077)
    try:
        with AtomicFile(tmp_path / "private") as af:
            af.write(b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o600
    assert atomic.current_umask() == old


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_file_exception_leaves_nothing(tmp_path, exc):
    target = tmp_path / "out.tar"
    with pytest.raises(type(exc)):
        with AtomicFile(target) as af:
            af.write(b"partial data" * 1000)
            af.file.flush()
            raise exc
    assert os.listdir(tmp_path) == []


def test_atomic_file_exception_keeps_previous_target(tmp_path):
    target = tmp_path / "out.tar"
    target.write_bytes(b"old")
    with pytest.raises(ValueError):
        with AtomicFile(target) as af:
            af.write(b"new")
            raise ValueError
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_target_is_never_observed_partial(tmp_path):
    target = tmp_path / "out.bin"
    old, new = b"o" * 100_000, bytes(range(256)) * 4096
    target.write_bytes(old)
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            with open(target, "rb") as f:
                seen.add(f.read())

    t = threading.Thread(target=watch)
    t.start()
    try:
        with AtomicFile(target) as af:
            for i in range(0, len(new), 4096):
                af.write(new[i : i + 4096])
                af.file.flush()
            time.sleep(0.05)
            assert target.read_bytes() == old  # untouched until commit
        time.sleep(0.05)
    finally:
        stop.set()
        t.join()
    assert seen <= {old, new} and old in seen and new in seen
    assert target.read_bytes() == new


def test_explicit_commit_and_discard(tmp_path):
    af = AtomicFile(tmp_path / "a")
    af.write(b"1")
    af.commit()
    af.commit()  # idempotent
    af.discard()  # no-op after commit
    assert (tmp_path / "a").read_bytes() == b"1"

    af = AtomicFile(tmp_path / "b")
    af.write(b"2")
    af.discard()
    af.discard()
    with pytest.raises(RuntimeError):
        af.commit()
    assert sorted(os.listdir(tmp_path)) == ["a"]


def test_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as ei:
        AtomicFile(tmp_path / "nope" / "out.tar")
    assert "\n" not in str(ei.value) and "does not exist" in str(ei.value)
    with pytest.raises(UsageError):
        AtomicFile(tmp_path)  # a directory
    with pytest.raises(UsageError):
        AtomicDir(tmp_path / "nope" / "layout")


def test_sigint_in_another_process_leaves_nothing(tmp_path):
    """A real interrupted run: Ctrl-C while a child writes through AtomicFile."""
    target = tmp_path / "out.tar"
    code = (
        "import sys, time\n"
        "from hocker_fetch.atomic import AtomicFile\n"
        "with AtomicFile(sys.argv[1]) as af:\n"
        "    af.write(b'x' * 1000000); af.file.flush()\n"
        "    print('ready', flush=True)\n"
        "    time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(target)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=ROOT))
    with p:
        try:
            assert p.stdout.readline().strip() == b"ready"
            assert len(leftovers(tmp_path)) == 1
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert p.returncode != 0 and b"KeyboardInterrupt" in err
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- AtomicDir


def test_atomic_dir_success(tmp_path):
    target = tmp_path / "layout"
    with AtomicDir(target) as ad:
        ad.write_file("oci-layout", b"{}")
        f = ad.create_file("blobs/sha256/abc")
        f.write(b"blob")
        assert not target.exists()
        assert os.path.basename(ad.path).startswith(".layout.hocker-")
    assert (target / "oci-layout").read_bytes() == b"{}"
    assert (target / "blobs" / "sha256" / "abc").read_bytes() == b"blob"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o777 & ~atomic.current_umask()
    assert stat.S_IMODE(os.stat(target / "oci-layout").st_mode) == 0o666 & ~atomic.current_umask()
    assert os.listdir(tmp_path) == ["layout"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_dir_exception_leaves_previous_state(tmp_path, exc):
    target = tmp_path / "layout"
    target.mkdir()
    (target / "oci-layout").write_bytes(b"old")
    with pytest.raises(type(exc)):
        with AtomicDir(target) as ad:
            ad.write_file("oci-layout", b"new")
            ad.create_file("blobs/x").write(b"partial")
            raise exc
    assert os.listdir(tmp_path) == ["layout"]
    assert os.listdir(target) == ["oci-layout"] and (target / "oci-layout").read_bytes() == b"old"


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-away"])
def test_atomic_dir_replaces_a_previous_layout(tmp_path, exchange):
    target = tmp_path / "layout"
    target.mkdir()
    (target / "oci-layout").write_bytes(b"old")
    (target / "stale").write_bytes(b"stale")
    with AtomicDir(target) as ad:
        ad.use_exchange = exchange
        ad.write_file("oci-layout", b"new")
    assert sorted(os.listdir(target)) == ["oci-layout"]
    assert (target / "oci-layout").read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["layout"]


def test_atomic_dir_exchange_never_hides_the_target(tmp_path):
    target = tmp_path / "layout"
    with AtomicDir(target) as ad:
        ad.write_file("oci-layout", b"0")
    probe = tmp_path / "probe"
    probe.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    if not atomic._exchange(str(probe), str(other)):
        pytest.skip("renameat2(RENAME_EXCHANGE) not supported here")
    missing, stop = [], threading.Event()

    def watch():
        while not stop.is_set():
            try:
                with open(target / "oci-layout", "rb") as f:
                    f.read()
            except FileNotFoundError:
                missing.append(1)

    t = threading.Thread(target=watch)
    t.start()
    try:
        for i in range(1, 30):
            with AtomicDir(target) as ad:
                ad.write_file("oci-layout", str(i).encode())
    finally:
        stop.set()
        t.join()
    assert not missing
    assert (target / "oci-layout").read_bytes() == b"29"


def test_atomic_dir_refuses_to_replace_foreign_directories(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "precious").write_bytes(b"keep me")
    with pytest.raises(UsageError) as ei:
        AtomicDir(home)
    assert "refusing" in str(ei.value)
    assert (home / "precious").read_bytes() == b"keep me"
    afile = tmp_path / "afile"
    afile.write_bytes(b"x")
    with pytest.raises(UsageError):
        AtomicDir(afile)
    # an empty directory may be replaced
    (tmp_path / "empty").mkdir()
    with AtomicDir(tmp_path / "empty") as ad:
        ad.write_file("oci-layout", b"1")
    assert (tmp_path / "empty" / "oci-layout").read_bytes() == b"1"
    assert leftovers(tmp_path) == []


def test_atomic_dir_rechecks_the_target_at_commit(tmp_path):
    target = tmp_path / "layout"
    with pytest.raises(UsageError):
        with AtomicDir(target) as ad:
            ad.write_file("oci-layout", b"1")
            target.mkdir()  # someone else put a foreign directory there meanwhile
            (target / "theirs").write_bytes(b"t")
    assert os.listdir(target) == ["theirs"]
    assert leftovers(tmp_path) == []


def test_atomic_dir_paths_cannot_escape(tmp_path):
    with AtomicDir(tmp_path / "l") as ad:
        for bad in ["../x", "/etc/passwd", "a/../../x", "."]:
            with pytest.raises(ValueError):
                ad.create_file(bad)
        ad.write_file("a/../b", b"ok")  # normalised, stays inside
    assert (tmp_path / "l" / "b").read_bytes() == b"ok"


# --------------------------------------------------------------------------- sinks


def test_file_sink(tmp_path):
    with open(tmp_path / "f", "w+b") as f:
        f.write(b"HEAD")
        s = FileSink(f, size=10, digest="sha256:x")
        assert isinstance(s, BlobSink)
        s.write(b"abcdef")
        assert s.tell() == 6
        s.restart()
        assert s.tell() == 0
        s.write(b"0123")
        with pytest.raises(VerificationError) as ei:
            s.write(b"4567890")  # 11 > 10
        assert "larger than its declared size" in str(ei.value)
        with pytest.raises(VerificationError):
            s.verify_complete()
        s.write(b"456789")
        s.verify_complete()
        f.flush()
    assert (tmp_path / "f").read_bytes() == b"HEAD0123456789"


def test_file_sink_restart_truncates(tmp_path):
    with open(tmp_path / "f", "w+b") as f:
        s = FileSink(f)
        s.write(b"long first attempt")
        s.restart()
        s.write(b"short")
        s.verify_complete()  # no size: nothing to check
    assert (tmp_path / "f").read_bytes() == b"short"


def test_bytes_sink_is_a_full_blob_sink():
    s = BytesSink()
    assert isinstance(s, BlobSink)
    s.write(b"false start")
    s.restart()
    s.write(b"config")
    assert (bytes(s.buffer), s.tell()) == (b"config", 6)
    s.verify_complete()  # no size: nothing to check
    sized = BytesSink(size=3, digest="sha256:abc")
    with pytest.raises(VerificationError):
        sized.write(b"four")
    sized.write(b"ab")
    with pytest.raises(VerificationError):
        sized.verify_complete()


def test_region_sink_refuses_overflow_and_protects_neighbours(tmp_path):
    path = tmp_path / "r"
    path.write_bytes(b"A" * 10 + b"\0" * 5 + b"B" * 10)
    fd = os.open(path, os.O_RDWR)
    try:
        s = RegionSink(fd, 10, 5, digest="sha256:abc")
        assert isinstance(s, BlobSink)
        s.write(b"12")
        with pytest.raises(VerificationError) as ei:
            s.write(b"3456")
        assert "blob sha256:abc larger than its declared size" in str(ei.value)
        assert s.tell() == 2
        with pytest.raises(VerificationError):
            s.verify_complete()
        s.restart()
        s.write(b"xyzw")
        s.write(b"v")
        s.verify_complete()
        with pytest.raises(VerificationError):
            s.write(b"!")
    finally:
        os.close(fd)
    assert path.read_bytes() == b"A" * 10 + b"xyzwv" + b"B" * 10


def test_region_sinks_in_parallel(tmp_path):
    sizes = [0, 1, 511, 512, 513, 100_000, 7]
    blobs = [os.urandom(n) for n in sizes]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    with AtomicFile(tmp_path / "out") as af:
        os.ftruncate(af.fd, sum(sizes))
        sinks = [RegionSink(af.fd, o, n) for o, n in zip(offsets, sizes)]

        def fill(sink, data):
            for i in range(0, len(data), 997):
                sink.write(data[i : i + 997])
            sink.verify_complete()

        ts = [threading.Thread(target=fill, args=a) for a in reversed(list(zip(sinks, blobs)))]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for s in sinks:
            s.verify_complete()
    assert (tmp_path / "out").read_bytes() == b"".join(blobs)
