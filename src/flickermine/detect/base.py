"""What every detector backend is: a callable from a batch of frames to boxes and scores."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from flickermine.errors import DetectError

FrameDetections = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]


class Detector(Protocol):
    """A detector for one category.

    ``__call__`` maps a list of BGR ``(H, W, 3)`` uint8 frames to one ``(xyxy (K, 4),
    score (K,))`` pair per frame, boxes in pixels of the frame. ``description``, ``category`` and
    ``score_threshold`` are recorded in the detection file's metadata.
    """

    description: str
    category: str | None
    score_threshold: float | None

    def __call__(self, frames: list[npt.NDArray[np.uint8]]) -> list[FrameDetections]: ...


def check_output(result: Any, n_frames: int, source: str) -> list[FrameDetections]:
    """Validate what a detector returned; a clear error names the problem."""
    if not isinstance(result, (list, tuple)) or len(result) != n_frames:
        got = len(result) if isinstance(result, (list, tuple)) else type(result).__name__
        raise DetectError(f"{source}: expected one result per frame ({n_frames}), got {got}")
    out = []
    for i, item in enumerate(result):
        if not isinstance(item, (list, tuple)) or len(item) < 2:
            raise DetectError(f"{source}: result {i} must be (xyxy, scores[, labels])")
        try:
            with np.errstate(all="ignore"):  # out-of-range numbers are refused below
                xyxy = np.asarray(item[0], np.float32)
                score = np.asarray(item[1], np.float32).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise DetectError(f"{source}: result {i}: not arrays of numbers: {exc}") from None
        if xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4 or xyxy.shape[0] != score.shape[0]:
            raise DetectError(
                f"{source}: result {i}: expected boxes (K, 4) and scores (K,), got "
                f"{xyxy.shape} and {score.shape}"
            )
        if not (np.isfinite(xyxy).all() and np.isfinite(score).all()):
            raise DetectError(
                f"{source}: result {i}: boxes or scores that are NaN, infinite or beyond float32"
            )
        out.append((xyxy, score))
    return out
