"""Hard positives (docs/method.md §4): frames where a persisting object was missed by the detector.

Planning uses the detection table only (:func:`plan_gaps`): valid detections are chained into
tracks frame to frame; a track that ends and a track that starts at most ``max_gap`` frames
later, where the first was heading (constant velocity, both ways), are one object; each frame
between them gets the interpolated box unless a detection of any score already covers it or the
box leaves the image. Checking against pixels (:func:`refine_gap`) happens in the miner's single
forward pass, while the gap and both sides are in its window: the two sides must look alike
(rejects scene cuts and identity switches), and the object must be found near the interpolated
box in the gap frame (rejects occlusions); the box is moved to where it was found.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from flickermine.mine.params import HardPositiveParams
from flickermine.structures import VideoDetections, iou_matrix

Box = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GapLink:
    """One object seen until frame ``a`` and again from frame ``b`` (``b - a - 1`` missed)."""

    a: int
    b: int
    box_a: Box
    box_b: Box
    support_before: int
    support_after: int


@dataclass(frozen=True)
class GapFrame:
    """A frame inside a gap, with its interpolated box."""

    link: GapLink
    t: int
    box: Box


@dataclass(frozen=True)
class HardPositive:
    """A refined hard positive in frame ``t``."""

    t: int
    box: Box
    gap: int
    support_before: int
    support_after: int
    similarity: float
    a: int
    b: int


def build_tracks(valid: VideoDetections, link_iou: float) -> list[list[int]]:
    """Chain rows of ``valid`` frame to frame (greedy by IoU); each track lists its rows, one
    per consecutive frame."""
    tracks: list[list[int]] = []
    active: list[int] = []  # track ids ending in the previous frame
    for t in range(valid.num_frames):
        sl = valid.frame_slice(t)
        rows = np.arange(sl.start, sl.stop)
        next_active: list[int] = []
        taken: set[int] = set()
        if active and rows.size:
            last = np.array([tracks[i][-1] for i in active])
            iou = iou_matrix(valid.xyxy[last], valid.xyxy[rows])
            order = np.dstack(np.unravel_index(np.argsort(-iou, axis=None), iou.shape))[0]
            used_tracks: set[int] = set()
            for ti, ri in order:
                if iou[ti, ri] < link_iou:
                    break
                if ti in used_tracks or ri in taken:
                    continue
                used_tracks.add(int(ti))
                taken.add(int(ri))
                tracks[active[ti]].append(int(rows[ri]))
                next_active.append(active[ti])
        for ri, row in enumerate(rows):
            if ri not in taken:
                tracks.append([int(row)])
                next_active.append(len(tracks) - 1)
        active = next_active
    return tracks


def _velocity(boxes: Box) -> Box:
    """Mean per-frame change of ``(K, 4)`` boxes in consecutive frames (zeros for one box)."""
    if len(boxes) < 2:
        return np.zeros(4)
    return (boxes[-1] - boxes[0]) / (len(boxes) - 1)


def _moves(before: Box, after: Box, gap: int, min_motion: float) -> bool:
    """Whether the object moved across the gap: the mean centre of its boxes after it (``after``,
    from the first on) lies at least ``min_motion`` of its height per frame from the mean centre
    of its boxes before it (``before``, up to the last), over the frames between the two means
    (``gap``: frames from the last box before to the first after). A false box on static
    background that blinks does not move; a detector's jitter moves the ends of its runs by a
    few pixels, the means of several boxes far less."""
    if min_motion <= 0:
        return True
    centres_before = (before[:, :2] + before[:, 2:]) / 2
    centres_after = (after[:, :2] + after[:, 2:]) / 2
    shift = centres_after.mean(axis=0) - centres_before.mean(axis=0)
    frames = gap + (len(before) - 1) / 2 + (len(after) - 1) / 2
    height = max(1.0, float((before[-1, 3] - before[-1, 1] + after[0, 3] - after[0, 1]) / 2))
    return float(np.hypot(*shift)) / frames >= min_motion * height


def _steady(before: list[int], after: list[int], params: HardPositiveParams) -> bool:
    """Whether an object that does not move is bridged all the same: both tracks have at least
    ``still_support`` boxes (never when it is 0)."""
    least = params.still_support
    return least > 0 and len(before) >= least and len(after) >= least


def link_gaps(valid: VideoDetections, params: HardPositiveParams) -> list[GapLink]:
    """Pairs of tracks (ending, starting) bridged across a gap of 1..``max_gap`` frames."""
    tracks = [tr for tr in build_tracks(valid, params.link_iou) if len(tr) >= params.min_support]
    score = valid.score
    frame_of = valid.frame
    starts: dict[int, list[int]] = defaultdict(list)
    for i, tr in enumerate(tracks):
        starts[int(frame_of[tr[0]])].append(i)
    candidates: list[tuple[float, int, int]] = []
    for i, tr in enumerate(tracks):
        a = int(frame_of[tr[-1]])
        before = valid.xyxy[tr[-4:]].astype(np.float64)
        v_before = _velocity(before)
        for b in range(a + 2, a + params.max_gap + 2):
            for j in starts.get(b, ()):
                after = valid.xyxy[tracks[j][:4]].astype(np.float64)
                forward = before[-1] + v_before * (b - a)
                backward = after[0] - _velocity(after) * (b - a)
                iou_f = iou_matrix(forward[None], after[:1])[0, 0]
                iou_b = iou_matrix(backward[None], before[-1:])[0, 0]
                agreement = min(iou_f, iou_b)
                near_gap = np.concatenate([score[tr[-4:]], score[tracks[j][:4]]])
                moved = _moves(before, after, b - a, params.min_motion)
                if (
                    agreement >= params.link_iou
                    and near_gap.mean() >= params.min_track_score
                    and (moved or _steady(tr, tracks[j], params))
                ):
                    candidates.append((agreement, i, j))
    links: list[GapLink] = []
    used_end: set[int] = set()
    used_start: set[int] = set()
    for _, i, j in sorted(candidates, key=lambda c: -c[0]):
        if i in used_end or j in used_start:
            continue
        used_end.add(i)
        used_start.add(j)
        ti, tj = tracks[i], tracks[j]
        links.append(
            GapLink(
                a=int(frame_of[ti[-1]]),
                b=int(frame_of[tj[0]]),
                box_a=valid.xyxy[ti[-1]].astype(np.float64),
                box_b=valid.xyxy[tj[0]].astype(np.float64),
                support_before=len(ti),
                support_after=len(tj),
            )
        )
    return sorted(links, key=lambda lk: (lk.a, lk.b))


def plan_gaps(
    valid: VideoDetections,
    everything: VideoDetections,
    params: HardPositiveParams,
    width: int,
    height: int,
) -> dict[int, list[GapFrame]]:
    """Gap frames to check against pixels, by frame.

    Args:
        valid: detections at or above the score threshold (tracks are built from them).
        everything: all detections, of any score (any of them can cover a gap frame).
        params: hard-positive parameters.
        width, height: frame size; interpolated boxes must lie inside the image.
    """
    plan: dict[int, list[GapFrame]] = defaultdict(list)
    for link in link_gaps(valid, params):
        for t in range(link.a + 1, link.b):
            f = (t - link.a) / (link.b - link.a)
            box = (1 - f) * link.box_a + f * link.box_b
            if box[0] < -1 or box[1] < -1 or box[2] > width + 1 or box[3] > height + 1:
                continue  # the object (partly) left the image
            others = everything.xyxy[everything.frame_slice(t)]
            if others.size and iou_matrix(box[None], others).max() >= params.cover_iou:
                continue  # already detected, even if weakly
            plan[t].append(GapFrame(link, t, box))
    return dict(plan)


def _int_box(box: Box, width: int, height: int) -> tuple[int, int, int, int]:
    x1 = min(max(round(box[0]), 0), width - 1)
    y1 = min(max(round(box[1]), 0), height - 1)
    x2 = max(min(round(box[2]), width), x1 + 1)
    y2 = max(min(round(box[3]), height), y1 + 1)
    return x1, y1, x2, y2


#: Fraction of a box kept (around its centre) as the object's template: the rim of a box is
#: mostly background, which does not move with the object.
TEMPLATE_CORE = 0.7


def _core(box: Box) -> Box:
    """The central ``TEMPLATE_CORE`` of ``box`` (the same centre)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half_w, half_h = (box[2] - box[0]) * TEMPLATE_CORE / 2, (box[3] - box[1]) * TEMPLATE_CORE / 2
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])


