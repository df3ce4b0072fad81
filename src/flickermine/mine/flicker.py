"""The flicker miner (docs/method.md §3): detections without temporal support are hard negatives.

The video is read once, forward, keeping only ``2 * window + 1`` frames (``2 * max(window,
max_gap) + 1`` when hard positives are mined too, see :mod:`.hardpos`). Frame ``t`` is judged
when frame ``t + window`` (or ``t + max_gap``) arrives. Grey images and template matching are
computed only for the candidates that need them: a neighbour detection overlapping the
candidate's own box supports it whatever the template match says, so that cheap test runs
first, for the whole video at once (:func:`support_without_pixels`); :func:`pixel_needs` tells
the decoder which frames' images will be read at all. Template searches are bounded exactly
(:func:`probe_neighbour`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum

import cv2
import numpy as np
import numpy.typing as npt

from flickermine.decoding import PixelNeeds
from flickermine.mine.hardpos import (
    GapFrame,
    HardPositive,
    core_shift,
    plan_gaps,
    refine_gap,
    sides_alike,
)
from flickermine.mine.params import HardPositiveParams, MinerParams
from flickermine.mine.scene import SizeFit, fit_sizes, odd_in_time
from flickermine.structures import VideoDetections, box_area, clip_xyxy, iou_matrix, iou_pairs
from flickermine.video import Frame


class Exclusion(IntEnum):
    """Why a valid detection is not a candidate (``CANDIDATE`` when it is one)."""

    CANDIDATE = 0
    CONFIDENT = 1
    SMALL = 2
    BORDER = 3


class Support(IntEnum):
    """Outcome of the search for support in one direction."""

    NOT_SEARCHED = 0  # not a candidate, or the other direction already supported it
    NONE = 1  # no neighbour in the window supports it
    OVERLAP = 2  # a neighbour detection overlaps its box or its tracked box
    APPEARANCE = 3  # the template match fell below the similarity threshold
    MOTION = 4  # its own picture is found moving in the frames around it (motion_support)


#: Frames before and after a candidate in which the motion test looks for its picture (at most
#: the window).
MOTION_STEP = 2
#: The motion test searches the candidate's core around its box grown by this fraction of the
#: box's larger side.
MOTION_MARGIN = 0.5


@dataclass(frozen=True)
class FrameVerdicts:
    """The miner's verdicts for the valid detections of one frame.

    Attributes:
        frame: the decoded frame (its ``index`` is 0-based).
        det_index: ``(K,)`` position of each valid detection among all of the frame's
            detections in the input file.
        xyxy: ``(K, 4)`` boxes. score: ``(K,)`` scores.
        exclusion: ``(K,)`` :class:`Exclusion` codes.
        before, after: ``(K,)`` :class:`Support` codes for the two directions.
        before_offset, after_offset: ``(K,)`` frame distance of the supporting (or last
            searched) neighbour; 0 where not searched.
        hard_negative: ``(K,)`` bool.
        hard_positives: missed objects found in this frame (empty unless asked for).
        size_ratio: ``(K,)`` height over the height the scene's fit expects (NaN without a
            fit; see :mod:`.scene`), or ``None`` when the size rule is off.
        size_outlier: ``(K,)`` candidates flagged by the size rule, or ``None``.
    """

    frame: Frame
    det_index: npt.NDArray[np.int64]
    xyxy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]
    exclusion: npt.NDArray[np.int8]
    before: npt.NDArray[np.int8]
    after: npt.NDArray[np.int8]
    before_offset: npt.NDArray[np.int16]
    after_offset: npt.NDArray[np.int16]
    hard_negative: npt.NDArray[np.bool_]
    hard_positives: tuple[HardPositive, ...] = ()
    size_ratio: npt.NDArray[np.float64] | None = None
    size_outlier: npt.NDArray[np.bool_] | None = None

    @property
    def index(self) -> int:
        """0-based frame index."""
        return self.frame.index


def exclusions(
    xyxy: npt.NDArray[np.floating],
    score: npt.NDArray[np.floating],
    params: MinerParams,
    width: int,
    height: int,
) -> npt.NDArray[np.int8]:
    """:class:`Exclusion` code of each box ``(K, 4)``: confident, then small, then border."""
    m = params.border_margin
    near_border = (
        (xyxy[:, 0] < m) | (xyxy[:, 1] < m) | (xyxy[:, 2] > width - m) | (xyxy[:, 3] > height - m)
    )
    code = np.zeros(len(score), np.int8)
    code[near_border] = Exclusion.BORDER
    code[box_area(xyxy) < params.min_area] = Exclusion.SMALL
    code[score >= params.confident_score] = Exclusion.CONFIDENT
    return code


def _patch_and_region(
    box: npt.NDArray[np.floating], width: int, height: int, margin: int
) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """Integer patch ``(x1, y1, x2, y2)`` covering ``box`` and its search region, in the image."""
    x1 = min(max(math.floor(box[0]), 0), width - 1)
    y1 = min(max(math.floor(box[1]), 0), height - 1)
    x2 = max(min(math.ceil(box[2]), width), x1 + 1)
    y2 = max(min(math.ceil(box[3]), height), y1 + 1)
    region = (
        max(x1 - margin, 0),
        max(y1 - margin, 0),
        min(x2 + margin, width),
        min(y2 + margin, height),
    )
    return (x1, y1, x2, y2), region


def match_template(
    gray_t: npt.NDArray[np.uint8],
    gray_u: npt.NDArray[np.uint8],
    box: npt.NDArray[np.floating],
    margin: int,
) -> tuple[float, npt.NDArray[np.float64]]:
    """Find ``box``'s patch of ``gray_t`` inside its grown search region of ``gray_u``.

    Returns:
        The best ``TM_CCOEFF_NORMED`` score (non-finite scores count as 0) and the tracked box
        ``(4,)`` xyxy of the patch's size at the best location.
    """
    height, width = gray_t.shape[:2]
    (x1, y1, x2, y2), (rx1, ry1, rx2, ry2) = _patch_and_region(box, width, height, margin)
    patch = gray_t[y1:y2, x1:x2]
    result = cv2.matchTemplate(gray_u[ry1:ry2, rx1:rx2], patch, cv2.TM_CCOEFF_NORMED)
    _, best, _, (lx, ly) = cv2.minMaxLoc(result)
    if not math.isfinite(best):
        best = 0.0
    tracked = np.array([rx1 + lx, ry1 + ly, rx1 + lx + (x2 - x1), ry1 + ly + (y2 - y1)], float)
    return float(best), tracked


def _best_axis_overlap(lo: float, hi: float, size: float, n1: float, n2: float) -> float:
    """Largest overlap of an interval of ``size`` placed with its start in ``[lo, hi]`` with
    the interval ``[n1, n2]`` (the overlap is unimodal in the start, so the best start is the
    point of ``[lo, hi]`` nearest to the starts giving full overlap)."""
    start = min(max(lo, min(n1, n2 - size)), hi)
    return max(min(start + size, n2) - max(start, n1), 0.0)


def overlap_rects(
    size: tuple[int, int],
    region: tuple[int, int, int, int],
    neighbours: npt.NDArray[np.floating],
    iou_threshold: float,
) -> list[tuple[int, int, int, int]]:
    """Rectangles ``(x_lo, y_lo, x_hi, y_hi)`` (inclusive) of the top-left positions inside
    ``region`` where a box of ``size`` could overlap one of ``neighbours`` with IoU above the
    threshold; every such position lies in one of them (one rectangle per reachable neighbour,
    none when no position can reach the threshold).

    A neighbour is reachable when the largest IoU over all continuous placements in the region
    exceeds the threshold (exact). Its rectangle: IoU > τ needs intersection
    > c = τ (A + B) / (1 + τ); the overlap along y is at most ``min(h, h_B)``, so the overlap
    along x must exceed ``c / min(h, h_B)``, and likewise in y; widened by a pixel against
    rounding. Plain Python: there are a handful of neighbours, and this runs for every search.
    """
    w, h = size
    rx1, ry1, rx2, ry2 = region
    rects = []
    for nx1, ny1, nx2, ny2 in np.asarray(neighbours, np.float64).reshape(-1, 4).tolist():
        bw, bh = nx2 - nx1, ny2 - ny1
        if bw <= 0 or bh <= 0:
            continue  # an empty box overlaps nothing
        inter = _best_axis_overlap(rx1, rx2 - w, w, nx1, nx2) * _best_axis_overlap(
            ry1, ry2 - h, h, ny1, ny2
        )
        union = w * h + bw * bh - inter
        if union <= 0 or inter / union <= iou_threshold:
            continue
        c = iou_threshold * (w * h + bw * bh) / (1.0 + iou_threshold)
        kx, ky = c / min(h, bh), c / min(w, bw)
        x_lo = max(math.floor(nx1 - w + kx) - 1, rx1)
        x_hi = min(math.ceil(nx2 - kx) + 1, rx2 - w)
        y_lo = max(math.floor(ny1 - h + ky) - 1, ry1)
        y_hi = min(math.ceil(ny2 - ky) + 1, ry2 - h)
        if x_lo <= x_hi and y_lo <= y_hi:
            rects.append((x_lo, y_lo, x_hi, y_hi))
    return rects


#: Margin for the shortcuts that compare a correlation computed here (float64, one position)
#: with OpenCV's (float32 FFT); far above the rounding of either on textured patches.
_NCC_EPS = 1e-3
#: Patches flatter than this (grey-level standard deviation) always get the full search: their
#: correlations are dominated by rounding.
_MIN_SPREAD = 1.0
#: The bounded search is used when its area is below this share of the full search's.
_BOUNDED_SHARE = 0.8


def _spread_and_correlation(
    patch: npt.NDArray[np.uint8], other: npt.NDArray[np.uint8]
) -> tuple[float, float]:
    """Grey-level standard deviation of ``patch`` and its ``TM_CCOEFF_NORMED`` correlation with
    the same-size ``other`` (0 when either is flat). The sums are exact integers, so only the
    final division rounds: OpenCV's sums of 8-bit pixels and of their squares are within a
    few units in the last place of the integer (some of its paths take a square root and
    square it again), far below 0.5 for any image, so rounding recovers them. No BLAS call
    (its threads would compete with the decoder), no copies."""
    n = patch.size
    sa, sb = round(cv2.sumElems(patch)[0]), round(cv2.sumElems(other)[0])
    aa, bb = round(cv2.norm(patch, cv2.NORM_L2SQR)), round(cv2.norm(other, cv2.NORM_L2SQR))
    ab = (aa + bb - round(cv2.norm(patch, other, cv2.NORM_L2SQR))) // 2  # sum of a*b
    var_a = float(n * aa - sa * sa) / n / n
    var_b = float(n * bb - sb * sb) / n / n
    spread = math.sqrt(max(var_a, 0.0))
    if var_a <= 0 or var_b <= 0:
        return spread, 0.0
    covariance = float(n * ab - sa * sb) / n / n
    return spread, covariance / math.sqrt(var_a * var_b)


#: More close contenders than this in the bounded search: run the full search instead.
_MAX_CONTENDERS = 4096


def _tracked_box_overlaps_nothing(
    patch: npt.NDArray[np.uint8],
    gray_u: npt.NDArray[np.uint8],
    rects: list[tuple[int, int, int, int]],
    full_area: int,
    score: float,
    neighbours: npt.NDArray[np.floating],
    iou_threshold: float,
) -> bool:
    """Whether the best match is sure not to overlap any of ``neighbours``, knowing that the
    patch correlates ``score`` at its own position (so the best match scores at least that).

    Only positions in ``rects`` could overlap; of those, only the ones scoring close to
    ``score`` or above could be the best match. True when none of these overlaps a neighbour.
    The rectangles are searched on the sub-images they cover, and only when that is cheaper
    than the full search.
    """
    h, w = patch.shape
    if len(rects) > 1:  # one search over the bounding rectangle when that is no larger
        xs0, ys0, xs1, ys1 = zip(*rects, strict=True)
        bound = (min(xs0), min(ys0), max(xs1), max(ys1))
        area = (bound[2] - bound[0] + w) * (bound[3] - bound[1] + h)
        if area <= sum((r[2] - r[0] + w) * (r[3] - r[1] + h) for r in rects):
            rects = [bound]
    if sum((r[2] - r[0] + w) * (r[3] - r[1] + h) for r in rects) > _BOUNDED_SHARE * full_area:
        return False
    for x0, y0, x1, y1 in rects:
        result = cv2.matchTemplate(gray_u[y0 : y1 + h, x0 : x1 + w], patch, cv2.TM_CCOEFF_NORMED)
        ys, xs = np.nonzero(result >= score - _NCC_EPS)
        if len(xs) > _MAX_CONTENDERS:
            return False
        if len(xs):
            left, top = (xs + x0).astype(np.float64), (ys + y0).astype(np.float64)
            boxes = np.stack([left, top, left + w, top + h], axis=1)
            if iou_matrix(boxes, neighbours).max() > iou_threshold:
                return False
    return True


def probe_neighbour(
    gray_t: npt.NDArray[np.uint8],
    gray_u: npt.NDArray[np.uint8],
    box: npt.NDArray[np.floating],
    neighbours: npt.NDArray[np.floating],
    params: MinerParams,
) -> Support | None:
    """Steps 3a–3b of docs/method.md §3 for one candidate and one non-empty neighbour frame.

    Returns :attr:`Support.APPEARANCE`, :attr:`Support.OVERLAP`, or ``None`` (go on outward).

    Exact shortcuts, tried before the full template search: let ``s`` be the patch's correlation
    at its own position in the neighbour frame. If ``s`` is above the similarity threshold, so is
    the best match, so only an overlapping tracked box can stop the walk. Then

    * when no neighbour box could reach the IoU threshold from any position of the search
      region, the walk goes on;
    * otherwise the positions from which one could are bounded by small rectangles
      (:func:`overlap_rects`). The best match scores at least ``s``; when none of the positions
      of those rectangles that score that well (up to rounding) overlaps a neighbour box, the
      tracked box overlaps nothing and the walk goes on. The rectangles cost a fraction of the
      full search.
    """
    height, width = gray_t.shape[:2]
    (x1, y1, x2, y2), region = _patch_and_region(box, width, height, params.search_margin)
    patch = gray_t[y1:y2, x1:x2]
    spread, same = _spread_and_correlation(patch, gray_u[y1:y2, x1:x2])
    if spread >= _MIN_SPREAD and same >= params.similarity_threshold + _NCC_EPS:
        size = (x2 - x1, y2 - y1)
        rects = overlap_rects(size, region, neighbours, params.iou_threshold)
        full_area = (region[2] - region[0]) * (region[3] - region[1])
        if not rects or _tracked_box_overlaps_nothing(
            patch, gray_u, rects, full_area, same, neighbours, params.iou_threshold
        ):
            return None
    best, tracked = match_template(gray_t, gray_u, box, params.search_margin)
    if best < params.similarity_threshold:
        return Support.APPEARANCE
    if iou_matrix(tracked[None], neighbours).max() > params.iou_threshold:
        return Support.OVERLAP
    return None


#: Box pairs compared at once by :func:`support_without_pixels` (bounds its memory).
_PAIR_CHUNK = 1 << 20


def _max_iou_with_frames(
    boxes: npt.NDArray[np.floating],
    dets: VideoDetections,
    rows: npt.NDArray[np.int64],
    frames: npt.NDArray[np.int64],
) -> npt.NDArray[np.float64]:
    """Largest IoU of box ``boxes[rows[i]]`` with the boxes of ``dets`` in frame ``frames[i]``
    (each non-empty)."""
    counts = np.diff(dets.frame_offsets)[frames]
    out = np.empty(len(rows))
    ends = np.cumsum(counts)
    start = 0
    while start < len(rows):
        base = ends[start - 1] if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, base + _PAIR_CHUNK, side="right")))
        c = counts[start:stop]
        first = np.cumsum(c) - c
        mine = np.repeat(rows[start:stop], c)
        theirs = (
            np.arange(int(c.sum())) - np.repeat(first, c)
            + np.repeat(dets.frame_offsets[frames[start:stop]], c)
        )  # fmt: skip
        out[start:stop] = np.maximum.reduceat(iou_pairs(boxes[mine], dets.xyxy[theirs]), first)
        start = stop
    return out


@dataclass(frozen=True)
class PixelFreeSupport:
    """What docs/method.md §3 decides for every valid detection of a video without looking at
    pixels.

    Walking outward, empty neighbours are skipped, and the first non-empty one supports a
    candidate when one of its boxes overlaps the candidate's own box: no template match is
    needed then (a candidate whose walk needs one is *undecided*). Support codes and offsets
    are the ones :meth:`_Judging._walk_support` records.

    Attributes:
        before, after: ``(N,)`` :class:`Support` codes per valid detection (``NOT_SEARCHED``
            where undecided or not a candidate).
        before_offset, after_offset: ``(N,)`` frame distance of the supporting neighbour.
        needs_pixels: ``(num_frames,)`` frames holding an undecided candidate.
        reads: ``(num_frames,)`` frames whose grey images judging those may read.
    """

    before: npt.NDArray[np.int8]
    after: npt.NDArray[np.int8]
    before_offset: npt.NDArray[np.int16]
    after_offset: npt.NDArray[np.int16]
    needs_pixels: npt.NDArray[np.bool_]
    reads: npt.NDArray[np.bool_]


def support_without_pixels(
    valid: VideoDetections,
    codes: npt.NDArray[np.int8],
    params: MinerParams,
    supporting: VideoDetections | None = None,
) -> PixelFreeSupport:
    """Decide every candidate that needs no template match, for the whole video at once.

    Both walks are needed: this one, vectorised over the video, settles most frames before any
    image is decoded (and tells the decoder which images will be read); the per-frame walk
    (:meth:`_Judging._walk_support`), the reference reading of docs/method.md §3, judges the
    frames it leaves undecided. A property test checks that both give the same verdicts.

    Args:
        valid: the detections above the score threshold.
        codes: their :class:`Exclusion` codes.
        params: miner parameters (window, IoU threshold).
        supporting: the detections that may support a candidate (``valid`` when ``None``).
    """
    support_dets = valid if supporting is None else supporting
    n, total = valid.num_frames, len(valid)
    counts = np.diff(support_dets.frame_offsets)
    support = {d: np.zeros(total, np.int8) for d in (-1, 1)}
    offset = {d: np.zeros(total, np.int16) for d in (-1, 1)}
    undecided = np.zeros(total, np.bool_)
    frame_of = valid.frame
    pending = np.flatnonzero(codes == Exclusion.CANDIDATE)
    for d in (-1, 1):
        walking = pending
        for step in range(1, params.window + 1):
            if walking.size == 0:
                break
            u = frame_of[walking] + d * step
            inside = (u >= 0) & (u < n)
            nonempty = np.zeros(len(walking), np.bool_)
            nonempty[inside] = counts[u[inside]] > 0
            rows = walking[nonempty]
            if rows.size:
                overlap = (
                    _max_iou_with_frames(valid.xyxy, support_dets, rows, u[nonempty])
                    > params.iou_threshold
                )
                support[d][rows[overlap]] = Support.OVERLAP
                offset[d][rows] = d * step
                undecided[rows[~overlap]] = True
            walking = walking[~nonempty]
        support[d][walking] = Support.NONE
        # As in _Judging._walk_support, the other direction is walked only for boxes this one left
        # unsupported; undecided boxes are left to the template search.
        pending = pending[support[d][pending] == Support.NONE]
    needs = np.zeros(n, np.bool_)
    needs[frame_of[undecided]] = True
    # The frames whose grey images the template search may read: each undecided walk visits
    # non-empty neighbours from where it got stuck up to the first one overlapping the box
    # itself (that one settles it without pixels).
    read = needs.copy()
    stuck_before = undecided & (support[-1] == Support.NOT_SEARCHED)
    rows = np.flatnonzero(stuck_before)
    start = -offset[-1][rows].astype(np.int64)
    settled = _walk_reads(valid, support_dets, counts, rows, start, -1, params, read)
    # The other direction is walked when the first may end unsupported.
    unsettled, stuck_after = rows[~settled], np.flatnonzero(undecided & ~stuck_before)
    after_rows = np.concatenate([unsettled, stuck_after])
    after_start = np.concatenate(
        [np.ones(len(unsettled), np.int64), offset[1][stuck_after].astype(np.int64)]
    )
    _walk_reads(valid, support_dets, counts, after_rows, after_start, 1, params, read)
    return PixelFreeSupport(support[-1], support[1], offset[-1], offset[1], needs, read)


def _walk_reads(
    valid: VideoDetections,
    support: VideoDetections,
    counts: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
    start: npt.NDArray[np.int64],
    direction: int,
    params: MinerParams,
    read: npt.NDArray[np.bool_],
) -> npt.NDArray[np.bool_]:
    """Mark in ``read`` the non-empty neighbours a walk of ``rows`` may search, from step
    ``start`` on, until one overlapping the box itself; returns which walks end that way."""
    n, frame_of = valid.num_frames, valid.frame
    settled = np.zeros(len(rows), np.bool_)
    active = np.ones(len(rows), np.bool_)
    for step in range(1, params.window + 1):
        if not active.any():
            break
        at = np.flatnonzero(active & (start <= step))
        u = frame_of[rows[at]] + direction * step
        keep = (u >= 0) & (u < n)
        at, u = at[keep], u[keep]
        keep = counts[u] > 0
        at, u = at[keep], u[keep]
        if at.size == 0:
            continue
        own = _max_iou_with_frames(valid.xyxy, support, rows[at], u) > params.iou_threshold
        settled[at[own]] = True
        active[at[own]] = False
        read[u[~own]] = True
    return settled


def pixel_needs(
    valid: VideoDetections,
    support: PixelFreeSupport,
    plan: dict[int, list[GapFrame]],
    flagged: npt.NDArray[np.bool_] | None = None,
) -> PixelNeeds:
    """Which frames' images the miner will read: grey images of the frames whose candidates
    need template matching and of the neighbours their walks may search
    (:attr:`PixelFreeSupport.reads`), and at both ends and inside of every planned gap; colour
    images of every frame that may be written (a possible hard negative or hard positive;
    ``flagged``: valid boxes that are hard negatives whatever their support)."""
    gray = support.reads.copy()
    bgr = support.needs_pixels.copy()
    unsupported = (support.before == Support.NONE) & (support.after == Support.NONE)
    bgr[valid.frame[unsupported]] = True
    if flagged is not None:
        bgr[valid.frame[flagged]] = True
    for t, gaps in plan.items():
        gray[t] = bgr[t] = True
        for gap in gaps:
            gray[gap.link.a] = gray[gap.link.b] = True
    return PixelNeeds(gray=gray, bgr=bgr)


def iter_flickers(
    frames: Iterable[Frame] | Callable[[PixelNeeds], Iterable[Frame]],
    detections: VideoDetections,
    params: MinerParams,
    width: int,
    height: int,
    *,
    hard_positives: HardPositiveParams | None = None,
    threads: int = 2,
) -> Iterator[FrameVerdicts]:
    """Judge every valid detection of every frame that has a full window on both sides, and
    (with ``hard_positives``) find the frames where a persisting object was missed.

    One forward pass over ``frames``; only ``2 * max(window, max_gap) + 1`` frames are held.

    Args:
        frames: decoded frames in order, numbered from 0 (e.g. a
            :class:`~flickermine.video.VideoReader`), or a function that receives the
            :class:`~flickermine.decoding.PixelNeeds` of the run (which frames' images will be
            read) and returns them (e.g. with :func:`~flickermine.decoding.decode_in_process`).
        detections: the video's detections (all scores; filtering happens here).
        params: miner parameters.
        width, height: frame size in pixels.
        hard_positives: parameters of the hard-positive miner; ``None`` mines hard negatives only.
        threads: frames judged concurrently in worker threads; 0 judges them in the calling
            thread (results are identical for any value).

    Boxes reaching outside the image are clipped to it first.

    Yields:
        :class:`FrameVerdicts`, in frame order, for each examined frame holding at least one
        valid detection and for each frame holding a hard positive.
    """
    video = _plan_video(detections, params, width, height, hard_positives)
    if callable(frames):
        frames = frames(video.pixel_needs())
    yield from _judged_in_order(frames, video, threads)


@dataclass
class _VideoPlan:
    """What the whole video's detections decide before any image is read, and the judging of
    one frame from it."""

    params: MinerParams
    hard_positives: HardPositiveParams | None
    valid: VideoDetections  # the boxes judged (at or above the score threshold)
    support: VideoDetections  # the boxes that may support them (at or above the support score)
    det_index: npt.NDArray[np.int64]  # each valid box's position among its frame's detections
    codes: npt.NDArray[np.int8]  # Exclusion codes of the valid boxes
    sizes: SizeFit | None  # the size rule (None when it is off)
    gaps: dict[int, list[GapFrame]]  # planned hard-positive gaps, by frame
    pixel_free: PixelFreeSupport  # support decided without pixels
    pixel_free_hn: npt.NDArray[np.bool_]  # hard negatives known without pixels
    #: Appearance agreement across each gap (by ``id`` of its link), shared by its frames.
    alike: dict[int, float] = dataclasses.field(default_factory=dict)

    @property
    def lag(self) -> int:
        """Frames after ``t`` needed to judge frame ``t``."""
        gap = self.hard_positives.max_gap if self.hard_positives else 0
        return max(self.params.window, gap)

    def pixel_needs(self) -> PixelNeeds:
        flagged = self.sizes.outlier if self.sizes is not None else None
        return pixel_needs(self.valid, self.pixel_free, self.gaps, flagged)

    def job(self, buffer: deque[Frame], t: int) -> FrameVerdicts | _Judging | None:
        """The verdicts of frame ``t`` when they need no image search (or ``None`` when it
        has nothing to judge), else the work that finds them. ``buffer``: the decoded frames
        around ``t``."""
        offsets, w, n = self.valid.frame_offsets, self.params.window, self.valid.num_frames
        sl = slice(int(offsets[t]), int(offsets[t + 1]))
        judge_hn = sl.stop > sl.start and w <= t <= n - 1 - w and t + w <= buffer[-1].index
        gaps = self.gaps.get(t, [])
        if not judge_hn and not gaps:
            return None
        if judge_hn and not gaps and not self.pixel_free.needs_pixels[t]:
            frame = buffer[t - buffer[0].index]
            return _pixel_free_verdicts(frame, self, sl)
        if not judge_hn:
            sl = slice(sl.start, sl.start)
        return _Judging(self, tuple(buffer), t, sl, gaps)


def _plan_video(
    detections: VideoDetections,
    params: MinerParams,
    width: int,
    height: int,
    hard_positives: HardPositiveParams | None,
) -> _VideoPlan:
    clipped = dataclasses.replace(detections, xyxy=clip_xyxy(detections.xyxy, width, height))
    valid_mask = clipped.score >= params.score_threshold
    rows = np.flatnonzero(valid_mask)
    det_index = rows - clipped.frame_offsets[clipped.frame[rows]]
    valid = clipped.select(valid_mask)
    codes = exclusions(valid.xyxy, valid.score, params, width, height)
    support = (
        clipped.select(clipped.score >= params.support_threshold)
        if params.support_threshold < params.score_threshold
        else valid
    )
    sizes = _size_rule(valid, codes, support, params, width, height)
    plan = plan_gaps(valid, clipped, hard_positives, width, height) if hard_positives else {}
    if sizes is not None and sizes.active:  # a gap bridged by loose boxes is no object
        plan = {t: kept for t, gaps in plan.items()
                if (kept := [g for g in gaps if sizes.fits(g.box)])}  # fmt: skip
    pixel_free = support_without_pixels(valid, codes, params, support)
    if params.motion_support > 0:
        pixel_free = _with_motion_tests(valid, codes, pixel_free, sizes, params)
    pixel_free_hn = (pixel_free.before == Support.NONE) & (pixel_free.after == Support.NONE)
    if sizes is not None:
        pixel_free_hn |= sizes.outlier
    return _VideoPlan(params, hard_positives, valid, support, det_index, codes, sizes, plan,
                      pixel_free, pixel_free_hn)  # fmt: skip


def _with_motion_tests(
    valid: VideoDetections,
    codes: npt.NDArray[np.int8],
    pixel_free: PixelFreeSupport,
    sizes: SizeFit | None,
    params: MinerParams,
) -> PixelFreeSupport:
    """``pixel_free`` with the frames and images the motion test needs: every judged frame
    holding a candidate that may be left without support (no overlap found without pixels; not
    a size outlier, which is a hard negative whatever its support) is judged with pixels, and
    its grey image and those ``motion_step`` frames before and after it are read."""
    maybe = (codes == Exclusion.CANDIDATE) & (pixel_free.before != Support.OVERLAP)
    maybe &= pixel_free.after != Support.OVERLAP
    if sizes is not None:
        maybe &= ~sizes.outlier
    n, w, step = valid.num_frames, params.window, motion_step(params)
    frames = np.unique(valid.frame[maybe])
    frames = frames[(frames >= w) & (frames <= n - 1 - w)]
    needs, reads = pixel_free.needs_pixels.copy(), pixel_free.reads.copy()
    needs[frames] = True
    reads[frames] = reads[frames - step] = reads[frames + step] = True
    return dataclasses.replace(pixel_free, needs_pixels=needs, reads=reads)


#: Grey-level standard deviation a patch beside a box needs to tell how the scene moved.
_SCENE_TEXTURE = 2.0


def scene_shift(
    gray_t: npt.NDArray[np.uint8],
    box: npt.NDArray[np.float64],
    gray_u: npt.NDArray[np.uint8],
    min_score: float,
) -> npt.NDArray[np.float64]:
    """How the scene around ``box`` moved from ``gray_t`` to ``gray_u`` (``(dx, dy)`` pixels):
    the median shift of the patches of the box's size left of, right of, above and below it
    (inside the image, textured, and found again with correlation at least ``min_score``);
    ``(0, 0)``, a still camera, when none is."""
    height, width = gray_t.shape[:2]
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    shifts = []
    for dx, dy in ((-w, 0.0), (w, 0.0), (0.0, -h), (0.0, h)):
        side = box + np.array([dx, dy, dx, dy])
        if side[0] < 0 or side[1] < 0 or side[2] > width or side[3] > height:
            continue
        x1, y1, x2, y2 = np.round(side).astype(int)
        if gray_t[y1:y2, x1:x2].std() < _SCENE_TEXTURE:
            continue
        score, shift = core_shift(gray_t, side, gray_u, MOTION_MARGIN)
        if score >= min_score:
            shifts.append(shift)
    return np.median(shifts, axis=0) if shifts else np.zeros(2)


def motion_step(params: MinerParams) -> int:
    """Frames between a candidate and the pictures the motion test compares it with."""
    return min(MOTION_STEP, params.window)


def _judged_in_order(
    frames: Iterable[Frame], video: _VideoPlan, threads: int
) -> Iterator[FrameVerdicts]:
    """Judge each frame once the frames it needs have arrived. Frames needing template
    matches are judged in worker threads (template matching and decoding release the GIL);
    results are handed out in frame order, with a bounded number in flight."""
    lag, n = video.lag, video.valid.num_frames
    buffer: deque[Frame] = deque(maxlen=2 * lag + 1)
    in_flight: deque[Future[FrameVerdicts | None] | FrameVerdicts] = deque()

    def start(pool: ThreadPoolExecutor, t: int) -> None:
        job = video.job(buffer, t)
        result: Future[FrameVerdicts | None] | FrameVerdicts | None = None
        if isinstance(job, _Judging):
            result = pool.submit(job.run) if threads > 0 else job.run()
        else:
            result = job
        if result is not None:
            in_flight.append(result)

    def ready() -> bool:
        head = in_flight[0]
        return not isinstance(head, Future) or head.done()

    def pop() -> FrameVerdicts | None:
        head = in_flight.popleft()
        return head.result() if isinstance(head, Future) else head

    with ThreadPoolExecutor(max(1, threads), thread_name_prefix="flickermine-judge") as pool:
        for frame in frames:
            if frame.index >= n:
                break
            buffer.append(frame)
            if frame.index >= lag:
                start(pool, frame.index - lag)
            while len(in_flight) > 4 * max(1, threads) or (in_flight and ready()):
                if (result := pop()) is not None:
                    yield result
        if buffer:
            last = buffer[-1].index
            for t in range(max(0, last - lag + 1), last + 1):
                start(pool, t)
        while in_flight:
            if (result := pop()) is not None:
                yield result


def _size_rule(
    valid: VideoDetections,
    codes: npt.NDArray[np.int8],
    support: VideoDetections,
    params: MinerParams,
    width: int,
    height: int,
) -> SizeFit | None:
    """The size rule over the video (``None`` when it is off): fitted on every box that may
    support a candidate (at or above the support score) away from the image edges, applied to
    the valid boxes; only candidates can be outliers."""
    if params.size_outlier <= 0:
        return None
    near_edge = exclusions(support.xyxy, support.score, params, width, height) == Exclusion.BORDER
    fit = fit_sizes(support.xyxy, ~near_edge, params.size_outlier, params.size_fit_spread,
                    params.size_fit_min_boxes)  # fmt: skip
    ratio, outlier = fit.apply(valid.xyxy)
    outlier &= codes == Exclusion.CANDIDATE
    # A box too small for its place may be a smaller object of the kind (a child, a dog of a
    # small breed): it must be the odd one out among the object's boxes over time. A box too
    # large (an object with the background beside it, two objects in one) need not.
    rows = np.flatnonzero(outlier & (ratio < 1))
    if rows.size:
        _, support_odd = fit.apply(support.xyxy)
        keep = odd_in_time(valid.xyxy[rows], valid.frame[rows], support, support_odd,
                           params.window)  # fmt: skip
        outlier[rows[~keep]] = False
    return dataclasses.replace(fit, ratio=ratio, outlier=outlier)


def _pixel_free_verdicts(frame: Frame, video: _VideoPlan, sl: slice) -> FrameVerdicts:
    """Verdicts of a frame whose candidates were all decided without pixels."""
    support, sizes = video.pixel_free, video.sizes
    return FrameVerdicts(
        frame=frame,
        det_index=video.det_index[sl],
        xyxy=video.valid.xyxy[sl],
        score=video.valid.score[sl],
        exclusion=video.codes[sl],
        before=support.before[sl],
        after=support.after[sl],
        before_offset=support.before_offset[sl],
        after_offset=support.after_offset[sl],
        hard_negative=video.pixel_free_hn[sl],
        size_ratio=None if sizes is None else sizes.ratio[sl],
        size_outlier=None if sizes is None else sizes.outlier[sl],
    )


@dataclass(frozen=True)
class _Judging:
    """The judging of frame ``t`` that needs images: the support walks of its candidates
    (those ``sl`` selects; empty when only hard positives are sought) and its ``gaps``."""

    video: _VideoPlan
    window: tuple[Frame, ...]
    t: int
    sl: slice
    gaps: list[GapFrame]

    def frame(self, u: int) -> Frame:
        return self.window[u - self.window[0].index]

    def run(self) -> FrameVerdicts | None:
        video, sl, sizes = self.video, self.sl, self.video.sizes
        before, after, before_offset, after_offset = self._walk_support()
        hard_negative = (before == Support.NONE) & (after == Support.NONE)
        if video.params.motion_support > 0:
            tested = hard_negative if sizes is None else hard_negative & ~sizes.outlier[sl]
            for i in np.flatnonzero(tested):
                if self._moving(int(i)):
                    step = motion_step(video.params)
                    before[i], after[i] = Support.MOTION, Support.MOTION
                    before_offset[i], after_offset[i] = -step, step
                    hard_negative[i] = False
        if sizes is not None:
            hard_negative |= sizes.outlier[sl]
        found = self._hard_positives()
        if sl.stop == sl.start and not found:
            return None
        return FrameVerdicts(
            frame=self.frame(self.t),
            det_index=video.det_index[sl],
            xyxy=video.valid.xyxy[sl],
            score=video.valid.score[sl],
            exclusion=video.codes[sl],
            before=before,
            after=after,
            before_offset=before_offset,
            after_offset=after_offset,
            hard_negative=hard_negative,
            hard_positives=found,
            size_ratio=None if sizes is None else sizes.ratio[sl],
            size_outlier=None if sizes is None else sizes.outlier[sl],
        )

    def _walk_support(self) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int8],
                                     npt.NDArray[np.int16], npt.NDArray[np.int16]]:  # fmt: skip
        """Support codes and offsets before and after, for every box of the frame: the
        reference walk (docs/method.md §3), frame by frame out to the window."""
        video, t = self.video, self.t
        params, xyxy = video.params, video.valid.xyxy[self.sl]
        current = self.frame(t).gray
        k = len(xyxy)
        support = {-1: np.zeros(k, np.int8), 1: np.zeros(k, np.int8)}
        offset = {-1: np.zeros(k, np.int16), 1: np.zeros(k, np.int16)}
        pending = np.flatnonzero(video.codes[self.sl] == Exclusion.CANDIDATE)
        for direction in (-1, 1):
            todo = pending
            for step in range(1, params.window + 1):
                if todo.size == 0:
                    break
                u = t + direction * step
                neighbours = video.support.xyxy[video.support.frame_slice(u)]
                if neighbours.shape[0] == 0:
                    continue  # an empty neighbour neither supports nor refutes
                offset[direction][todo] = direction * step
                own = iou_matrix(xyxy[todo], neighbours).max(axis=1) > params.iou_threshold
                support[direction][todo[own]] = Support.OVERLAP
                still = []
                for i in todo[~own]:
                    gray_u = self.frame(u).gray
                    outcome = probe_neighbour(current, gray_u, xyxy[i], neighbours, params)
                    if outcome is None:
                        still.append(i)
                    else:
                        support[direction][i] = outcome
                todo = np.asarray(still, dtype=np.int64)
            support[direction][todo] = Support.NONE
            # The other direction only matters for boxes this one left unsupported.
            pending = pending[support[direction][pending] == Support.NONE]
        return support[-1], support[1], offset[-1], offset[1]

    def _moving(self, i: int) -> bool:
        """The motion test (``motion_support``) for the frame's box ``i``: its core is found
        (correlation at least ``similarity_threshold``) ``motion_step`` frames before and after,
        and on one side at least ``motion_support`` of its height per frame away both from
        where it was and from where the scene around it went (:func:`scene_shift`: a moving
        camera moves a false box on the background with the background; an object passing
        beside a false box on a still background moves the scene's estimate, not the box)."""
        params, t = self.video.params, self.t
        box = self.video.valid.xyxy[self.sl][i].astype(np.float64)
        step = motion_step(params)
        gray = self.frame(t).gray
        moved = []
        for u in (t - step, t + step):
            gray_u = self.frame(u).gray
            score, shift = core_shift(gray, box, gray_u, MOTION_MARGIN)
            if score < params.similarity_threshold:
                return False
            relative = shift - scene_shift(gray, box, gray_u, params.similarity_threshold)
            moved.append(min(float(np.hypot(*shift)), float(np.hypot(*relative))))
        return max(moved) >= params.motion_support * float(box[3] - box[1]) * step

    def _hard_positives(self) -> tuple[HardPositive, ...]:
        """The missed objects found in the frame's gaps (docs/method.md §4)."""
        found: list[HardPositive] = []
        hp_params, alike, sizes = self.video.hard_positives, self.video.alike, self.video.sizes
        for gap in self.gaps:
            assert hp_params is not None  # gaps are only planned with parameters
            gray_a, gray_b = self.frame(gap.link.a).gray, self.frame(gap.link.b).gray
            key = id(gap.link)
            if key not in alike:
                alike[key] = sides_alike(gray_a, gray_b, gap.link, hp_params)
            if alike[key] < hp_params.min_similarity:
                continue
            gray_t = self.frame(self.t).gray
            hp = refine_gap(gray_t, gray_a, gray_b, gap, hp_params)
            if hp is not None and sizes is not None and sizes.spread <= hp_params.scene_size:
                box = sizes.snap(hp.box)
                box[[0, 2]] = np.clip(box[[0, 2]], 0, gray_t.shape[1])
                hp = dataclasses.replace(hp, box=box)
            if hp is not None:
                found.append(hp)
        return tuple(found)
