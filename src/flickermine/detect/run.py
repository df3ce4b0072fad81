"""Detecting over a whole video, frame by frame, into :class:`VideoDetections`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from flickermine.structures import VideoDetections, clip_xyxy
from flickermine.video import VideoReader

Detector = Callable[[list[Any]], list[tuple[np.ndarray, np.ndarray]]]


def detect_video(
    video: str | os.PathLike[str],
    detector: Detector,
    *,
    batch_size: int = 1,
    progress: Callable[[int], None] | None = None,
) -> VideoDetections:
    """Run ``detector`` on every frame of ``video``.

    Args:
        video: the video file.
        detector: maps a list of BGR frames to per-frame ``(xyxy (K, 4), score (K,))``.
        batch_size: frames per detector call.
        progress: called with the number of frames processed since the last call.

    Returns:
        Detections (boxes clipped to the frame) with metadata describing video and detector.
    """
    reader = VideoReader(video)
    frames: list[np.ndarray] = []
    boxes: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    batch: list[Any] = []
    indices: list[int] = []
    count = 0

    def flush() -> None:
        for t, (xyxy, score) in zip(indices, detector(batch), strict=True):
            frames.append(np.full(len(score), t, np.int64))
            boxes.append(clip_xyxy(np.asarray(xyxy, np.float32), reader.width, reader.height))
            scores.append(np.asarray(score, np.float32))
        if progress is not None:
            progress(len(batch))
        batch.clear()
        indices.clear()

    for frame in reader:
        batch.append(frame.bgr)
        indices.append(frame.index)
        count += 1
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    meta = {
        "video": str(reader.path),
        "fps": reader.fps,
        "width": reader.width,
        "height": reader.height,
        "detector": getattr(detector, "description", type(detector).__name__),
        "category": getattr(detector, "category", None),
        "score_threshold": getattr(detector, "score_threshold", None),
    }
    if not frames:
        return VideoDetections.empty(count, meta)
    return VideoDetections.from_rows(
        frame=np.concatenate(frames),
        xyxy=np.concatenate(boxes),
        score=np.concatenate(scores),
        num_frames=count,
        meta=meta,
    )