def _find(
    gray_s: npt.NDArray[np.uint8],
    box_s: Box,
    gray_t: npt.NDArray[np.uint8],
    box_t: Box,
    margin_fraction: float,
) -> tuple[float, tuple[float, float]]:
    """Search the core of ``box_s``'s patch of ``gray_s`` around ``box_t`` in ``gray_t``.

    Returns the best ``TM_CCOEFF_NORMED`` score (-1 when the patch does not fit) and the centre
    of the best match.
    """
    h, w = gray_t.shape[:2]
    px1, py1, px2, py2 = _int_box(_core(box_s), w, h)
    patch = gray_s[py1:py2, px1:px2]
    tw, th = box_t[2] - box_t[0], box_t[3] - box_t[1]
    margin = max(4, math.ceil(margin_fraction * max(tw, th)))
    x1, y1, x2, y2 = _int_box(box_t, w, h)
    rx1, ry1 = max(x1 - margin, 0), max(y1 - margin, 0)
    rx2, ry2 = min(x2 + margin, w), min(y2 + margin, h)
    region = gray_t[ry1:ry2, rx1:rx2]
    if patch.shape[0] > region.shape[0] or patch.shape[1] > region.shape[1] or patch.size < 4:
        return -1.0, (0.0, 0.0)
    result = cv2.matchTemplate(region, patch, cv2.TM_CCOEFF_NORMED)
    _, score, _, (lx, ly) = cv2.minMaxLoc(result)
    if not math.isfinite(score):
        return -1.0, (0.0, 0.0)
    return float(score), (rx1 + lx + patch.shape[1] / 2, ry1 + ly + patch.shape[0] / 2)


