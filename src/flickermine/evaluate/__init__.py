"""Evaluation: COCO AP of a model or of detections for one category; comparisons."""

from __future__ import annotations

from flickermine.evaluate.metrics import STAT_NAMES, CocoMetrics, coco_metrics
from flickermine.evaluate.predict import predict_coco

__all__ = ["STAT_NAMES", "CocoMetrics", "coco_metrics", "predict_coco"]
