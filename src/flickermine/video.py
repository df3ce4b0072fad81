"""Reading videos: one forward pass, frames in order, lazily converted.

:class:`VideoReader` wraps PyAV. Iterating yields :class:`Frame` objects numbered from 0 in
decoding order, the same numbering as detection files (the legacy text format's
``FRAME NUMBER: n`` is frame ``n - 1`` here). A frame is converted to a numpy image only when
asked for (``frame.bgr`` or ``frame.gray``), so stages that look at few frames pay for few
conversions.

>>> with VideoReader("clip.mp4") as video:  # doctest: +SKIP
...     print(video.num_frames, video.fps, video.width, video.height)
...     for frame in video:
...         image = frame.bgr  # (H, W, 3) uint8
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import av
import cv2
import numpy as np
import numpy.typing as npt
from av.video.reformatter import VideoReformatter

from flickermine.errors import VideoError

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv")

T = TypeVar("T")

_LUMA_FIRST_FORMATS = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"}
)
_AV_ERRORS: tuple[type[BaseException], ...] = (av.FFmpegError, OSError)


_local = threading.local()


def to_bgr(av_frame: Any) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` BGR image of a PyAV frame (``to_ndarray(format="bgr24")``), with one
    conversion context per thread kept between frames instead of one per frame."""
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = VideoReformatter()
    return np.asarray(reformatter.reformat(av_frame, format="bgr24").to_ndarray(), np.uint8)


class Frame:
    """One decoded frame; pixel arrays are produced on first access and cached."""

    __slots__ = ("__weakref__", "_av", "_bgr", "_gray", "_make_bgr", "index")

    def __init__(
        self,
        index: int,
        av_frame: Any = None,
        bgr: npt.NDArray[np.uint8] | None = None,
        gray: npt.NDArray[np.uint8] | None = None,
        make_bgr: Callable[[], npt.NDArray[np.uint8]] | None = None,
    ):
        self.index = index
        self._av = av_frame
        self._bgr = bgr
        self._gray = gray
        self._make_bgr = make_bgr

    def _missing(self, kind: str) -> VideoError:
        return VideoError(
            f"frame {self.index + 1} (1-based): its {kind} image was not kept by the decoder "
            "(it was decoded for counting only)"
        )

    @property
    def bgr(self) -> npt.NDArray[np.uint8]:
        """``(H, W, 3)`` uint8 image in OpenCV's BGR order."""
        if self._bgr is None:
            if self._make_bgr is not None:
                self._bgr = self._make_bgr()
                self._make_bgr = None
            elif self._av is None:
                raise self._missing("colour")
            else:
                self._bgr = to_bgr(self._av)
        return self._bgr

    @property
    def gray(self) -> npt.NDArray[np.uint8]:
        """``(H, W)`` uint8 grey-scale image."""
        if self._gray is None:
            if self._bgr is not None:
                self._gray = np.asarray(cv2.cvtColor(self._bgr, cv2.COLOR_BGR2GRAY), np.uint8)
            elif self._av is None:
                raise self._missing("grey")
            elif self._av.format.name in _LUMA_FIRST_FORMATS:
                # The luma plane is the grey image (up to an affine range change, which
                # normalised cross-correlation ignores): a view, no conversion.
                plane = self._av.planes[0]
                rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
                self._gray = rows[: self._av.height, : self._av.width]
            else:
                self._gray = self._av.to_ndarray(format="gray")
        assert self._gray is not None  # for mypy; set on every branch above
        return self._gray


class VideoReader:
    """Sequential reader of one video file.

    Args:
        path: the video file.
        threads: let FFmpeg decode with several threads (``True``) or one.

    Raises:
        VideoError: the file is missing, not a video, or has no video stream.
    """

    def __init__(self, path: str | os.PathLike[str], *, threads: bool = True) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoError(f"{self.path}: video file not found")
        self._threads = threads
        try:
            container = av.open(str(self.path))
        except _AV_ERRORS as exc:
            raise VideoError(f"{self.path}: cannot open video: {exc}") from None
        try:
            if not container.streams.video:
                raise VideoError(f"{self.path}: no video stream in file")
            stream = container.streams.video[0]
            self.width = int(stream.codec_context.width)
            self.height = int(stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            self.fps = float(rate)
            frames = int(stream.frames or 0)
            if frames <= 0:
                frames = self._count_packets(container)
            self.num_frames = frames
        finally:
            container.close()
        if self.width <= 0 or self.height <= 0:
            raise VideoError(f"{self.path}: video stream has no frame size")

    def _count_packets(self, container: Any) -> int:
        """Frame count for containers that do not store it (e.g. Matroska): demux, no decode."""
        try:
            stream = container.streams.video[0]
            return sum(1 for pkt in container.demux(stream) if pkt.size)
        except _AV_ERRORS as exc:
            raise VideoError(f"{self.path}: cannot read video: {exc}") from None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Iterator[Frame]:
        """Decode every frame in order (a fresh pass each time it is called)."""
        return self.frames()

    def frames(self, *, threads: bool | None = None) -> Iterator[Frame]:
        """Decode every frame in order; ``threads`` overrides the reader's setting for this
        pass (no new probe of the file)."""
        threads = self._threads if threads is None else threads
        try:
            container = av.open(str(self.path))
        except _AV_ERRORS as exc:
            raise VideoError(f"{self.path}: cannot open video: {exc}") from None
        index = 0
        try:
            stream = container.streams.video[0]
            if threads:
                stream.thread_type = "AUTO"
            else:
                stream.codec_context.thread_count = 1
            try:
                for av_frame in container.decode(stream):
                    yield Frame(index, av_frame)
                    index += 1
            except _AV_ERRORS as exc:
                raise VideoError(
                    f"{self.path}: decoding failed at frame {index + 1} (1-based) after "
                    f"{index} good frames: {exc}"
                ) from None
        finally:
            container.close()

    def __repr__(self) -> str:
        return (
            f"VideoReader({str(self.path)!r}, frames={self.num_frames}, fps={self.fps:g}, "
            f"size={self.width}x{self.height})"
        )


_DONE = object()


def prefetch(items: Iterable[T], size: int = 8) -> Iterator[T]:
    """Iterate ``items`` in a background thread, up to ``size`` items ahead.

    Decoding (and anything else that releases the GIL) then overlaps with the consumer's work.
    Exceptions raised by ``items`` are re-raised in the consumer; closing the returned
    generator early stops the thread.
    """
    if size <= 0:
        yield from items
        return
    q: queue.Queue[Any] = queue.Queue(maxsize=size)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)

    thread = threading.Thread(target=produce, name="flickermine-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)


def is_video_file(path: Path) -> bool:
    """Whether ``path`` has a known video suffix."""
    return path.suffix.lower() in VIDEO_SUFFIXES