def core_shift(
    gray_s: npt.NDArray[np.uint8],
    box: Box,
    gray_t: npt.NDArray[np.uint8],
    margin_fraction: float,
) -> tuple[float, npt.NDArray[np.float64]]:
    """Search the core of ``box``'s patch of ``gray_s`` around ``box`` in ``gray_t``: the best
    ``TM_CCOEFF_NORMED`` score (-1 when the patch does not fit) and where, in pixels, the best
    match lies from where the core is in ``gray_s`` (``(dx, dy)``)."""
    h, w = gray_s.shape[:2]
    score, (cx, cy) = _find(gray_s, box, gray_t, box, margin_fraction)
    x1, y1, x2, y2 = _int_box(_core(box), w, h)
    return score, np.array([cx - (x1 + x2) / 2, cy - (y1 + y2) / 2])


def sides_alike(
    gray_a: npt.NDArray[np.uint8],
    gray_b: npt.NDArray[np.uint8],
    link: GapLink,
    params: HardPositiveParams,
) -> float:
    """How well the object before the gap is found where the object after it is (the best
    normalised cross-correlation of its core near ``box_b``)."""
    return _find(gray_a, link.box_a, gray_b, link.box_b, params.refine_margin)[0]


def refine_gap(
    gray_t: npt.NDArray[np.uint8],
    gray_a: npt.NDArray[np.uint8],
    gray_b: npt.NDArray[np.uint8],
    gap: GapFrame,
    params: HardPositiveParams,
) -> HardPositive | None:
    """Find the object near the interpolated box of a gap frame; ``None`` when it is not there.

    The core of each side's box is searched in the interpolated box grown by
    ``refine_margin``; the better match (if it reaches ``min_similarity``) centres the box,
    which keeps the interpolated size.
    """
    h, w = gray_t.shape[:2]
    box = gap.box
    found = [
        _find(gray_s, box_s, gray_t, box, params.refine_margin)
        for gray_s, box_s in ((gray_a, gap.link.box_a), (gray_b, gap.link.box_b))
    ]
    best, (cx, cy) = max(found, key=lambda f: f[0])
    if best < params.min_similarity:
        return None
    bw, bh = box[2] - box[0], box[3] - box[1]
    refined = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
    refined[[0, 2]] = np.clip(refined[[0, 2]], 0, w)
    refined[[1, 3]] = np.clip(refined[[1, 3]], 0, h)
    link = gap.link
    return HardPositive(
        t=gap.t,
        box=refined,
        gap=link.b - link.a - 1,
        support_before=link.support_before,
        support_after=link.support_after,
        similarity=best,
        a=link.a,
        b=link.b,
    )
