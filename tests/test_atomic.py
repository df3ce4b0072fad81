"""Atomic output files: all or nothing, ordinary permissions, no stray temporary files."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from flickermine._atomic import atomic_path, atomic_write_bytes, atomic_write_text


def test_written_files_get_the_permissions_a_plain_open_gives(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        atomic_write_text(tmp_path / "b.txt", "y")
    finally:
        os.umask(old)
    assert (tmp_path / "a.bin").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "b.txt").stat().st_mode & 0o777 == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_threads_writing_at_once_each_land_their_file(tmp_path):
    def write(i: int) -> None:
        atomic_write_bytes(tmp_path / "sub" / f"{i}.bin", bytes([i]) * 1000)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(64)))
    files = sorted((tmp_path / "sub").iterdir(), key=lambda p: int(p.stem))
    assert [p.read_bytes() for p in files] == [bytes([i]) * 1000 for i in range(64)]
