"""Boxes whose size does not fit the scene: a hard-negative rule for loose boxes.

In a video from a fixed camera, objects of one category standing on the ground appear smaller
the higher their feet are in the image: over many detections, box height is close to a linear
function of the box's bottom edge. A detector that fires at the wrong scale (a window around a
person and the background beside them, two people in one box) reports a box far taller or
shorter than the scene's other boxes at the same height in the image. Such a box is a false
positive as COCO counts it (its IoU with the object is below 0.5), however steady it is in time,
so the temporal rules cannot catch it; this rule can.

The fit is robust (iteratively trimmed least squares of height on bottom edge, residuals as log
ratios, spread as their median absolute deviation). Where the scene has no such regularity (a
moving or zooming camera, objects of very different sizes), the spread is large or many boxes
miss the fit, and the rule switches itself off for the video (``size_fit_spread``, fewer than
80 % of the boxes within three spreads); with too few boxes to fit (``size_fit_min_boxes``)
likewise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from flickermine.structures import VideoDetections, iou_matrix

#: Rounds of fitting and trimming the boxes farther than 3 spreads from the fit.
_ROUNDS = 10
#: Median absolute deviation -> standard deviation of a normal distribution.
_MAD_TO_SD = 1.4826
#: The spread used is at least this (8 % in height): in a scene fitted almost exactly (or one
#: whose detector quantises sizes, as HOG does), objects a little taller or shorter than most
#: are not outliers.
MIN_SPREAD = 0.08
#: A hard positive's box whose height is off the scene's by more than this many spreads takes
#: the height the scene expects (:meth:`SizeFit.snap`).
SNAP_SPREADS = 2.0


@dataclass(frozen=True)
class SizeFit:
    """Box height against bottom edge over a video.

    Attributes:
        ratio: ``(N,)`` height / expected height per box (NaN where there is no fit or the
            expected height is not positive).
        outlier: ``(N,)`` boxes off by more than ``size_outlier`` spreads.
        spread: the spread of log ratios (NaN without a fit).
        used: boxes the fit was made on.
        active: whether the rule applies to this video.
        coef: ``(2,)`` expected height = ``coef[0] + coef[1] * bottom edge``.
        limit: largest ``|log ratio|`` that is not an outlier (inf when inactive).
    """

    ratio: npt.NDArray[np.float64]
    outlier: npt.NDArray[np.bool_]
    spread: float
    used: int
    active: bool
    coef: tuple[float, float] = (0.0, 0.0)
    limit: float = float("inf")

    def apply(
        self, xyxy: npt.NDArray[np.floating]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Ratios and outliers ``(N,)`` of other boxes ``(N, 4)`` under this fit."""
        height = (xyxy[:, 3] - xyxy[:, 1]).astype(np.float64)
        expected = self.coef[0] + self.coef[1] * xyxy[:, 3].astype(np.float64)
        good = (expected > 0) & (height > 0)
        ratio = np.where(good, height / np.where(good, expected, 1.0), np.nan)
        if not self.active:
            return ratio, np.zeros(len(xyxy), np.bool_)
        with np.errstate(invalid="ignore"):
            return ratio, good & (np.abs(np.log(ratio)) > self.limit)

    def fits(self, box: npt.NDArray[np.floating]) -> bool:
        """Whether a box ``(4,)`` has a height the scene expects (always, when inactive)."""
        if not self.active:
            return True
        expected = self.coef[0] + self.coef[1] * float(box[3])
        height = float(box[3] - box[1])
        if expected <= 0 or height <= 0:
            return True
        return abs(math.log(height / expected)) <= self.limit

    def snap(self, box: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
        """``box`` ``(4,)``, or, when its height is off the scene's by more than
        :data:`SNAP_SPREADS` spreads, the box of the height the scene expects at its bottom
        edge, its width scaled alike (bottom edge and horizontal centre kept, top at least 0).
        The fit is of height on bottom edge, so the bottom edge is where it is defined. Boxes
        within the scene's ordinary variation, and every box when the rule is inactive, are
        kept as they are."""
        out = np.asarray(box, np.float64).copy()
        expected = self.coef[0] + self.coef[1] * float(out[3])
        height = float(out[3] - out[1])
        if not self.active or expected <= 0 or height <= 0:
            return out
        if abs(math.log(height / expected)) <= SNAP_SPREADS * max(self.spread, MIN_SPREAD):
            return out
        half_width = (out[2] - out[0]) * expected / height / 2
        centre = (out[0] + out[2]) / 2
        out[:] = centre - half_width, max(0.0, out[3] - expected), centre + half_width, out[3]
        return out


def _median_line(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A line through ``(x, y)`` that a minority of wild points cannot move (Theil-Sen on the
    pairs of points half the sorted range apart): ``(intercept, slope)``."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    half = len(xs) // 2
    dx = xs[half : half * 2] - xs[:half]
    dy = ys[half : half * 2] - ys[:half]
    wide = dx > 1e-9
    slope = float(np.median(dy[wide] / dx[wide])) if wide.any() else 0.0
    return np.array([float(np.median(y - slope * x)), slope])


def fit_sizes(
    xyxy: npt.NDArray[np.floating],
    fit_on: npt.NDArray[np.bool_],
    size_outlier: float,
    max_spread: float,
    min_boxes: int,
    min_inliers: float = 0.8,
) -> SizeFit:
    """Fit box height to bottom edge on the boxes ``fit_on`` and find every box's ratio.

    Args:
        xyxy: ``(N, 4)`` boxes of one video.
        fit_on: ``(N,)`` boxes to fit on (valid boxes away from the image edges).
        size_outlier: spreads beyond which a box is an outlier (0: never).
        max_spread: the rule is off for a video whose spread exceeds this.
        min_boxes: the rule is off for a video with fewer boxes to fit on.
        min_inliers: the rule is off unless at least this share of the boxes fits the line
            (within three spreads): objects of a few different sizes moving about give a fit
            that many boxes miss.
    """
    n = len(xyxy)
    nan = np.full(n, np.nan)
    off = SizeFit(nan, np.zeros(n, np.bool_), float("nan"), int(fit_on.sum()), False)
    if size_outlier <= 0 or fit_on.sum() < max(min_boxes, 3):
        return off
    height = (xyxy[:, 3] - xyxy[:, 1]).astype(np.float64)
    bottom = xyxy[:, 3].astype(np.float64)
    idx = np.flatnonzero(fit_on & (height > 0))
    design = np.stack([np.ones(len(idx)), bottom[idx]], axis=1)
    keep = np.ones(len(idx), np.bool_)
    spread = float("nan")
    coef: npt.NDArray[np.floating] = _median_line(bottom[idx], height[idx])
    for round_ in range(_ROUNDS):
        if keep.sum() < 3:
            return off
        if round_:  # the first round trims around the robust start
            coef = np.linalg.lstsq(design[keep], height[idx][keep], rcond=None)[0]
        expected = design @ coef
        good = expected > 0
        log_ratio = np.where(good, np.log(height[idx] / np.where(good, expected, 1.0)), np.inf)
        spread = _MAD_TO_SD * float(np.median(np.abs(log_ratio[keep & good])))
        new_keep = good & (np.abs(log_ratio) <= 3 * max(spread, 1e-6))
        if (new_keep == keep).all():
            break
        keep = new_keep

    line = (float(coef[0]), float(coef[1]))
    expected_all = line[0] + line[1] * bottom
    positive = expected_all > 0
    ratio = np.where(positive, height / np.where(positive, expected_all, 1), np.nan)
    # Most boxes must fit: objects of a few different sizes give a fit that many miss.
    few_fit = keep.sum() < min_inliers * len(keep)
    if few_fit or not np.isfinite(spread) or spread > max_spread:
        return SizeFit(ratio, np.zeros(n, np.bool_), spread, int(keep.sum()), False, line)
    limit = size_outlier * max(spread, MIN_SPREAD)
    with np.errstate(invalid="ignore"):
        outlier = np.abs(np.log(ratio)) > limit
    return SizeFit(ratio, outlier & np.isfinite(ratio), spread, int(keep.sum()), True, line, limit)


#: Overlap at which a box in a nearby frame is taken to be the same object (a loose box around
#: a person overlaps the person's own box by about 0.4).
SAME_OBJECT_IOU = 0.2


def odd_in_time(
    boxes: npt.NDArray[np.floating],
    frames: npt.NDArray[np.int64],
    others: VideoDetections,
    others_odd: npt.NDArray[np.bool_],
    window: int,
) -> npt.NDArray[np.bool_]:
    """Which of ``boxes`` (each an outlier of the size fit, in frame ``frames[i]``) are the odd
    ones out over time: the boxes of ``others`` that overlap it (IoU >= :data:`SAME_OBJECT_IOU`)
    within ``window`` frames, itself included, are at least half of the expected size. An
    object that is always that size (a child among adults, a truck among cars, a scene without
    a ground plane) is detected so in every frame and is no outlier."""
    out = np.zeros(len(boxes), np.bool_)
    n = others.num_frames
    for i, (box, t) in enumerate(zip(boxes, frames, strict=True)):
        lo, hi = max(0, int(t) - window), min(n, int(t) + window + 1)
        sl = slice(int(others.frame_offsets[lo]), int(others.frame_offsets[hi]))
        near = others.xyxy[sl]
        if len(near) == 0:
            continue
        same = (
            iou_matrix(box[None].astype(np.float64), near.astype(np.float64))[0] >= SAME_OBJECT_IOU
        )
        odd = int((same & others_odd[sl]).sum())
        out[i] = int(same.sum()) - odd >= max(odd, 1)
    return out
