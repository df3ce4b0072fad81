"""Detections for a whole video: one flat table of boxes plus a per-frame offset index.

Frame ``t``'s boxes are rows ``frame_offsets[t]:frame_offsets[t + 1]`` of every column, so
selecting a frame is a slice (a view), not a Python list of lists.

>>> import numpy as np
>>> dets = VideoDetections.from_rows(
...     frame=np.array([2, 0, 2]),
...     xyxy=np.array([[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 8, 8]]),
...     score=np.array([0.9, 0.5, 0.7]),
...     num_frames=3,
... )
>>> dets.counts().tolist()
[1, 0, 2]
>>> dets.xyxy[dets.frame_slice(2)].tolist()
[[0.0, 0.0, 4.0, 4.0], [2.0, 2.0, 8.0, 8.0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from flickermine.errors import InvalidDetectionsError


def _shape_error(name: str, expected: str, got: tuple[int, ...]) -> InvalidDetectionsError:
    return InvalidDetectionsError(f"{name}: expected shape {expected}, got {got}")


#: More frames than any video has (over 9 days at 60 fps): a frame count or index beyond it
#: comes from a damaged file, and would only exhaust memory (8 bytes of offsets per frame).
MAX_FRAMES = 50_000_000


def _check_frame_count(num_frames: int) -> None:
    if not 0 <= num_frames <= MAX_FRAMES:
        raise InvalidDetectionsError(
            f"num_frames: expected 0..{MAX_FRAMES:,} frames, got {num_frames:,} (a damaged "
            "frame count or frame index?)"
        )


@dataclass(frozen=True, eq=False)
class VideoDetections:
    """All detections of one video, validated on construction.

    Attributes:
        xyxy: ``(N, 4)`` float32 boxes ``x1, y1, x2, y2`` in pixels of the original frame.
        score: ``(N,)`` float32 confidences.
        class_id: ``(N,)`` int32 category ids (their names, if known, are in ``meta``).
        frame_offsets: ``(num_frames + 1,)`` int64; frame ``t`` owns rows
            ``frame_offsets[t]:frame_offsets[t + 1]``. Frames with no box are empty ranges.
        meta: free-form metadata (video path, fps, size, detector, thresholds ...).
    """

    xyxy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int32]
    frame_offsets: npt.NDArray[np.int64]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "xyxy", np.ascontiguousarray(self.xyxy, dtype=np.float32))
        object.__setattr__(self, "score", np.ascontiguousarray(self.score, dtype=np.float32))
        object.__setattr__(self, "class_id", np.ascontiguousarray(self.class_id, dtype=np.int32))
        offsets = np.ascontiguousarray(self.frame_offsets, dtype=np.int64)
        object.__setattr__(self, "frame_offsets", offsets)
        self._validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_rows(
        cls,
        frame: npt.ArrayLike,
        xyxy: npt.ArrayLike,
        score: npt.ArrayLike,
        class_id: npt.ArrayLike | None = None,
        *,
        num_frames: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> VideoDetections:
        """Build from one row per box in any frame order (rows of a frame keep their order).

        Args:
            frame: ``(N,)`` 0-based frame index of each box.
            xyxy: ``(N, 4)`` boxes.
            score: ``(N,)`` scores.
            class_id: ``(N,)`` category ids; zeros when omitted.
            num_frames: frames in the video; defaults to ``max(frame) + 1``.
            meta: metadata to attach.
        """
        frame_arr = np.asarray(frame)
        if frame_arr.ndim != 1:
            raise _shape_error("frame", "(N,)", frame_arr.shape)
        non_integer = frame_arr.size and not np.issubdtype(frame_arr.dtype, np.integer)
        if non_integer and (
            not np.all(np.isfinite(frame_arr)) or np.any(frame_arr != np.round(frame_arr))
        ):
            raise InvalidDetectionsError("frame: expected integer frame indices")
        frame_arr = frame_arr.astype(np.int64)
        n = frame_arr.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):  # non-finite values refused below
            xyxy_arr = np.asarray(xyxy, dtype=np.float32)
            score_arr = np.asarray(score, dtype=np.float32)
        if n == 0 and xyxy_arr.size == 0:
            xyxy_arr = xyxy_arr.reshape(0, 4)
        cls_arr = np.zeros(n, np.int32) if class_id is None else np.asarray(class_id)
        for name, arr, expected in (("xyxy", xyxy_arr, (n, 4)), ("score", score_arr, (n,))):
            if arr.shape != expected:
                raise _shape_error(name, str(expected), arr.shape)
        if cls_arr.shape != (n,):
            raise _shape_error("class_id", f"({n},)", cls_arr.shape)
        if n and frame_arr.min() < 0:
            raise InvalidDetectionsError(f"frame: indices must be >= 0, got {frame_arr.min()}")
        last = int(frame_arr.max()) + 1 if n else 0
        if num_frames is None:
            num_frames = last
        _check_frame_count(num_frames)
        if last > num_frames:
            raise InvalidDetectionsError(
                f"detections refer to frame {last} (1-based) but the frame count given "
                f"(num_frames) is {num_frames}"
            )
        order = np.argsort(frame_arr, kind="stable")
        counts = np.bincount(frame_arr, minlength=num_frames)
        offsets = np.zeros(num_frames + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(
            xyxy=xyxy_arr[order],
            score=score_arr[order],
            class_id=cls_arr[order],
            frame_offsets=offsets,
            meta=dict(meta or {}),
        )

    @classmethod
    def empty(cls, num_frames: int, meta: dict[str, Any] | None = None) -> VideoDetections:
        """No detections in any of ``num_frames`` frames."""
        _check_frame_count(num_frames)
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            score=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
            frame_offsets=np.zeros(num_frames + 1, np.int64),
            meta=dict(meta or {}),
        )

    # ------------------------------------------------------------------ validation
    def _validate(self) -> None:
        n = self.xyxy.shape[0] if self.xyxy.ndim == 2 else -1
        if self.xyxy.ndim != 2 or self.xyxy.shape[1] != 4:
            raise _shape_error("xyxy", "(N, 4)", self.xyxy.shape)
        if self.score.shape != (n,):
            raise _shape_error("score", f"({n},)", self.score.shape)
        if self.class_id.shape != (n,):
            raise _shape_error("class_id", f"({n},)", self.class_id.shape)
        off = self.frame_offsets
        if off.ndim != 1 or off.shape[0] < 1:
            raise _shape_error("frame_offsets", "(num_frames + 1,)", off.shape)
        if off[0] != 0 or off[-1] != n or np.any(np.diff(off) < 0):
            raise InvalidDetectionsError(
                f"frame_offsets: expected non-decreasing offsets from 0 to {n}, "
                f"got {off[0]} .. {off[-1]}"
            )
        bad = ~np.isfinite(self.xyxy).all(axis=1) | ~np.isfinite(self.score)
        if bad.any():
            self._raise_for_box(int(np.flatnonzero(bad)[0]), "has a non-finite value (NaN/inf)")
        neg = (self.xyxy[:, 2] < self.xyxy[:, 0]) | (self.xyxy[:, 3] < self.xyxy[:, 1])
        if neg.any():
            self._raise_for_box(int(np.flatnonzero(neg)[0]), "has a negative width or height")

    def _raise_for_box(self, row: int, problem: str) -> None:
        frame = int(np.searchsorted(self.frame_offsets, row, side="right") - 1)
        index = row - int(self.frame_offsets[frame])
        box = ", ".join(f"{v:g}" for v in self.xyxy[row])
        raise InvalidDetectionsError(
            f"box {index} of frame {frame + 1} (1-based; {frame} 0-based) {problem}: "
            f"xyxy=[{box}], score={self.score[row]:g}"
        )

    # ------------------------------------------------------------------ access
    @property
    def num_frames(self) -> int:
        """Number of frames of the video, including frames without detections."""
        return int(self.frame_offsets.shape[0] - 1)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def frame_slice(self, t: int) -> slice:
        """Rows of frame ``t`` (0-based) as a slice into every column."""
        if not 0 <= t < self.num_frames:
            raise IndexError(f"frame {t} out of range [0, {self.num_frames})")
        return slice(int(self.frame_offsets[t]), int(self.frame_offsets[t + 1]))

    def counts(self) -> npt.NDArray[np.int64]:
        """``(num_frames,)`` number of boxes in each frame."""
        return np.diff(self.frame_offsets)

    @property
    def frame(self) -> npt.NDArray[np.int64]:
        """``(N,)`` 0-based frame index of every row."""
        return np.repeat(np.arange(self.num_frames, dtype=np.int64), self.counts())

    def select(self, mask: npt.NDArray[np.bool_]) -> VideoDetections:
        """Keep rows where ``mask`` ``(N,)`` is true; frame structure is preserved."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self),):
            raise _shape_error("mask", f"({len(self)},)", mask.shape)
        # Kept rows before each offset = prefix sum of the mask sampled at the offsets.
        prefix = np.concatenate(([0], np.cumsum(mask, dtype=np.int64)))
        kept = prefix[self.frame_offsets]
        return VideoDetections(
            xyxy=self.xyxy[mask],
            score=self.score[mask],
            class_id=self.class_id[mask],
            frame_offsets=kept,
            meta=dict(self.meta),
        )

    def with_num_frames(self, num_frames: int) -> VideoDetections:
        """The same boxes for a video of ``num_frames`` frames (trailing frames empty)."""
        if num_frames < self.num_frames and self.frame_offsets[num_frames] != len(self):
            last = int(np.flatnonzero(self.counts())[-1])
            raise InvalidDetectionsError(
                f"detections cover frame {last + 1} (1-based) but the video has {num_frames} frames"
            )
        offsets = np.full(num_frames + 1, len(self), np.int64)
        keep = min(num_frames, self.num_frames) + 1
        offsets[:keep] = self.frame_offsets[:keep]
        return VideoDetections(self.xyxy, self.score, self.class_id, offsets, dict(self.meta))

    def equals(self, other: VideoDetections, *, meta: bool = False) -> bool:
        """Same frames and rows (and, optionally, the same metadata)."""
        same = (
            np.array_equal(self.frame_offsets, other.frame_offsets)
            and np.array_equal(self.xyxy, other.xyxy)
            and np.array_equal(self.score, other.score)
            and np.array_equal(self.class_id, other.class_id)
        )
        return bool(same and (not meta or self.meta == other.meta))
