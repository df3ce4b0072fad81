"""Any exported detector run with ONNX Runtime, described by its pre- and post-processing."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from flickermine.detect.base import DetectError, FrameDetections


@dataclass(frozen=True)
class OnnxSpec:
    """How to feed an ONNX detector and read its outputs.

    Attributes:
        input_size: ``(width, height)`` the model expects, or ``None`` to feed frames as they are.
        resize: ``stretch`` (aspect ratio changes) or ``letterbox`` (scaled to fit, centred,
            padded with grey 114); boxes are mapped back to the frame either way.
        layout: ``NCHW`` or ``NHWC`` (a model whose input has rank 3 gets one image at a time).
        channels: ``RGB`` or ``BGR``.
        scale: pixel values are divided by it (1 keeps 0–255, 255 gives 0–1).
        mean, std: per-channel normalisation after scaling, in the model's channel order.
        output: ``rows`` — one tensor of rows ``x1 y1 x2 y2 score class`` (``[N, 6]`` or
            ``[B, N, 6]``) — or ``separate`` boxes/scores/labels tensors.
        normalized: output coordinates are in [0, 1] of the input (else input pixels).
        boxes_name, scores_name, labels_name: output names for ``separate`` (defaults: the
            outputs called boxes/scores/labels).
        class_names: category names by class index (from a file, one per line).
    """

    input_size: tuple[int, int] | None = None
    resize: str = "stretch"
    layout: str = "NCHW"
    channels: str = "RGB"
    scale: float = 255.0
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    output: str = "separate"
    normalized: bool = False
    boxes_name: str = "boxes"
    scores_name: str = "scores"
    labels_name: str = "labels"
    class_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        choices = {"resize": ("stretch", "letterbox"), "layout": ("NCHW", "NHWC"),
                   "channels": ("RGB", "BGR"), "output": ("rows", "separate")}  # fmt: skip
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise DetectError(
                    f"onnx {name}: expected one of {allowed}, got {getattr(self, name)!r}"
                )
        if not 0 < self.scale < math.inf:  # also refuses nan
            raise DetectError(f"onnx scale: expected > 0, got {self.scale}")
        if self.input_size is not None and min(self.input_size) < 1:
            raise DetectError(f"onnx input size: expected positive WxH, got {self.input_size}")
        if self.std is not None and not all(0 < v < math.inf for v in self.std):
            raise DetectError(f"onnx std: expected > 0, got {self.std}")
        if self.mean is not None and not all(math.isfinite(v) for v in self.mean):
            raise DetectError(f"onnx mean: expected finite numbers, got {self.mean}")


def read_class_names(path: str | Path) -> tuple[str, ...]:
    """Class names, one per line (line i = class index i)."""
    p = Path(path)
    try:
        return tuple(line.strip() for line in p.read_text().splitlines() if line.strip())
    except OSError as exc:
        raise DetectError(f"{p}: cannot read class names: {exc}") from None


class OnnxDetector:
    """Run an ONNX detector and keep one category.

    Args:
        path: the ``.onnx`` file.
        spec: pre- and post-processing (:class:`OnnxSpec`).
        category: class index, or a name from ``spec.class_names``.
        score_threshold: boxes scoring below it are dropped.
        device: ``cpu`` or ``cuda`` (needs onnxruntime-gpu).
    """

    def __init__(
        self,
        path: str | Path,
        spec: OnnxSpec,
        category: str | int,
        score_threshold: float = 0.5,
        device: str = "cpu",
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise DetectError(
                "the onnx backend needs onnxruntime: pip install onnxruntime"
            ) from None
        p = Path(path)
        if not p.is_file():
            raise DetectError(f"{p}: ONNX model not found")
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(p), providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise DetectError(f"{p}: cannot load ONNX model: {exc}") from None
        self.spec = spec
        self.input = self.session.get_inputs()[0]
        self.rank = len(self.input.shape)
        batch_dim = self.input.shape[0] if self.rank == 4 else 1
        self.batchable = self.rank == 4 and not isinstance(batch_dim, int)
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.label = self._category_index(category, p)
        self.category = (
            spec.class_names[self.label] if self.label < len(spec.class_names) else str(category)
        )
        self.score_threshold = score_threshold
        self.description = f"onnx:{p.name}"
        self.path = p

    def _category_index(self, category: str | int, p: Path) -> int:
        text = str(category)
        if text in self.spec.class_names:
            return self.spec.class_names.index(text)
        try:
            return int(text)
        except ValueError:
            names = ", ".join(self.spec.class_names[:12]) or "no class names given (--class-names)"
            raise DetectError(f"{p}: unknown category {text!r}; known: {names}") from None

    # ------------------------------------------------------------------ pre-processing
    def _prepare(
        self, frame: npt.NDArray[np.uint8]
    ) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        """Model input for one frame and the mapping back ``(sx, sy, dx, dy)``:
        frame = (input - (dx, dy)) / (sx, sy)."""
        s = self.spec
        h, w = frame.shape[:2]
        img: np.ndarray = frame
        mapping = (1.0, 1.0, 0.0, 0.0)
        if s.input_size is not None:
            iw, ih = s.input_size
            if s.resize == "stretch":
                img = cv2.resize(frame, (iw, ih), interpolation=cv2.INTER_LINEAR)
                mapping = (iw / w, ih / h, 0.0, 0.0)
            else:
                r = min(iw / w, ih / h)
                nw, nh = round(w * r), round(h * r)
                dx, dy = (iw - nw) // 2, (ih - nh) // 2
                img = np.full((ih, iw, 3), 114, np.uint8)
                img[dy : dy + nh, dx : dx + nw] = cv2.resize(frame, (nw, nh))
                mapping = (nw / w, nh / h, float(dx), float(dy))
        if s.channels == "RGB":
            img = img[:, :, ::-1]
        x = img.astype(np.float32) / np.float32(s.scale)
        if s.mean is not None:
            x -= np.asarray(s.mean, np.float32)
        if s.std is not None:
            x /= np.asarray(s.std, np.float32)
        if s.layout == "NCHW":
            x = x.transpose(2, 0, 1)
        return np.ascontiguousarray(x), mapping

    # ------------------------------------------------------------------ inference
    def __call__(self, frames: list[npt.NDArray[np.uint8]]) -> list[FrameDetections]:
        prepared = [self._prepare(f) for f in frames]
        if self.batchable and len(prepared) > 1:
            batch = np.stack([x for x, _ in prepared])
            per_image = self._split(self._run(batch), len(prepared))
        else:
            per_image = []
            for x, _ in prepared:
                per_image.extend(self._split(self._run(x[None] if self.rank == 4 else x), 1))
        results = []
        for (rows, (x, mapping)), frame in zip(
            zip(per_image, prepared, strict=True), frames, strict=True
        ):
            boxes, scores, labels = rows
            keep = (labels.astype(np.int64) == self.label) & (scores >= self.score_threshold)
            boxes, scores = boxes[keep].astype(np.float64), scores[keep]
            if self.spec.normalized:
                ih, iw = (x.shape[1], x.shape[2]) if self.spec.layout == "NCHW" else x.shape[:2]
                boxes = boxes * np.array([iw, ih, iw, ih])
            sx, sy, dx, dy = mapping
            boxes = (boxes - np.array([dx, dy, dx, dy])) / np.array([sx, sy, sx, sy])
            h, w = frame.shape[:2]
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
            results.append((boxes.astype(np.float32), scores.astype(np.float32)))
        return results

    def _run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        try:
            values = self.session.run(None, {self.input.name: x})
        except Exception as exc:
            raise DetectError(f"{self.path}: inference failed on input {x.shape}: {exc}") from None
        return dict(zip(self.outputs, values, strict=True))

    def _split(
        self, out: dict[str, np.ndarray], n: int
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per-image (boxes (K, 4), scores (K,), labels (K,)) from the raw outputs."""
        shapes = {k: v.shape for k, v in out.items()}
        if self.spec.output == "rows":
            rows = [v for v in out.values() if v.ndim in (2, 3) and v.shape[-1] == 6]
            if not rows:
                raise DetectError(
                    f"{self.path}: --output rows expects a tensor [N, 6] or [B, N, 6] of "
                    f"x1 y1 x2 y2 score class; the model outputs {shapes}"
                )
            r = rows[0]
            per = [r] if r.ndim == 2 else list(r)
            if len(per) != n:
                raise DetectError(f"{self.path}: {len(per)} output images for {n} inputs")
            return [(p[:, :4], p[:, 4], p[:, 5]) for p in per]
        s = self.spec
        missing = [k for k in (s.boxes_name, s.scores_name, s.labels_name) if k not in out]
        if missing:
            raise DetectError(
                f"{self.path}: --output separate expects outputs named {s.boxes_name}, "
                f"{s.scores_name}, {s.labels_name}; the model outputs {shapes}"
            )
        boxes, scores, labels = out[s.boxes_name], out[s.scores_name], out[s.labels_name]
        if boxes.ndim == 2:
            boxes, scores, labels = boxes[None], scores[None], labels[None]
        if (
            boxes.shape[-1] != 4
            or boxes.shape[:2] != scores.shape[:2]
            or scores.shape != labels.shape
        ):
            raise DetectError(
                f"{self.path}: boxes/scores/labels shapes do not agree: {shapes} "
                "(expected [N, 4], [N], [N], optionally with a batch dimension)"
            )
        if boxes.shape[0] != n:
            raise DetectError(f"{self.path}: {boxes.shape[0]} output images for {n} inputs")
        return [(boxes[i], scores[i], labels[i]) for i in range(n)]
