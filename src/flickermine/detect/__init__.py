"""Running a detector over every frame of a video (``flickermine detect``).

Backends: ``hog`` (OpenCV's people detector, offline), ``torchvision`` (any torchvision
detection model, published weights or a ``flickermine train`` checkpoint), ``onnx`` (any
exported detector via ONNX Runtime) and ``module:function`` plugins.
"""

from __future__ import annotations

from typing import Any

from flickermine.detect.base import DetectError, Detector
from flickermine.detect.hog import HogPeopleDetector
from flickermine.detect.onnx_backend import OnnxDetector, OnnxSpec, read_class_names
from flickermine.detect.plugin import PluginDetector
from flickermine.detect.run import detect_to_file, detect_video

__all__ = [
    "DetectError",
    "Detector",
    "HogPeopleDetector",
    "OnnxDetector",
    "OnnxSpec",
    "PluginDetector",
    "build_detector",
    "detect_to_file",
    "detect_video",
    "read_class_names",
]

BACKENDS = ("hog", "torchvision", "onnx", "module:function")


# Public API: its options are keyword-only, one per command-line flag.
def build_detector(  # noqa: PLR0913
    backend: str,
    *,
    model: str | None = None,
    weights: str | None = None,
    category: str | None = None,
    score_threshold: float = 0.5,
    nms_iou: float = 0.15,
    device: str = "cpu",
    half: bool = False,
    onnx_spec: OnnxSpec | None = None,
    hog_box: str = "person",
) -> Any:
    """A detector for ``backend`` (see the module docstring); ``weights`` is the torchvision
    weights name or checkpoint file, or the ``.onnx`` file for the onnx backend; ``hog_box``
    is the kind of box HOG reports (see :class:`HogPeopleDetector`)."""
    if not 0.0 <= score_threshold <= 1.0:  # also refuses nan: it would keep no box at all
        raise DetectError(f"score_threshold: expected a score in [0, 1], got {score_threshold}")
    if not 0.0 <= nms_iou <= 1.0:
        raise DetectError(f"nms_iou: expected a value in [0, 1], got {nms_iou}")
    if backend == "hog":
        if category not in (None, "person", "1"):
            raise DetectError(f"the hog backend detects people only, not {category!r}")
        if device != "cpu" or half:
            raise DetectError(
                f"the hog backend runs on the CPU only: --device {device}"
                + (" --half" if half else "")
                + " does not apply to it"
            )
        return HogPeopleDetector(score_threshold=score_threshold, box=hog_box)
    if backend == "torchvision":
        from flickermine.detect.torchvision_backend import TorchvisionDetector
        from flickermine.models import DEFAULT_MODEL

        return TorchvisionDetector(
            model or DEFAULT_MODEL, weights or "DEFAULT", category, score_threshold, nms_iou,
            device, half,
        )  # fmt: skip
    if backend == "onnx":
        if not weights:
            raise DetectError("the onnx backend needs the model file: --weights MODEL.onnx")
        if category is None:
            raise DetectError("the onnx backend needs --category (class index or name)")
        return OnnxDetector(weights, onnx_spec or OnnxSpec(), category, score_threshold, device)
    if ":" in backend:
        return PluginDetector(backend, category)
    raise DetectError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
