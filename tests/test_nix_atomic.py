"""atomic.AtomicFile inside a Nix build (issue 18, item 3): the output `$out` is written in place, never through
a temporary file beside it (its directory is the store); elsewhere the hidden temporary file is kept.
test_nix_interrupt.py shows the same with a real nix-build interrupted mid-layer."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from hocker_fetch.atomic import AtomicFile


def names(d: Path) -> list[str]:
    return sorted(os.listdir(d))


def test_out_of_a_nix_build_is_written_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    store.mkdir()
    out = store / "abc-docker-layer.tar.gz"
    monkeypatch.setenv("NIX_BUILD_TOP", str(tmp_path / "build"))
    monkeypatch.setenv("out", str(out))
    with AtomicFile(out) as f:
        assert f.path == str(out)
        f.write(b"layer")
        assert names(store) == [out.name]  # nothing else in the store directory, ever
    assert out.read_bytes() == b"layer"
    out.unlink()
    with pytest.raises(RuntimeError), AtomicFile(out) as f:
        f.write(b"half")
        raise RuntimeError("interrupted")
    assert names(store) == []  # a failed output is removed (Nix would too)


@pytest.mark.parametrize("env", [{"out": "other"}, {"NIX_BUILD_TOP": ""}])
def test_anything_else_keeps_the_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                env: dict[str, str]) -> None:
    out = tmp_path / "result.tar"
    monkeypatch.setenv("NIX_BUILD_TOP", str(tmp_path / "build"))
    monkeypatch.setenv("out", str(out))
    for k, v in env.items():
        monkeypatch.setenv(k, str(tmp_path / v) if v else v)
    with AtomicFile(out) as f:
        assert f.path != str(out) and ".hocker-" in f.path
        f.write(b"x")
        assert not out.exists()
    assert out.read_bytes() == b"x" and names(tmp_path) == ["result.tar"]
