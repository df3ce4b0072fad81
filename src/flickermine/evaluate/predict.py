"""Running a checkpoint over the images of a COCO file (COCO results format)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import cv2
import numpy as np

from flickermine.dataset.coco import Coco, CocoError, image_file


def predict_coco(
    checkpoint: str | os.PathLike[str],
    gt: Coco,
    images_dir: str | os.PathLike[str],
    category_id: int,
    *,
    device: str = "cpu",
    score_threshold: float = 0.0,
    progress: Callable[[int], None] | None = None,
    source: str = "ground truth",
) -> list[dict[str, Any]]:
    """Detections of ``checkpoint`` on every image of ``gt`` as COCO results of
    ``category_id`` (``bbox`` as ``[x, y, w, h]``)."""
    from flickermine.detect.torchvision_backend import TorchvisionDetector

    det = TorchvisionDetector(
        weights=str(checkpoint), score_threshold=score_threshold, nms_iou=1.0, device=device
    )
    results = []
    for img in gt["images"]:
        path = image_file(images_dir, img, source)
        frame = cv2.imread(str(path))
        if frame is None:
            raise CocoError(f"{path}: image of id {img['id']} missing or unreadable")
        ((boxes, scores),) = det([np.asarray(frame, np.uint8)])
        for box, score in zip(boxes.tolist(), scores.tolist(), strict=True):
            x1, y1, x2, y2 = box
            results.append({"image_id": img["id"], "category_id": category_id,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})  # fmt: skip
        if progress:
            progress(1)
    return results
