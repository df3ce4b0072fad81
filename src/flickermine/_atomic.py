"""Atomic file output: write to a temporary file beside the target, then rename."""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path

_counter = itertools.count()


def _temporary_name(target: Path) -> Path:
    """A name beside ``target`` that no other writer uses (process, thread, call)."""
    return target.with_name(
        f".{target.name}.{os.getpid()}-{threading.get_ident()}-{next(_counter)}.tmp"
    )


def _create(path: Path) -> int:
    """Create ``path`` exclusively, with the permissions a plain open() gives (umask applies)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temporary_name(target)
    os.close(_create(tmp_path))
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (one open, one rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _temporary_name(target)
    fd = _create(tmp_path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


class Busy(Exception):
    """Another process holds the lock."""


def lock_exclusively(path: str | os.PathLike[str]) -> int | None:
    """Take the lock file ``path`` (created if needed) without waiting; returns its descriptor
    for :func:`unlock`, or ``None`` where the file system has no locks (some cluster mounts,
    or no ``fcntl``): then nothing is locked.

    The lock goes with the open file, so a process that dies releases it. The file is removed
    when the lock is released; a taker checks that the file it locked is still the one at
    ``path`` (not one removed meanwhile), so two processes never both hold it.

    Raises:
        Busy: another process holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    target = Path(path)
    while True:
        fd = os.open(target, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise Busy(str(target)) from None
        except OSError:  # locks not supported here: go on without one
            os.close(fd)
            return None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(target))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # it was released and removed while we took it: take the new one


def unlock(path: str | os.PathLike[str], fd: int | None) -> None:
    """Release a lock taken by :func:`lock_exclusively` (and remove its file)."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        os.unlink(path)  # while still held: the next taker creates a fresh file
    os.close(fd)
