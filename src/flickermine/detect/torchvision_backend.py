"""torchvision detection models: published weights or a checkpoint from ``flickermine train``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from flickermine.detect.base import DetectError, FrameDetections
from flickermine.models import (
    DEFAULT_MODEL,
    load_checkpoint_model,
    load_published,
    published_weights,
    require_torch,
    resolve_device,
)


def is_checkpoint_path(weights: str) -> bool:
    """Whether ``weights`` names a file rather than torchvision weights."""
    return Path(weights).suffix in (".pt", ".pth", ".ckpt") or Path(weights).is_file()


class TorchvisionDetector:
    """A torchvision detection model, kept to one category, with class-specific NMS.

    Args:
        model: torchvision model name (default Faster R-CNN ResNet-50 FPN v2).
        weights: torchvision weights (``DEFAULT``, ``COCO_V1``, a full weights name) fetched and
            cached by torchvision, or a checkpoint file written by ``flickermine train``.
        category: COCO name or id (published weights), or the checkpoint's category name or id;
            a single-category checkpoint needs none.
        score_threshold: boxes scoring below it are dropped (the seed's scripts used 0.6–0.85).
        nms_iou: IoU of the extra non-maximum suppression among the kept boxes (seed: 0.15).
        device: ``cpu``, ``cuda``, ``cuda:1`` ...
        half: run in float16 (CUDA only).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        weights: str = "DEFAULT",
        category: str | int | None = None,
        score_threshold: float = 0.5,
        nms_iou: float = 0.15,
        device: str = "cpu",
        half: bool = False,
    ) -> None:
        torch = require_torch()
        # Everything the user chose is checked before a model is loaded (or downloaded).
        if not 0.0 <= nms_iou <= 1.0:
            raise DetectError(f"nms_iou: expected a value in [0, 1], got {nms_iou}")
        self.device = resolve_device(device)
        if half and self.device.type != "cuda":
            raise DetectError("--half needs a CUDA device")
        if is_checkpoint_path(weights):
            net, cats, ckpt = load_checkpoint_model(weights, expected_name=None)
            names = ["__background__", *(str(c.get("name", c.get("id"))) for c in cats)]
            ids = [None, *(c.get("id") for c in cats)]
            model = ckpt["model_name"]
            label, name = _pick_label(category, names, ids, weights, default_single=True)
        else:
            resolved, names = published_weights(model, weights)  # no download yet
            label, name = _pick_label(category, names, list(range(len(names))), weights, False)
            net = load_published(model, resolved)
        self.model_name = model
        self.half = half
        self.net = net.eval().to(self.device)
        if half:
            self.net = self.net.half()
        self.label = label
        self.category = name
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.description = f"torchvision:{model}:{weights}"
        self._torch = torch

    #: torch threads per inference thread (set by the runner when it uses several workers).
    threads_per_worker: int | None = None

    def thread_init(self) -> None:
        """Run at the start of each inference thread."""
        if self.threads_per_worker:
            self._torch.set_num_threads(self.threads_per_worker)

    def __call__(self, frames: list[npt.NDArray[np.uint8]]) -> list[FrameDetections]:
        torch = self._torch
        from torchvision.ops import nms

        dtype = torch.float16 if self.half else torch.float32
        batch = [
            torch.from_numpy(np.ascontiguousarray(f[:, :, ::-1].transpose(2, 0, 1)))
            .to(self.device, dtype)
            .div_(255.0)
            for f in frames
        ]
        with torch.inference_mode():
            outputs = self.net(batch)
        results = []
        for out in outputs:
            keep = (out["labels"] == self.label) & (out["scores"] >= self.score_threshold)
            boxes, scores = out["boxes"][keep].float(), out["scores"][keep].float()
            order = nms(boxes, scores, self.nms_iou)
            results.append(
                (boxes[order].cpu().numpy().astype(np.float32),
                 scores[order].cpu().numpy().astype(np.float32))
            )  # fmt: skip
        return results


def _pick_label(
    category: str | int | None,
    names: list[str],
    ids: list[Any],
    source: str,
    default_single: bool,
) -> tuple[int, str]:
    """Label index and name of the requested category."""
    real = [i for i, n in enumerate(names) if i > 0 and n not in ("N/A", "__background__")]
    if category is None:
        if default_single and len(real) == 1:
            return real[0], names[real[0]]
        raise DetectError(f"{source}: --category is required (one of {_listing(names, real)})")
    text = str(category)
    for i in real:
        if names[i] == text or str(ids[i]) == text:
            return i, names[i]
    raise DetectError(f"{source}: unknown category {text!r}; choose from {_listing(names, real)}")


def _listing(names: list[str], real: list[int]) -> str:
    shown = ", ".join(names[i] for i in real[:12])
    return shown + (", ..." if len(real) > 12 else "")
