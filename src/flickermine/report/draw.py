"""Drawing verdicts on frames: hard negatives red, pseudo-positives green, hard positives blue."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

#: BGR colours of the three kinds of boxes.
HARD_NEGATIVE_BGR = (0, 0, 255)
PSEUDO_POSITIVE_BGR = (0, 200, 0)
HARD_POSITIVE_BGR = (255, 128, 0)


def draw_boxes(
    image: npt.NDArray[np.uint8],
    xyxy: npt.NDArray[np.floating],
    colors: list[tuple[int, int, int]],
    labels: list[str],
) -> npt.NDArray[np.uint8]:
    """A copy of ``image`` ``(H, W, 3)`` with boxes ``(K, 4)`` drawn and labelled.

    Line width and text size follow the image size so pictures of any resolution stay legible.
    """
    out = image.copy()
    h, w = out.shape[:2]
    thickness = max(2, round(min(h, w) / 200))
    font_scale = max(0.4, min(h, w) / 900)
    for box, color, label in zip(xyxy, colors, labels, strict=True):
        x1, y1, x2, y2 = (round(float(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        if not label:
            continue
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
        ty = y2 + th + base + 2 if y2 + th + base + 2 < h else max(y1 - 4, th + 2)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw + 4, ty + base - 1), color, -1)
        cv2.putText(
            out, label, (x1 + 2, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
            (255, 255, 255), 1, cv2.LINE_AA,
        )  # fmt: skip
    return out


def draw_verdicts(
    image: npt.NDArray[np.uint8],
    xyxy: npt.NDArray[np.floating],
    score: npt.NDArray[np.floating],
    hard_negative: npt.NDArray[np.bool_],
    hard_positive_xyxy: npt.NDArray[np.floating] | None = None,
) -> npt.NDArray[np.uint8]:
    """The review picture: hard negatives red, pseudo-positives green, each with its score;
    hard-positive pseudo-labels, if given, in blue marked ``missed``."""
    boxes = [np.asarray(xyxy, np.float64).reshape(-1, 4)]
    colors = [HARD_NEGATIVE_BGR if hn else PSEUDO_POSITIVE_BGR for hn in hard_negative]
    labels = [f"{s:.2f}" for s in score]
    if hard_positive_xyxy is not None and len(hard_positive_xyxy):
        boxes.append(np.asarray(hard_positive_xyxy, np.float64).reshape(-1, 4))
        colors += [HARD_POSITIVE_BGR] * len(hard_positive_xyxy)
        labels += ["missed"] * len(hard_positive_xyxy)
    return draw_boxes(image, np.concatenate(boxes), colors, labels)
