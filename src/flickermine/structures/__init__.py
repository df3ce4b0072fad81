"""Core types shared by every stage: boxes and per-video detections."""

from __future__ import annotations

from flickermine.structures.boxes import (
    box_area,
    clip_xyxy,
    grow_xyxy,
    iou_matrix,
    iou_pairs,
    xywh_to_xyxy,
    xyxy_to_xywh,
)
from flickermine.structures.detections import VideoDetections

__all__ = [
    "VideoDetections",
    "box_area",
    "clip_xyxy",
    "grow_xyxy",
    "iou_matrix",
    "iou_pairs",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
]
