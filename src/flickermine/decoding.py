"""Decoding in a child process, so that decoding and the consumer's Python work run in parallel.

PyAV holds the GIL for part of every frame it decodes, so a decoding *thread* is slowed down by
any Python work in the consumer (and slows it down in turn). :func:`decode_in_process` decodes
in a forked child instead and hands over, through shared memory, only the images the consumer
said it will read (:class:`PixelNeeds`); every other frame arrives as a :class:`Frame` without
pixels, so frame numbering and counting are unchanged.

The images are the ones :class:`~flickermine.video.VideoReader` produces (the child runs it),
handed over as views of shared memory: no copy on the consumer's side, and only the parts the
consumer reads cross between the two processors' caches. Slot reuse relies on CPython's
reference counts (see :func:`decode_in_process`). :class:`ProcessDecoder` starts the child
before the consumer knows which images it will read: the child decodes the first frames
meanwhile (a bounded number, every frame in full), and learns the needs when the consumer asks
for the frames.

>>> needs = PixelNeeds.none(1000)  # doctest: +SKIP
>>> needs.gray[10:20] = True  # doctest: +SKIP
>>> for frame in decode_in_process("clip.mp4", needs):  # doctest: +SKIP
...     if 10 <= frame.index < 20:
...         frame.gray  # (H, W) uint8; other frames have no pixels
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import multiprocessing as mp
import os
import pickle
import select
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from flickermine.errors import VideoError
from flickermine.video import Frame, LateWanted, VideoReader, to_bgr


@dataclass(frozen=True)
class PixelNeeds:
    """Which frames' images a consumer reads: ``gray`` and ``bgr`` are ``(num_frames,)`` bool.

    Frames past the end of the arrays need nothing.
    """

    gray: npt.NDArray[np.bool_]
    bgr: npt.NDArray[np.bool_]

    @classmethod
    def none(cls, num_frames: int) -> PixelNeeds:
        """No image of any frame (set entries to ask for some)."""
        return cls(np.zeros(num_frames, np.bool_), np.zeros(num_frames, np.bool_))

    @classmethod
    def every(cls, num_frames: int) -> PixelNeeds:
        """Both images of every frame."""
        return cls(np.ones(num_frames, np.bool_), np.ones(num_frames, np.bool_))

    def any(self) -> npt.NDArray[np.bool_]:
        """Frames with either image needed (the others need not even be decoded)."""
        n = max(len(self.gray), len(self.bgr))
        wanted = np.zeros(n, np.bool_)
        wanted[: len(self.gray)] |= self.gray
        wanted[: len(self.bgr)] |= self.bgr
        return wanted


def process_decoding_available() -> bool:
    """Whether :func:`decode_in_process` can run here: it forks, which is safe on Linux (macOS
    offers fork too, but system libraries there may crash in a forked child)."""
    return sys.platform.startswith("linux") and "fork" in mp.get_all_start_methods()


#: Address space reserved for the shared slots by default.
_RESERVE = 1 << 30

#: Messages from the child: ("frame", index, slot, has_gray, colour) where colour is None,
#: ("bgr24",) or (pixel format, colorspace, range) of shipped planes; ("count", frames decoded so
#: far), sent every _COUNT_EVERY frames without images; ("end", frames); ("error", frames
#: decoded, message).
_COUNT_EVERY = 64
#: Freed slots are handed back to the child in batches of this many (or whenever the consumer
#: is about to wait for a frame).
_FREE_BATCH = 8


#: Pixel formats whose colour image is rebuilt in the consumer from the shipped planes (a third
#: of the bytes of a BGR image, and converted only if it is read).
_PLANAR_420 = frozenset({"yuv420p", "yuvj420p"})
#: A child started before the consumer's needs are known decodes at most this many frames
#: (and this many bytes of them) ahead, every frame in full, then waits for the needs.
_AHEAD_FRAMES = 48
_AHEAD_BYTES = 64 << 20
#: Signals that stop a run (Ctrl-C, a scheduler's SIGTERM).
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}
#: Seconds without a message or CPU use after which a decoder child counts as stuck.
STALL_SECONDS = 600.0


def _send(end: Connection, message: object) -> None:
    """Send ``message`` with plain pickle: ``Connection.send`` builds a new pickler (with the
    multiprocessing reducers, not needed here) for every message."""
    end.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def _recv(end: Connection) -> Any:
    return pickle.loads(end.recv_bytes())


def _readable(end: Connection) -> Any:
    """A ``select.poll`` object watching ``end``: ``.poll(ms)`` tells whether a message (or
    the end of the pipe) is waiting, without ``Connection.poll``'s selector set-up each time."""
    watcher = select.poll()
    watcher.register(end.fileno(), select.POLLIN)
    return watcher


