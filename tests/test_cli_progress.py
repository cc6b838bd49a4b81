"""Progress goes to stderr only when stderr is a terminal, and never with -q."""

from __future__ import annotations

import os
import pty
import subprocess

from support.clitools import clean_env, tool


def run_with_tty_stderr(*args: str) -> tuple[int, bytes, bytes]:
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([tool(args[0]), *args[1:]], stdout=subprocess.PIPE, stderr=slave,
                                stdin=subprocess.DEVNULL, env=clean_env())
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        out, _ = proc.communicate(timeout=60)
        return proc.returncode, out, b"".join(chunks)
    finally:
        os.close(master)


def test_progress_on_a_terminal_only(plain_registry, tmp_path):
    args = ["hocker-image", "--registry", plain_registry.url, "--out", str(tmp_path / "a.tar"), "library/hello", "oci"]
    rc, out, err = run_with_tty_stderr(*args)
    assert rc == 0
    assert b"hocker-image: " in err and b"MB" in err and b"2/2 blobs" in err
    assert out.strip() == str(tmp_path / "a.tar").encode()  # stdout stays clean for scripts
    rc, out, err = run_with_tty_stderr(*args[:-2], "-q", "library/hello", "oci")
    assert rc == 0 and err == b""
    r = subprocess.run([tool(args[0]), *args[1:]], capture_output=True, env=clean_env(), stdin=subprocess.DEVNULL)
    assert r.returncode == 0 and r.stderr == b""  # not a terminal: quiet
