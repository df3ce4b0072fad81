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

import bisect
import itertools
import os
import queue
import threading
from collections import deque
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
#: PyAV 17 added swscale's slice threads to reformatting (and the argument that turns them off).
_ONE_THREAD: dict[str, int] = {"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {}


def to_bgr(av_frame: Any) -> npt.NDArray[np.uint8]:
    """``(H, W, 3)`` BGR image of a PyAV frame (``to_ndarray(format="bgr24")``), with one
    conversion context per thread kept between frames instead of one per frame.

    The contexts convert in the calling thread only: one that ran swscale's slice threads
    would hang a process forked while it exists (the decoder child) the moment the child
    used or freed it (it waits for threads the child does not have), and the child frees
    every other thread's contexts as it starts."""
    reformatter = getattr(_local, "reformatter", None)
    if reformatter is None:
        reformatter = _local.reformatter = VideoReformatter()
    bgr = reformatter.reformat(av_frame, format="bgr24", **_ONE_THREAD)
    return np.asarray(bgr.to_ndarray(), np.uint8)


def _upright(image: npt.NDArray[np.uint8], turns: int) -> npt.NDArray[np.uint8]:
    """``image`` turned ``turns`` quarter turns counterclockwise (a contiguous copy)."""
    return image if turns == 0 else np.ascontiguousarray(np.rot90(image, turns))


class Frame:
    """One decoded frame; pixel arrays are produced on first access and cached.

    ``turns``: quarter turns counterclockwise that put the decoded picture upright (the
    video's display rotation, see :attr:`VideoReader.rotation`); images are given upright.
    """

    __slots__ = ("__weakref__", "_av", "_bgr", "_gray", "_make_bgr", "_turns", "index")

    def __init__(
        self,
        index: int,
        av_frame: Any = None,
        bgr: npt.NDArray[np.uint8] | None = None,
        gray: npt.NDArray[np.uint8] | None = None,
        make_bgr: Callable[[], npt.NDArray[np.uint8]] | None = None,
        turns: int = 0,
    ):
        self.index = index
        self._av = av_frame
        self._bgr = bgr
        self._gray = gray
        self._make_bgr = make_bgr
        self._turns = turns

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
                self._bgr = _upright(to_bgr(self._av), self._turns)
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
                self._gray = _upright(rows[: self._av.height, : self._av.width], self._turns)
            else:
                self._gray = _upright(self._av.to_ndarray(format="gray"), self._turns)
        assert self._gray is not None  # for mypy; set on every branch above
        return self._gray


#: Codecs whose non-reference frames are never referred to. (Not HEVC: there a sub-layer
#: non-reference picture may still be a reference for pictures of a higher temporal layer.)
_SKIPPABLE_CODECS = frozenset({"h264"})
#: Containers whose packets carry presentation timestamps, which the skipping pass numbers
#: frames from. Not AVI: its timestamps count packets in decoding order, so with B-frames
#: they do not give the display order (only decoding everything does).
_TIMESTAMPED_FORMATS = frozenset({"mov", "mp4", "matroska", "webm", "mpegts", "flv"})
#: Containers that may store a display rotation (MP4/MOV's matrix, Matroska's projection).
_ROTATING_FORMATS = frozenset({"mov", "mp4", "matroska", "webm"})


class LateWanted:
    """The frames a pass will be asked for, known only once it has begun (see
    :meth:`VideoReader.frames`): until :meth:`settle` is called every frame counts as wanted
    (decoded in full), from then on only the frames of its mask (frames past its end count as
    unwanted). Lets a decoder start before its consumer knows what it will read.
    """

    def __init__(self) -> None:
        self.mask: npt.NDArray[np.bool_] | None = None

    def settle(self, mask: npt.NDArray[np.bool_]) -> None:
        """The frames wanted, ``(n,)`` bool; applies to the packets not yet handed to the
        decoder (the frames decoded before are decoded anyway)."""
        self.mask = np.array(mask, np.bool_)


#: NAL unit types a packet may hold and still be left out of an H.264 decode: slices of a
#: picture that is not an IDR picture (1), SEI (6), access unit delimiters (9), ends of sequence
#: or stream (10, 11), filler (12). Not parameter sets (7, 8): later pictures may need them.
_DROPPABLE_NALS = frozenset({1, 6, 9, 10, 11, 12})
#: Slice of an IDR picture: no picture after it in decoding order refers to one before it.
_IDR_NAL = 5


def h264_nal_types(data: bytes | memoryview, length_size: int) -> list[int] | None:
    """The ``nal_unit_type`` of each NAL unit of an H.264 packet, or ``None`` when the packet
    does not parse. ``length_size``: bytes of the size before each unit (MP4, Matroska, FLV:
    from the ``avcC`` header), or 0 for units separated by start codes (MPEG-TS).

    >>> h264_nal_types(bytes([0, 0, 0, 2, 0x65, 0x88, 0, 0, 0, 1, 0x06]), 4)
    [5, 6]
    >>> h264_nal_types(bytes([0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xCE, 0, 0, 1, 0x41]), 0)
    [7, 8, 1]
    """
    types = []
    end = len(data)
    if length_size:
        pos = 0
        while pos < end:
            start = pos + length_size
            if start >= end:
                return None
            size = int.from_bytes(data[pos:start], "big")
            if size == 0 or start + size > end or data[start] & 0x80:
                return None
            types.append(data[start] & 0x1F)
            pos = start + size
    else:
        data = bytes(data)
        pos = data.find(b"\0\0\1")
        while 0 <= pos < end - 3:
            if data[pos + 3] & 0x80:
                return None
            types.append(data[pos + 3] & 0x1F)
            pos = data.find(b"\0\0\1", pos + 3)
    return types or None


def _nal_length_size(extradata: bytes | None) -> int:
    """Size of the unit lengths in an H.264 stream's packets (from its ``avcC`` header), or 0
    when its packets separate units with start codes."""
    if extradata and len(extradata) >= 7 and extradata[0] == 1:
        return (extradata[4] & 3) + 1
    return 0


class _SkippingPass:
    """Numbering for a pass that skips unwanted non-reference frames, from the packets'
    timestamps: frame ``i`` is the packet with the ``i``-th smallest one.

    Packets arrive in decoding order, which differs from display order by at most the
    decoder's reordering depth (at most 16 frames in H.264). A packet is numbered once
    :data:`LOOKAHEAD` packets with larger timestamps have been read, so it is held back until
    then, and only then handed to the decoder, with the decision to skip it or not. A later
    packet with a smaller timestamp than one already numbered, a repeated or missing
    timestamp, a packet marked to be discarded (edit lists), a first packet that is not a
    keyframe, or a decoded frame that is not the next one expected (a wanted frame missing)
    makes the numbering untrustworthy: ``consistent`` turns False and the caller goes on with
    a full pass. Frames displayed before the first keyframe (open GOPs: the decoder drops them
    when they refer to frames before the file's start) are always decoded and must come out.

    ``reorders``: the decoder outputs frames in another order than it reads them (B-frames).
    The timestamps must then show it: nothing is numbered until one packet has come with a
    smaller timestamp than an earlier one. Files whose timestamps count packets in decoding
    order (remuxed from AVI, say) show none, and are decoded in full.

    ``nal_length`` (H.264: see :func:`h264_nal_types`; ``None``: off): unwanted packets are
    then also held back after numbering, and the ones right before an IDR picture (or the end
    of the stream), with no wanted frame among them, are not decoded at all, reference frames
    included: nothing after an IDR picture refers to a picture before it. So a group of
    pictures nobody reads, or the end of one, costs no decoding. A packet holding anything but
    the units of :data:`_DROPPABLE_NALS` (parameter sets, say) or that does not parse is always
    decoded; at most :data:`TAIL_PACKETS` packets (:data:`TAIL_BYTES` bytes) are held.
    """

    LOOKAHEAD = 32
    TAIL_PACKETS = 2048
    TAIL_BYTES = 32 << 20

    def __init__(
        self,
        wanted: npt.NDArray[np.bool_],
        *,
        reorders: bool = True,
        turns: int = 0,
        rest_wanted: bool = False,
        late: LateWanted | None = None,
        nal_length: int | None = None,
    ) -> None:
        self.turns = turns  # for the frames made (see Frame)
        self.nal_length = nal_length  # H.264 unit length size (0: start codes); None: no drops
        self.tail: deque[Any] = deque()  # unwanted packets numbered, not decoded yet
        self.tail_bytes = 0
        self.dropped = 0  # packets never decoded (see nal_length)
        self.late = late  # a mask still to come (see LateWanted): applied once it is settled
        self.unwanted_before = len(wanted) if late is not None else 0  # ``start``, with ``late``
        self.required: list[int] = []  # frames that must be decoded (leading frames)
        self.wanted = np.array(wanted, np.bool_)  # a copy: required frames are added to it
        self.rest_wanted = rest_wanted  # whether the frames past the end of ``wanted`` are too
        self.reorders = reorders
        self.highest: int | None = None  # the largest timestamp read
        self.reordered = False  # a packet came with a smaller timestamp than an earlier one
        self.first: int | None = None  # the first packet's timestamp (a keyframe's)
        self.leading: set[int] = set()  # timestamps displayed before the first keyframe
        self.pending: list[int] = []  # timestamps read but not numbered yet, sorted
        self.held: deque[Any] = deque()  # packets not handed to the decoder yet
        self.numbered: dict[int, int] = {}  # timestamp -> frame number, until it is placed
        self.order: deque[tuple[int, int]] = deque()  # (number, timestamp) of those entries
        self.count = 0  # frames numbered
        self.last: int | None = None  # the timestamp numbered last (the largest)
        self.next = 0  # next frame to yield
        self.consistent = True

    def is_wanted(self, k: int) -> bool:
        return bool(self.wanted[k]) if k < len(self.wanted) else self.rest_wanted

    def any_wanted(self, a: int, b: int) -> bool:
        """Whether a frame of ``a..b-1`` is wanted."""
        if a >= b:  # the usual case: no frame skipped in between
            return False
        return bool(self.wanted[a:b].any()) or (self.rest_wanted and b > max(a, len(self.wanted)))

    def read(self, packet: Any) -> list[tuple[Any, bool]]:
        """Take the next packet (decoding order); return the packets now ready for the
        decoder, each with whether its frame is wanted."""
        if self.late is not None and self.late.mask is not None:
            self._settle(self.late.mask)
        pts = packet.pts
        if (
            pts is None
            # Decoded but dropped (an edit list): the full pass numbers it. (PyAV releases
            # without the flag cannot tell, so they never skip.)
            or getattr(packet, "is_discard", True)
            or (self.first is None and not packet.is_keyframe)
            or (self.last is not None and pts <= self.last)
            or pts in self.numbered
            or pts in self.pending
        ):
            self.consistent = False
            return []
        if self.highest is None or pts > self.highest:
            self.highest = pts
        else:
            self.reordered = True
        if self.first is None:
            self.first = pts
        elif pts < self.first:
            # A leading frame of the first keyframe (open GOP): it may refer to frames before
            # the file's start and be dropped by the decoder, so it must be decoded, and seen.
            self.leading.add(pts)
        bisect.insort(self.pending, pts)
        self.held.append(packet)
        while len(self.pending) > self.LOOKAHEAD:
            if not self._trusted():
                return []
            self._number(self.pending.pop(0))
        return self._ready()

    def _settle(self, mask: npt.NDArray[np.bool_]) -> None:
        """Replace "every frame" by the late mask, for the packets not yet released."""
        wanted = np.zeros(max(len(mask), self.count), np.bool_)
        wanted[: len(mask)] = mask
        wanted[: self.unwanted_before] = False
        wanted[self.required] = True
        self.wanted, self.rest_wanted, self.late = wanted, False, None

    def _trusted(self) -> bool:
        """Whether the timestamps may number frames (see ``reorders``)."""
        if self.reorders and not self.reordered:
            self.consistent = False
        return self.consistent

    def finish(self) -> list[tuple[Any, bool]]:
        """At the end of the stream: number and release every packet held."""
        if self.late is not None and self.late.mask is not None:
            self._settle(self.late.mask)
        if self.pending and not self._trusted():
            return []
        for pts in self.pending:
            self._number(pts)
        self.pending.clear()
        ready = self._ready()
        self._drop_tail()  # nothing after them: never decoded
        return ready

    def _number(self, pts: int) -> None:
        self.numbered[pts] = self.count
        self.order.append((self.count, pts))
        if pts in self.leading:
            self.required.append(self.count)
            if self.count >= len(self.wanted):
                more = np.full(self.count + 1, self.rest_wanted, np.bool_)
                self.wanted = np.concatenate([self.wanted, more])
            self.wanted[self.count] = True
        self.count += 1
        self.last = pts

    def _ready(self) -> list[tuple[Any, bool]]:
        ready: list[tuple[Any, bool]] = []
        while self.held and self.held[0].pts in self.numbered:
            packet = self.held.popleft()
            wanted = self.is_wanted(self.numbered[packet.pts])
            if self.nal_length is None:
                ready.append((packet, wanted))
            else:
                self._through_tail(packet, wanted, ready)
        return ready

    def _through_tail(self, packet: Any, wanted: bool, ready: list[tuple[Any, bool]]) -> None:
        """Hold ``packet`` back if it is unwanted and could be left out (see ``nal_length``);
        release the packets held before it when it is wanted or cannot be left out; drop
        them when it starts an IDR picture."""
        assert self.nal_length is not None
        if wanted and not self.tail:  # nothing held, nothing to decide: no need to parse it
            ready.append((packet, wanted))
            return
        types = h264_nal_types(memoryview(packet), self.nal_length)  # no copy
        if types is not None and _IDR_NAL in types:
            self._drop_tail()  # every packet held is unwanted, and this one refers to none
        droppable = types is not None and all(t in _DROPPABLE_NALS or t == _IDR_NAL for t in types)
        if wanted or not droppable:
            ready.extend((held, False) for held in self.tail)
            self.tail.clear()
            self.tail_bytes = 0
            ready.append((packet, wanted))
            return
        self.tail.append(packet)
        self.tail_bytes += packet.size
        while len(self.tail) > self.TAIL_PACKETS or self.tail_bytes > self.TAIL_BYTES:
            oldest = self.tail.popleft()  # decoded after all (skipped if it is non-reference)
            self.tail_bytes -= oldest.size
            ready.append((oldest, False))

    def _drop_tail(self) -> None:
        self.dropped += len(self.tail)
        self.tail.clear()
        self.tail_bytes = 0

    def place(self, av_frame: Any) -> list[Frame] | None:
        """The frames up to this decoded one (skipped ones without pixels), or None if it
        does not fit the numbering."""
        k = self.numbered.get(av_frame.pts, -1) if av_frame.pts is not None else -1
        if k < self.next or self.any_wanted(self.next, k):
            self.consistent = False
            return None
        while self.order and self.order[0][0] <= k:
            del self.numbered[self.order.popleft()[1]]
        frames = [Frame(i) for i in range(self.next, k)]
        frames.append(Frame(k, av_frame, turns=self.turns))
        self.next = k + 1
        return frames

    def rest(self) -> Iterator[Frame]:
        """The frames after the last decoded one (all skipped), once the stream is done."""
        if self.consistent and not self.any_wanted(self.next, self.count):
            for k in range(self.next, self.count):
                yield Frame(k)
            self.next = self.count
        else:
            self.consistent = False


def _video_stream(container: Any) -> Any:
    """The video stream to read: FFmpeg's choice of the main one (not a cover picture or a
    thumbnail track), as players make it."""
    return container.streams.best("video") or container.streams.video[0]


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
            stream = _video_stream(container)
            self.codec = str(stream.codec_context.name)
            formats = set(str(container.format.name).split(","))
            #: Whether a pass may skip unwanted non-reference frames (see :meth:`frames`).
            self.can_skip = self.codec in _SKIPPABLE_CODECS and bool(formats & _TIMESTAMPED_FORMATS)
            #: Whether the decoder outputs frames in another order than it reads them.
            self.reorders = bool(getattr(stream.codec_context, "has_b_frames", True))
            width = int(stream.codec_context.width)
            height = int(stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate or Fraction(0)
            self.fps = float(rate)
            # Quarter turns counterclockwise that put the pictures upright (see rotation).
            self._turns = self._display_turns(stream) if formats & _ROTATING_FORMATS else 0
            frames = int(stream.frames or 0)
        finally:
            container.close()
        if width <= 0 or height <= 0:
            raise VideoError(f"{self.path}: video stream has no frame size")
        if frames <= 0:
            frames = self._count_packets()
        #: Frame count from the container, or from its packets where it stores none.
        self.num_frames = frames
        #: Clockwise rotation (0, 90, 180 or 270 degrees) applied to the decoded pictures to
        #: show them upright, as players and OpenCV do: the file's display matrix (phone
        #: videos), to the nearest quarter turn; mirroring is not applied.
        self.rotation = (-90 * self._turns) % 360
        self._coded_size = (width, height)  # of the decoded pictures, before any turn
        #: Size of the upright frames (the images given, and the detections' coordinates).
        self.width, self.height = (height, width) if self._turns % 2 else (width, height)

    def _display_turns(self, stream: Any) -> int:
        """From the first frame's display matrix (FFmpeg attaches the stream's to its frames;
        PyAV cannot read the stream's): 0 when there is none or no frame comes out of the
        first packets (the pass will report what is wrong)."""
        stream.codec_context.thread_count = 1  # one frame: threads would only cost time
        try:
            for packet in itertools.islice(stream.container.demux(stream), 64):
                for av_frame in packet.decode():
                    return round(float(av_frame.rotation) / 90) % 4
        except _AV_ERRORS:
            pass
        return 0

    def _count_packets(self) -> int:
        """Frame count for containers that do not store it (e.g. Matroska): demux, no decode."""
        container = self._open()
        try:
            stream = _video_stream(container)
            return sum(1 for pkt in container.demux(stream) if pkt.size)
        except _AV_ERRORS as exc:
            raise VideoError(f"{self.path}: cannot read video: {exc}") from None
        finally:
            container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Iterator[Frame]:
        """Decode every frame in order (a fresh pass each time it is called)."""
        return self.frames()

    def frames(
        self,
        *,
        threads: bool | None = None,
        wanted: npt.NDArray[np.bool_] | LateWanted | None = None,
        start: int = 0,
    ) -> Iterator[Frame]:
        """Decode every frame in order; ``threads`` overrides the reader's setting for this
        pass (no new probe of the file).

        ``wanted`` (``(n,)`` bool; frames past its end count as unwanted) lets the decoder skip
        the frames nobody asked for that no other frame is predicted from (the non-reference
        frames of H.264, typically most B-frames): they are still yielded, in order and
        with their numbers, but without pixels. Wanted frames are decoded exactly as in a full
        pass. The numbering then comes from the packets' timestamps, so skipping is used only
        for H.264 in containers that store presentation timestamps (MP4/MOV, Matroska/WebM,
        MPEG-TS, FLV; not AVI: :attr:`can_skip`), in streams whose every packet has its own
        timestamp, none marked to be discarded, whose first packet is a keyframe and whose
        timestamps show the decoder's reordering; frames displayed before that keyframe are
        always decoded; if a decoded frame ever disagrees with the numbering, the pass goes on
        without skipping (see ``_SkippingPass``). Reference frames are skipped too where no
        wanted frame comes after them before the next IDR picture (H.264's closed group
        boundary, read from the packets' units; not any keyframe: an open group's keyframe may
        be referred across) or the end: groups of pictures nobody reads, the ends of groups,
        and everything before ``start`` cost no decoding.

        ``wanted`` may also be a :class:`LateWanted`, settled while the pass runs: every frame
        is decoded until then (a decoder started before its consumer knows what it will read).

        ``start``: the frames before it are not wanted (with ``wanted``), or, alone, every
        frame from it on is (a run that resumes half way through a video).
        """
        threads = self._threads if threads is None else threads
        index = 0  # the next frame to yield
        try:
            if (wanted is not None or start > 0) and self.can_skip:
                late = wanted if isinstance(wanted, LateWanted) else None
                # Only ``start`` given, or a mask to come: every frame from ``start`` on.
                rest_wanted = wanted is None or late is not None
                mask = np.zeros(start, np.bool_)
                if wanted is not None and late is None:
                    mask = np.array(wanted, np.bool_)
                    mask[:start] = False
                skipping = _SkippingPass(
                    mask, reorders=self.reorders, turns=self._turns, rest_wanted=rest_wanted,
                    late=late,
                )  # fmt: skip
                for frame in self._decode(threads, skipping):
                    yield frame
                    index = frame.index + 1
                if skipping.consistent:
                    return
            # A full pass, or the rest of a skipping one whose numbering failed.
            for frame in self._decode(threads, None):
                if frame.index >= index:
                    yield frame
                    index = frame.index + 1
        except _AV_ERRORS as exc:
            raise VideoError(
                f"{self.path}: decoding failed at frame {index + 1} (1-based) after "
                f"{index} good frames: {exc}"
            ) from None

    def _open(self) -> Any:
        try:
            return av.open(str(self.path))
        except _AV_ERRORS as exc:
            raise VideoError(f"{self.path}: cannot open video: {exc}") from None

    def _decode(self, threads: bool, skipping: _SkippingPass | None) -> Iterator[Frame]:
        container = self._open()
        try:
            stream = _video_stream(container)
            if threads:
                stream.thread_type = "AUTO"
            else:
                stream.codec_context.thread_count = 1
            if skipping is None:
                for index, av_frame in enumerate(container.decode(stream)):
                    self._check_size(av_frame, index)
                    yield Frame(index, av_frame, turns=self._turns)
                return
            codec = stream.codec_context
            skipping.nal_length = _nal_length_size(codec.extradata)
            mode = codec.skip_frame
            flushed = False
            for packet in container.demux(stream):
                if packet.size:
                    ready = skipping.read(packet)
                else:  # the end of the stream: release every packet held, then flush
                    ready = [*skipping.finish(), (packet, True)]
                    flushed = True
                if not skipping.consistent:
                    return
                for held, wanted in ready:
                    if mode != ("DEFAULT" if wanted else "NONREF"):
                        mode = codec.skip_frame = "DEFAULT" if wanted else "NONREF"
                    for av_frame in held.decode():
                        frames = skipping.place(av_frame)
                        if frames is None:
                            return
                        self._check_size(av_frame, frames[-1].index)
                        yield from frames
            if not flushed:  # no end-of-stream packet came: the full pass takes over
                skipping.consistent = False
                return
            yield from skipping.rest()
        finally:
            container.close()

    def _check_size(self, av_frame: Any, index: int) -> None:
        if (av_frame.width, av_frame.height) != self._coded_size:
            raise VideoError(
                f"{self.path}: frame {index + 1} (1-based) is {av_frame.width}x"
                f"{av_frame.height}, the video's frames are {self._coded_size[0]}x"
                f"{self._coded_size[1]}: the frame size changes within the video (joined "
                "recordings?); re-encode it to one size"
            )

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
