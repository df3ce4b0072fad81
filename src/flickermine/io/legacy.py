"""The seed's text format (docs/method.md §2.1), read and written exactly.

Per frame, in order::

    FRAME NUMBER: <n>          (1-based; numbers must increase, a skipped number is a frame
                               without boxes; a header without a number is the next frame)
    <k>
    <x> <y> <w> <h> <score>    (k lines)

The seed's Caffe script wrote ``w = x2 - x1 + 1``; such files load as they are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from flickermine._atomic import atomic_path
from flickermine.errors import DetectionFileError, InvalidDetectionsError
from flickermine.structures import VideoDetections, xywh_to_xyxy, xyxy_to_xywh


def read_legacy(path: str | os.PathLike[str]) -> VideoDetections:
    """Read a legacy ``FRAME NUMBER:`` file into :class:`VideoDetections` (frames 0-based).

    Raises:
        DetectionFileError: unreadable, garbled or truncated file (message names file and line).
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="strict")
    except FileNotFoundError:
        raise DetectionFileError(f"{p}: detection file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DetectionFileError(f"{p}: cannot read detection file: {exc}") from None
    lines = text.splitlines()
    # Trailing blank lines are harmless.
    end = len(lines)
    while end and not lines[end - 1].strip():
        end -= 1

    counts, box_starts, numbers = _frame_blocks(p, lines, end)
    n_boxes = sum(counts)
    values = np.empty((n_boxes, 5), np.float64)
    row = 0
    for start, k in zip(box_starts, counts, strict=True):
        if not k:
            continue
        chunk = lines[start : start + k]
        try:
            arr = np.array(" ".join(chunk).split(), dtype=np.float64)
        except ValueError:
            arr = np.empty(0)
        if arr.size != 5 * k:
            _raise_bad_box_line(p, chunk, start)
        values[row : row + k] = arr.reshape(k, 5)
        row += k

    frame = np.repeat(np.asarray(numbers, np.int64), counts)
    try:
        return VideoDetections.from_rows(
            frame=frame,
            xyxy=xywh_to_xyxy(values[:, :4]),
            score=values[:, 4],
            num_frames=numbers[-1] + 1 if numbers else 0,
            meta={"source": str(p), "format": "legacy"},
        )
    except InvalidDetectionsError as exc:
        raise DetectionFileError(f"{p}: {exc}") from None


_HEADER_NUMBER = re.compile(r"(\d+)\s*$")


def _frame_blocks(p: Path, lines: list[str], end: int) -> tuple[list[int], list[int], list[int]]:
    """The frame blocks of a legacy file's first ``end`` lines: each block's box count, the
    0-based line index of its first box line, and its 0-based frame (its header's number,
    else the next)."""
    counts: list[int] = []
    box_starts: list[int] = []  # 0-based line index of each frame's first box line
    numbers: list[int] = []  # 0-based frame of each block: its header's number, else the next
    i = 0
    while i < end:
        # Header: any text; a number at its end is the frame's (1-based). Count line follows.
        if i + 1 >= end:
            raise DetectionFileError(
                f"{p}:{i + 1}: file ends after the header of frame {len(counts) + 1}: "
                "the number of boxes is missing (interrupted run?)"
            )
        try:
            numbers.append(_frame_number(p, lines[i], i, numbers))
        except DetectionFileError:
            _blame_previous_count(p, lines, box_starts, counts)
            raise
        raw = lines[i + 1].strip()
        try:
            k = int(raw)
        except ValueError:
            _blame_previous_count(p, lines, box_starts, counts)
            raise DetectionFileError(
                f"{p}:{i + 2}: expected the number of boxes of frame {len(counts) + 1}, "
                f"got {raw[:60]!r}"
            ) from None
        if k < 0:
            raise DetectionFileError(f"{p}:{i + 2}: negative box count {k}")
        if i + 2 + k > end:
            found = end - (i + 2)
            raise DetectionFileError(
                f"{p}:{end}: file ends inside frame {len(counts) + 1}: expected {k} boxes, "
                f"found {found} (the detection run was probably interrupted)"
            )
        counts.append(k)
        box_starts.append(i + 2)
        i += 2 + k
    return counts, box_starts, numbers


def _frame_number(p: Path, header: str, i: int, numbers: list[int]) -> int:
    """The 0-based frame of the block headed by line ``i``: the number ending its header
    (1-based in the file), else the one after the previous block."""
    expected = numbers[-1] + 1 if numbers else 0
    match = _HEADER_NUMBER.search(header)
    if match is None:
        return expected
    n = int(match.group(1)) - 1
    if n < 0:
        raise DetectionFileError(f"{p}:{i + 1}: frame number {n + 1}: frames are numbered from 1")
    if numbers and n <= numbers[-1]:
        raise DetectionFileError(
            f"{p}:{i + 1}: frame number {n + 1} after frame {numbers[-1] + 1}: frame numbers "
            "must increase (a repeated or reordered block)"
        )
    return n


def _blame_previous_count(
    p: Path, lines: list[str], box_starts: list[int], counts: list[int]
) -> None:
    """A count line that is not a number often means the previous frame's count was too high
    (its last "boxes" were the next frame's header): name that count line instead."""
    if not counts:
        return
    start, k = box_starts[-1], counts[-1]
    for j in range(start, start + k):
        text = lines[j].strip()
        if text and not (text[0].isdigit() or text[0] in "+-."):
            raise DetectionFileError(
                f"{p}:{start}: frame {len(counts)} announces {k} boxes, but line {j + 1} "
                f"({text[:40]!r}) is the next frame's header: the box count is wrong"
            )


def _raise_bad_box_line(p: Path, chunk: list[str], start: int) -> None:
    for j, line in enumerate(chunk):
        parts = line.split()
        ok = len(parts) == 5
        if ok:
            try:
                [float(v) for v in parts]
            except ValueError:
                ok = False
        if not ok:
            raise DetectionFileError(
                f"{p}:{start + j + 1}: expected 5 numbers 'x y w h score', got {line[:80]!r}"
            )
    raise DetectionFileError(f"{p}:{start + 1}: garbled box lines")  # pragma: no cover


def format_legacy(dets: VideoDetections) -> str:
    """The legacy text for ``dets`` (frames numbered from 1, boxes as ``%f`` like the seed)."""
    xywh = xyxy_to_xywh(dets.xyxy.astype(np.float64))
    out: list[str] = []
    offsets = dets.frame_offsets
    for t in range(dets.num_frames):
        a, b = int(offsets[t]), int(offsets[t + 1])
        out.append(f"FRAME NUMBER: {t + 1}\n{b - a}\n")
        for r in range(a, b):
            x, y, w, h = xywh[r]
            out.append(f"{x:f} {y:f} {w:f} {h:f} {float(dets.score[r]):f}\n")
    return "".join(out)


def write_legacy(dets: VideoDetections, path: str | os.PathLike[str]) -> None:
    """Write ``dets`` atomically in the legacy text format."""
    with atomic_path(path) as tmp:
        tmp.write_text(format_legacy(dets), encoding="utf-8")
