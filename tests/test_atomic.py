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


def test_threads_writing_the_same_file_at_once_never_clash(tmp_path):
    # Each writer needs its own temporary name: a shared one would fail to be created (it is
    # opened exclusively) or mix two payloads.
    target = tmp_path / "sub" / "same.bin"
    payloads = [bytes([i]) * 100_000 for i in range(64)]

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda data: atomic_write_bytes(target, data), payloads))
    assert target.read_bytes() in payloads
    assert [p.name for p in target.parent.iterdir()] == ["same.bin"]
