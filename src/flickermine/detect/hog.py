"""OpenCV's built-in HOG people detector: no weights to download, the offline default."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from flickermine.errors import ConfigError

FrameDetections = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]

#: Kinds of box the detector can report.
BOX_KINDS = ("person", "window")
#: The margin around the person in HOG's 64x128 training window: 16 px of 64 across, 16 px of
#: 128 down, on each side.
PERSON_MARGIN = (16 / 64, 16 / 128)


class HogPeopleDetector:
    """Dalal–Triggs HOG + linear SVM pedestrian detector from OpenCV (``opencv<5``).

    HOG gives an SVM margin, not a probability; it is mapped to a score in (0, 1) with a
    logistic function, ``score = 1 / (1 + exp(-margin))``, so a margin of 0 is 0.5 and the
    miner's probability-style thresholds apply.

    The detector's 64x128 window holds the person with a margin of 16 pixels on every side
    (Dalal & Triggs trained it that way): a window's box is 3.5 times the person's area and
    rarely overlaps an annotation with IoU 0.5. With ``box="person"`` (default) that margin is
    taken off, a quarter of the width and an eighth of the height on each side, so that the
    boxes fit the person (they become training annotations when mined); ``box="window"`` keeps
    the window as OpenCV reports it.

    Args:
        win_stride: window step in pixels; smaller finds more people, slower.
        scale: image pyramid factor; closer to 1 finds more sizes, slower.
        upscale: resize frames by this factor before detection (boxes are mapped back); HOG's
            window is 64x128, so people shorter than about 128 / upscale pixels are missed.
        score_threshold: boxes scoring below it are dropped. OpenCV reports only windows with
            a positive margin (score > 0.5), so thresholds below 0.5 keep what 0.5 keeps
            (lowering OpenCV's own threshold changes how it groups windows, and the boxes
            get worse: on PETS09-S2L1 the share on a person fell from 0.95 to 0.77 above 0.8).
        box: ``"person"`` (the window less its margin) or ``"window"`` (as OpenCV reports it).
    """

    category = "person"

    def __init__(
        self,
        win_stride: int = 8,
        scale: float = 1.05,
        upscale: float = 1.0,
        score_threshold: float = 0.5,
        box: str = "person",
    ) -> None:
        if not hasattr(cv2, "HOGDescriptor_getDefaultPeopleDetector"):
            raise ConfigError(
                "this OpenCV build has no HOG people detector (opencv-python-headless>=5 "
                "removed it); install opencv-python-headless<5"
            )
        if upscale <= 0:
            raise ConfigError(f"upscale: expected a value > 0, got {upscale}")
        if box not in BOX_KINDS:
            raise ConfigError(f"box: expected one of {', '.join(BOX_KINDS)}, got {box!r}")
        self.box = box
        # Recorded in the detections' metadata: boxes of the two kinds must not be mixed.
        self.description = "opencv-hog-people" + ("" if box == "window" else " (person boxes)")
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.win_stride = win_stride
        self.scale = scale
        self.upscale = upscale
        self.score_threshold = score_threshold

    def __call__(self, frames: list[npt.NDArray[np.uint8]]) -> list[FrameDetections]:
        """Detect people in a batch of BGR frames ``(H, W, 3)``; per frame ``(K, 4)`` xyxy
        boxes and ``(K,)`` scores."""
        return [self._one(f) for f in frames]

    def _one(self, image: npt.NDArray[np.uint8]) -> FrameDetections:
        if self.upscale != 1.0:
            image = np.asarray(cv2.resize(image, None, fx=self.upscale, fy=self.upscale), np.uint8)
        rects, margins = self._hog.detectMultiScale(
            image,
            winStride=(self.win_stride, self.win_stride),
            padding=(8, 8),
            scale=self.scale,
        )
        if len(rects) == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        xywh = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale
        if self.box == "person":
            margin = xywh[:, 2:] * np.array(PERSON_MARGIN, np.float32)
            xywh = np.concatenate([xywh[:, :2] + margin, xywh[:, 2:] - 2 * margin], axis=1)
        xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        score = (1.0 / (1.0 + np.exp(-np.asarray(margins, np.float64).ravel()))).astype(np.float32)
        keep = score >= self.score_threshold
        xyxy, score = xyxy[keep], score[keep]
        # OpenCV's worker threads return the boxes in any order: sort them (score first, then
        # position) so that every run, resumed or not, writes the same file.
        order = np.lexsort((xyxy[:, 3], xyxy[:, 2], xyxy[:, 1], xyxy[:, 0], -score))
        return xyxy[order], score[order]