def _plane(av_frame: Any, k: int, rows: int, cols: int) -> npt.NDArray[np.uint8]:
    plane = av_frame.planes[k]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:rows, :cols]


@dataclass(frozen=True)
class _ChildEnds:
    """The child's ends of the pipes, and the parent's ends it inherited with the fork."""

    data: Connection  # frames and counts, to the parent
    free: Connection  # slots the parent no longer uses
    control: Connection  # the needs and limit, when not known at the start
    parents: tuple[Connection, ...] = ()


class _SlotWriter:
    """Writes the images the parent reads into the shared slots (in the child)."""

    def __init__(
        self, reader: VideoReader, buffer: mmap.mmap, slots: int, shape: tuple[int, int],
        free: Connection,
    ) -> None:  # fmt: skip
        self.reader, self.buffer, self.shape, self.free = reader, buffer, shape, free
        self.gray_size = shape[0] * shape[1]
        self.available = list(range(slots - 1, -1, -1))  # a stack: recently freed reused first
        self.freed = _readable(free)

    def message(self, frame: Frame, needs: PixelNeeds) -> tuple[Any, ...] | None:
        """Put the images ``needs`` wants of ``frame`` in a free slot; the message that
        tells the parent (``None`` when it wants none)."""
        i = frame.index
        want_gray = i < len(needs.gray) and bool(needs.gray[i])
        want_colour = i < len(needs.bgr) and bool(needs.bgr[i])
        if not (want_gray or want_colour):
            return None
        if not self.available or self.freed.poll(0):
            self.available.extend(_recv(self.free))  # blocks only when every slot is held
        slot = self.available.pop()
        base = slot * self.gray_size * 4
        height, width = self.shape
        fmt = frame._av.format.name if frame._av is not None else ""
        planar = (
            want_colour
            and fmt in _PLANAR_420
            and height % 2 == 0
            and width % 2 == 0
            and self.reader.rotation == 0  # turned planes would not rebuild PyAV's colours
        )
        if want_gray or planar:
            self._view(base, self.gray_size).reshape(self.shape)[...] = frame.gray
        colour: tuple[Any, ...] | None = None
        if planar:
            half, quarter = (height // 2, width // 2), self.gray_size // 4
            for k in (1, 2):
                offset = base + self.gray_size + (k - 1) * quarter  # U, then V, after the luma
                self._view(offset, quarter).reshape(half)[...] = _plane(frame._av, k, *half)
            colour = (fmt, frame._av.colorspace, frame._av.color_range)
        elif want_colour:
            view = self._view(base + self.gray_size, self.gray_size * 3)
            view.reshape(height, width, 3)[...] = frame.bgr
            colour = ("bgr24",)
        return ("frame", i, slot, want_gray or planar, colour)

    def _view(self, offset: int, size: int) -> npt.NDArray[np.uint8]:
        return np.frombuffer(self.buffer, np.uint8, size, offset)


def _child(
    reader: VideoReader,
    needs: PixelNeeds | None,
    limit: int,
    writer: _SlotWriter,
    ends: _ChildEnds,
) -> None:
    # The parent's ends of the pipes came along with the fork: closed, so that when the
    # parent dies (even by SIGKILL) sending fails and waiting for slots ends, and this process
    # exits instead of waiting forever.
    for end in ends.parents:
        end.close()
    # Whatever the parent does on SIGTERM (the command line raises an exception, a `mine
    # --workers` worker only notes it), the parent's terminate() ends this process; the stop
    # signals were blocked since the fork (see ProcessDecoder), a pending one acts now.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    count = 0
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # Ctrl-C: caught below
        if needs is None:  # decode ahead, every frame, until the parent says what it needs
            started = _decode_ahead(reader, ends.control, writer.gray_size)
            if started is None:  # the parent gave up before it needed any frame
                return
            needs, limit, frames = started
        else:
            frames = reader.frames(threads=False, wanted=needs.any())
        for frame in frames:
            if count >= limit:
                break
            message = writer.message(frame, needs)
            if message is not None:
                _send(ends.data, message)
            elif frame.index % _COUNT_EVERY == _COUNT_EVERY - 1:
                _send(ends.data, ("count", frame.index + 1))
            count += 1
        _send(ends.data, ("end", count))
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the parent reports it
        pass
    except (EOFError, BrokenPipeError):  # the parent closed its ends: it wants nothing more
        pass
    except Exception as exc:  # reported to the parent, which raises it as a VideoError
        text = str(exc)
        if not isinstance(exc, VideoError):
            text = f"{reader.path}: decoder process failed: {type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError):  # unless the parent is gone
            _send(ends.data, ("error", count, text))
    finally:
        ends.data.close()


def _decode_ahead(
    reader: VideoReader, control: Connection, gray_size: int
) -> tuple[PixelNeeds, int, Iterator[Frame]] | None:
    """Decode every frame, a bounded number of them, until the parent sends the needs and
    limit; those, and the frames from the first (``None`` when the parent gave up)."""
    late = LateWanted()
    stream = reader.frames(threads=False, wanted=late)
    ahead: deque[Frame] = deque()
    most = max(2, min(_AHEAD_FRAMES, _AHEAD_BYTES // (gray_size * 3)))
    failed: VideoError | None = None
    try:
        for frame in stream:
            ahead.append(frame)
            if len(ahead) >= most or control.poll():
                break
    except VideoError as exc:  # reported after the frames decoded before it
        failed = exc
    try:
        needs, limit = _recv(control)
    except EOFError:
        return None
    late.settle(needs.any())
    rest = _raising(failed) if failed is not None else stream
    return needs, limit, itertools.chain(_pop_each(ahead), rest)


def _pop_each(frames: deque[Frame]) -> Iterator[Frame]:
    """Yield and forget the frames held (their images are freed as they go)."""
    while frames:
        yield frames.popleft()


def _raising(error: Exception) -> Iterator[Frame]:
    raise error
    yield  # a generator


def _rebuild_bgr(
    y: npt.NDArray[np.uint8],
    uv: npt.NDArray[np.uint8],
    fmt: str,
    colorspace: Any,
    colour_range: Any,
) -> npt.NDArray[np.uint8]:
    """The BGR image PyAV gives for a planar 4:2:0 frame, from its planes (same conversion)."""
    height, width = y.shape
    yuv = np.concatenate([y.reshape(-1), uv]).reshape(height * 3 // 2, width)
    frame = av.VideoFrame.from_ndarray(yuv, format=fmt)
    frame.colorspace = colorspace
    frame.color_range = colour_range
    return to_bgr(frame)


def decode_in_process(
    video: str | os.PathLike[str] | VideoReader,
    needs: PixelNeeds,
    *,
    limit: int | None = None,
    slots: int | None = None,
    stall_seconds: float = STALL_SECONDS,
) -> Iterator[Frame]:
    """Decode ``video`` in a child process; yield every frame in order, with the images of
    ``needs`` (and no pixels for the others). The child starts when the first frame is asked
    for; :class:`ProcessDecoder` starts it at once.

    The images are views of memory shared with the child, not copies. A slot of that memory
    is reused only once no array viewing it is left (the frame and every slice taken from it
    are gone), so frames and images may be kept for as long as the caller likes; when nearly
    every slot is held, further images are copied out instead.

    Args:
        video: the video file, or a reader already opened on it (the forked child uses it as
            it is: no second probe of the file).
        needs: the frames whose grey and/or BGR images will be read.
        limit: decode at most this many frames.
        slots: shared-memory slots, each one frame's grey and BGR images (address space is
            reserved for all; memory is used only for the slots actually in use). Default: 64,
            fewer for frames so large that 64 would reserve more than 1 GiB (at least 4).
        stall_seconds: a child that sends nothing and uses no CPU for this long while the
            caller waits is stuck (in FFmpeg, or reading a file that stalled): it is killed and
            a VideoError raised instead of waiting forever. Needs ``/proc`` (Linux).

    Raises:
        VideoError: the file cannot be opened or decoding fails (frames decoded before the
            failure are yielded first, as with :class:`~flickermine.video.VideoReader`), or the
            child process dies.
    """
    decoder = ProcessDecoder(video, needs, limit=limit, slots=slots, stall_seconds=stall_seconds)
    yield from decoder.frames()


class ProcessDecoder:
    """A decoder child process (see :func:`decode_in_process`), started at once.

    Without ``needs``, the child opens the video and decodes ahead (every frame, a bounded
    number of them) while the caller is still working out which images it will read; it
    learns them from :meth:`frames`. The time the caller spends preparing is then not added
    to the decoding's. Call :meth:`close` (or use it as a context manager) when :meth:`frames`
    may never be iterated to its end: that stops the child.

    Args:
        video, slots, stall_seconds: as for :func:`decode_in_process` (a path is opened
            here, so a bad one fails in the caller).
        needs, limit: as for :func:`decode_in_process`, or ``None`` to give them to
            :meth:`frames`.
    """

    def __init__(
        self,
        video: str | os.PathLike[str] | VideoReader,
        needs: PixelNeeds | None = None,
        *,
        limit: int | None = None,
        slots: int | None = None,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self.reader = video if isinstance(video, VideoReader) else VideoReader(video)
        self._shape = (self.reader.height, self.reader.width)
        gray_size = self.reader.height * self.reader.width
        if slots is None:
            slots = min(64, max(4, _RESERVE // (gray_size * 4)))
        self._slots = max(2, slots)
        # Anonymous, shared with the forked child.
        self._buffer = mmap.mmap(-1, gray_size * 4 * self._slots)
        self._stall_seconds = stall_seconds
        self._late = needs is None
        self._used = self._closed = False
        ctx = mp.get_context("fork")
        self._data, data_send = ctx.Pipe(duplex=False)
        free_recv, self._free = ctx.Pipe(duplex=False)
        control_recv, self._control = ctx.Pipe(duplex=False)
        self._child = ctx.Process(
            target=_child,
            args=(
                self.reader,
                needs,
                _frame_limit(limit),
                _SlotWriter(self.reader, self._buffer, self._slots, self._shape, free_recv),
                _ChildEnds(
                    data_send, free_recv, control_recv, (self._data, self._free, self._control)
                ),
            ),
            name="flickermine-decoder",
            daemon=True,
        )
        # The stop signals are blocked across the fork: delivered in the child before it is
        # in _child, the parent's handler for them (the command line's raises an exception)
        # would run there, and could even unwind the child into the parent's code.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._child.start()
        finally:
            data_send.close()
            free_recv.close()
            control_recv.close()
            try:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a pending one acts here
            except BaseException:
                self.close()
                raise

    def __enter__(self) -> ProcessDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(
        self, needs: PixelNeeds | None = None, *, limit: int | None = None
    ) -> Iterator[Frame]:
        """Every frame in order, with the images of ``needs``; once per decoder.

        ``needs`` and ``limit`` are given here when they were not given when the decoder was
        made (and only then).
        """
        if self._used or self._closed:
            raise RuntimeError("ProcessDecoder.frames() can be called only once, before close()")
        if self._late != (needs is not None) or (limit is not None and not self._late):
            raise ValueError(
                "needs (and limit) go either to ProcessDecoder() or to frames(), not both"
            )
        self._used = True
        if needs is not None:
            with contextlib.suppress(OSError):  # a child that died is reported by the pass
                _send(self._control, (needs, _frame_limit(limit)))
        return self._pass()

    def close(self) -> None:
        """Stop the child (if it still runs) and close the pipes; idempotent."""
        if self._closed:
            return
        self._closed = True
        for end in (self._data, self._free, self._control):
            end.close()
        if self._child.pid is None:  # never started
            return
        if self._child.is_alive():
            self._child.terminate()
        self._child.join()

    def unmap_soon(self) -> None:
        """Unmap the shared slots in a background thread, after :meth:`close`: unmapping
        the pages both processes touched takes ~10 ms. If a frame still holds them, they go
        with the last one instead."""
        buffer = self._buffer

        def unmap() -> None:
            with contextlib.suppress(BufferError):  # views remain: freed with the last one
                buffer.close()

        threading.Thread(target=unmap, name="flickermine-unmap", daemon=True).start()

    def _pass(self) -> Iterator[Frame]:
        data, child, path = self._data, self._child, self.reader.path
        held = _HeldSlots(self._free, self._slots)
        next_index = 0
        messages = 0
        waiting = _readable(data)
        try:
            while True:
                messages += 1
                if messages % _FREE_BATCH == 0:  # looking costs a reference count per held slot
                    held.release_unused(now=False)
                if not waiting.poll(0):  # nothing waiting: hand the freed slots back, then wait
                    held.release_unused(now=True)
                    self._wait(waiting, held, next_index)
                try:
                    message: tuple[Any, ...] = _recv(data)
                except EOFError:
                    child.join(timeout=5)
                    raise VideoError(
                        f"{path}: the decoder process ended unexpectedly "
                        f"(exit code {child.exitcode}) after {next_index} frames"
                    ) from None
                kind, upto = message[0], message[1]
                while next_index < upto:
                    yield Frame(next_index)
                    next_index += 1
                if kind == "frame":
                    _, index, slot, has_gray, colour = message
                    yield self._shipped(held, slot, index, has_gray, colour)
                    next_index = index + 1
                elif kind == "end":
                    return
                elif kind == "error":
                    raise VideoError(message[2])
        finally:
            held.clear()
            self.close()

    def _wait(self, waiting: Any, held: _HeldSlots, decoded: int) -> None:
        """Wait for the child's next message (or its end), in 10 ms polls, handing slots back
        as frames are dropped (by another thread too); kill a child that is stuck."""
        child, stall_seconds = self._child, self._stall_seconds
        waited, cpu = 0, None  # polls so far; the child's CPU time when they began
        while not waiting.poll(10):
            if not child.is_alive() and not waiting.poll(0):
                return
            held.release_unused(now=True)
            waited += 1
            if waited == 1:  # only a wait longer than a poll reads /proc
                cpu = _cpu_ticks(child.pid)
            if waited * 0.01 >= stall_seconds:  # polls, not wall time: ^Z stops both
                now_cpu = _cpu_ticks(child.pid)
                if cpu is not None and now_cpu == cpu:
                    child.kill()
                    raise VideoError(
                        f"{self.reader.path}: the decoder process made no progress for "
                        f"{stall_seconds:g} s after {decoded} frames (stuck in FFmpeg, or "
                        "reading the file stalled); it was stopped"
                    )
                waited, cpu = 0, now_cpu

    def _shipped(
        self, held: _HeldSlots, slot: int, index: int, has_gray: bool,
        colour: tuple[Any, ...] | None,
    ) -> Frame:  # fmt: skip
        """The frame the child put in ``slot``: its images view the slot, which is held until
        no view is left; copied out instead when the child would be left without a slot."""
        gray_size = self._shape[0] * self._shape[1]
        base = slot * gray_size * 4
        roots = []
        if has_gray:
            roots.append(np.frombuffer(self._buffer, np.uint8, gray_size, base))
        if colour is not None:
            size = gray_size // 2 if colour[0] != "bgr24" else gray_size * 3
            roots.append(np.frombuffer(self._buffer, np.uint8, size, base + gray_size))
        if held.full():
            held.release_unused(now=True)
        if held.full():  # keep a slot free for the child: copy instead
            roots = [root.copy() for root in roots]
            held.give_back([slot])
        else:
            held.hold(slot, roots)
        return _shipped_frame(index, roots, has_gray, colour, self._shape)


class _HeldSlots:
    """The parent's record of the slots whose images it handed out (slot -> the root arrays
    viewing it; every view of them has them as its base), and of the slots to hand back."""

    def __init__(self, free: Connection, slots: int) -> None:
        self._free, self._slots = free, slots
        self._held: dict[int, list[npt.NDArray[np.uint8]]] = {}
        self._freed: list[int] = []  # slots no longer used, not yet handed back

    def hold(self, slot: int, roots: list[npt.NDArray[np.uint8]]) -> None:
        self._held[slot] = roots

    def full(self) -> bool:
        return len(self._held) >= self._slots - 1

    def clear(self) -> None:
        self._held.clear()

    def give_back(self, numbers: list[int]) -> None:
        # Once the child has finished and closed its end, nothing wants slots.
        with contextlib.suppress(OSError):
            _send(self._free, numbers)

    def release_unused(self, now: bool) -> None:
        """Note the slots no view uses any more; hand them back in batches (each message
        may wake the child), and before every wait (``now``)."""
        held, freed = self._held, self._freed
        for slot in [k for k, roots in held.items() if _most_refs(roots) <= _UNUSED_REFS]:
            del held[slot]
            freed.append(slot)
        if freed and (now or len(freed) >= _FREE_BATCH):
            self.give_back(freed.copy())
            freed.clear()


def _frame_limit(limit: int | None) -> int:
    # A container's frame count may be short: no limit unless one is given.
    return sys.maxsize if limit is None else max(0, limit)


def _cpu_ticks(pid: int | None) -> int | None:
    """CPU time a process has used so far (clock ticks; ``None`` without ``/proc``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


def _shipped_frame(
    index: int,
    roots: list[npt.NDArray[np.uint8]],
    has_gray: bool,
    colour: tuple[Any, ...] | None,
    shape: tuple[int, int],
) -> Frame:
    gray = roots[0].reshape(shape) if has_gray else None
    if colour is None:
        return Frame(index, gray=gray)
    if colour[0] == "bgr24":
        return Frame(index, gray=gray, bgr=roots[-1].reshape(*shape, 3))
    assert gray is not None  # planar colour always ships the luma plane
    uv = roots[-1]
    return Frame(index, gray=gray, make_bgr=lambda: _rebuild_bgr(gray, uv, *colour))


def _most_refs(roots: list[npt.NDArray[np.uint8]]) -> int:
    """Largest reference count among ``roots`` (each view of a root holds a reference)."""
    return max(sys.getrefcount(root) for root in roots)


#: What :func:`_most_refs` reports for roots referenced by nothing but their list.
_UNUSED_REFS = _most_refs([np.empty(0, np.uint8)])
