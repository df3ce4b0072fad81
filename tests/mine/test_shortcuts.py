"""The miner's speed-ups must not change any verdict: checked against the plain rules."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flickermine.decoding import PixelNeeds
from flickermine.mine import HardPositiveParams, MinerParams, iter_flickers
from flickermine.mine.flicker import (
    Exclusion,
    Support,
    _spread_and_correlation,
    _tracked_box_overlaps_nothing,
    exclusions,
    match_template,
    overlap_rects,
    probe_neighbour,
)
from flickermine.structures import clip_xyxy, iou_matrix
from flickermine.video import Frame

from factories import Sprite, detections, render_frames, texture


def plain_probe(gray_t, gray_u, box, neighbours, params):
    """docs/method.md §3 step 3 without shortcuts."""
    best, tracked = match_template(gray_t, gray_u, box, params.search_margin)
    if best < params.similarity_threshold:
        return Support.APPEARANCE
    own = iou_matrix(np.asarray(box)[None], neighbours).max() > params.iou_threshold
    if own or iou_matrix(tracked[None], neighbours).max() > params.iou_threshold:
        return Support.OVERLAP
    return None


@settings(max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    shift=st.tuples(st.integers(-30, 30), st.integers(-30, 30)),
    noise=st.floats(0, 80),
    box=st.tuples(st.integers(0, 150), st.integers(0, 100), st.integers(8, 60),
                  st.integers(8, 60)),
    others=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 150), st.integers(5, 70),
                              st.integers(5, 70)), min_size=1, max_size=4),
    margin=st.integers(0, 60),
    iou_thr=st.floats(0.05, 0.6),
    sim_thr=st.floats(0.1, 0.95),
)  # fmt: skip
def test_probe_matches_the_plain_rules(seed, shift, noise, box, others, margin, iou_thr, sim_thr):
    rng = np.random.default_rng(seed)
    gray_t = texture(seed, 180, 240)[:, :, 0]
    moved = np.roll(gray_t, shift, axis=(0, 1)).astype(float) + rng.normal(0, noise, gray_t.shape)
    gray_u = np.clip(moved, 0, 255).astype(np.uint8)
    x, y, w, h = box
    xyxy = np.array([x, y, min(x + w, 240), min(y + h, 180)], float)
    neighbours = np.array([[a, b, a + c, b + d] for a, b, c, d in others], float)
    params = MinerParams(search_margin=margin, iou_threshold=iou_thr, similarity_threshold=sim_thr)
    expected = plain_probe(gray_t, gray_u, xyxy, neighbours, params)
    # probe_neighbour is called only after the own-box test failed, so compare only then.
    if iou_matrix(xyxy[None], neighbours).max() <= iou_thr:
        assert probe_neighbour(gray_t, gray_u, xyxy, neighbours, params) == expected


@settings(max_examples=200, deadline=None)
@given(
    w=st.integers(1, 40), h=st.integers(1, 40),
    rx=st.integers(0, 30), ry=st.integers(0, 30), rw=st.integers(0, 40), rh=st.integers(0, 40),
    n=st.lists(st.tuples(st.floats(-10, 100), st.floats(-10, 100), st.floats(0, 60),
                         st.floats(0, 60)), min_size=1, max_size=4),
    thr=st.floats(0.0, 0.9),
)  # fmt: skip
def test_overlap_rects_hold_every_placement_that_overlaps(w, h, rx, ry, rw, rh, n, thr):
    region = (rx, ry, rx + w + rw, ry + h + rh)
    neighbours = np.array([[x, y, x + a, y + b] for x, y, a, b in n], float)
    rects = overlap_rects((w, h), region, neighbours, thr)
    for x in range(region[0], region[2] - w + 1):
        for y in range(region[1], region[3] - h + 1):
            box = np.array([[x, y, x + w, y + h]], float)
            if iou_matrix(box, neighbours).max() > thr:
                assert any(x0 <= x <= x1 and y0 <= y <= y1 for x0, y0, x1, y1 in rects)


def test_bounded_search_decides_only_when_the_best_match_is_clear_of_neighbours():
    # A static textured scene: the patch matches itself perfectly at its own position.
    gray = texture(3, 240, 320)[:, :, 0]
    box = np.array([140.0, 90.0, 180.0, 140.0])
    x1, y1, x2, y2 = (int(v) for v in box)
    patch = gray[y1:y2, x1:x2]
    region = (40, 0, 280, 240)
    own = 1.0
    full = (region[2] - region[0]) * (region[3] - region[1])
    # A neighbour box beside the patch, overlapping less than the threshold where it is:
    # placements near it do not match the patch, so the best match is clear of it.
    aside = np.array([[200.0, 90.0, 240.0, 140.0]])
    rects = overlap_rects((40, 50), region, aside, 0.2)
    assert rects
    assert _tracked_box_overlaps_nothing(patch, gray, rects, full, own, aside, 0.2)
    # A neighbour box over the patch's own position: the best match overlaps it.
    over = np.array([[150.0, 95.0, 190.0, 145.0]])
    rects = overlap_rects((40, 50), region, over, 0.2)
    assert not _tracked_box_overlaps_nothing(patch, gray, rects, full, own, over, 0.2)


def plain_verdicts(grays, dets, params, width, height):
    """docs/method.md §3 read literally: every non-empty neighbour gets a full template search.

    Returns, per ``(frame, valid box)``: not a candidate (``None``), or where the walk stopped
    in each direction (signed frame offset, ``None`` when unsupported, ``"-"`` when the other
    direction already supported it).
    """
    clipped = clip_xyxy(dets.xyxy, width, height)
    keep = [dets.score[dets.frame_slice(t)] >= params.score_threshold for t in range(len(grays))]
    valid = [clipped[dets.frame_slice(t)][k] for t, k in enumerate(keep)]
    # Support: boxes at or above the support threshold (hysteresis), the valid ones otherwise.
    low = [dets.score[dets.frame_slice(t)] >= params.support_threshold for t in range(len(grays))]
    support = [clipped[dets.frame_slice(t)][k] for t, k in enumerate(low)]
    scores = [dets.score[dets.frame_slice(t)][k] for t, k in enumerate(keep)]
    w = params.window
    out = {}
    for t in range(w, dets.num_frames - w):
        codes = exclusions(valid[t], scores[t], params, width, height)
        for i, box in enumerate(valid[t]):
            if codes[i] != Exclusion.CANDIDATE:
                out[(t, i)] = None
                continue
            stops: list = []
            for direction in (-1, 1):
                if stops and stops[0] is not None:
                    stops.append("-")
                    break
                stop = None
                for step in range(1, w + 1):
                    u = t + direction * step
                    if len(support[u]) and plain_probe(grays[t], grays[u], box, support[u], params):
                        stop = direction * step
                        break
                stops.append(stop)
            out[(t, i)] = tuple(stops)
    return out


def _stop(kind: int, offset: int):
    return {Support.NOT_SEARCHED: "-", Support.NONE: None}.get(Support(kind), offset)


def random_scene(seed: int, n: int = 30, width: int = 320, height: int = 240):
    """Moving textured objects (sometimes missed, jittered), false boxes, noise, a cut."""
    rng = np.random.default_rng(seed)
    sprites = []
    for k in range(int(rng.integers(1, 4))):
        x0, y0 = rng.uniform(40, width - 100), rng.uniform(40, height - 110)
        vx, vy = rng.uniform(-4, 4, 2)
        sprites.append(Sprite(texture(seed * 10 + k, 64, 48), {
            t: (int(np.clip(x0 + vx * t, 0, width - 48)), int(np.clip(y0 + vy * t, 0, height - 64)))
            for t in range(n)
        }))  # fmt: skip
    cut = int(rng.integers(8, n - 8)) if rng.random() < 0.3 else None
    frames = render_frames(n, width, height, sprites, background_seed=seed, cut_at=cut)
    noise = rng.uniform(0, 25)
    grays = [
        np.clip(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) + rng.normal(0, noise, f.shape[:2]), 0, 255)
        .astype(np.uint8)
        for f in frames
    ]  # fmt: skip
    rows = []
    for t in range(n):
        for s in sprites:
            if rng.random() < 0.2:
                continue  # missed
            x1, y1, x2, y2 = np.array(s.box(t)) + rng.normal(0, 3 if rng.random() < 0.8 else 12, 4)
            rows.append((t, x1, y1, max(x2, x1 + 10), max(y2, y1 + 10), rng.uniform(0.75, 0.99)))
        for _ in range(int(rng.poisson(1.0))):
            x, y = rng.uniform(0, width - 50), rng.uniform(0, height - 60)
            rows.append((t, x, y, x + rng.uniform(30, 70), y + rng.uniform(30, 80),
                         rng.uniform(0.75, 0.97)))  # fmt: skip
    return grays, detections(rows, n)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    threads=st.sampled_from([0, 2]),
    sparse=st.booleans(),
    hard_positives=st.booleans(),
    hysteresis=st.booleans(),
)
def test_miner_agrees_with_a_plain_reading_of_the_rules(
    seed, threads, sparse, hard_positives, hysteresis
):
    grays, dets = random_scene(seed)
    height, width = grays[0].shape
    params = MinerParams(
        border_margin=10, search_margin=40, support_score=0.76 if hysteresis else None
    )
    expected = plain_verdicts(grays, dets, params, width, height)

    def frames(needs: PixelNeeds):
        # As the child-process decoder hands them over: images only where the miner said it
        # would read them; reading any other raises.
        for t, g in enumerate(grays):
            if not sparse or needs.gray[t] or needs.bgr[t]:
                yield Frame(t, bgr=np.dstack([g, g, g]), gray=g)
            else:
                yield Frame(t)

    hp = HardPositiveParams() if hard_positives else None
    got = {}
    for fv in iter_flickers(frames, dets, params, width, height, threads=threads,
                            hard_positives=hp):  # fmt: skip
        for i in range(len(fv.score)):
            if fv.exclusion[i] != Exclusion.CANDIDATE:
                got[(fv.index, i)] = None
                continue
            before = _stop(fv.before[i], int(fv.before_offset[i]))
            after = _stop(fv.after[i], int(fv.after_offset[i]))
            got[(fv.index, i)] = (before, after)
            assert fv.hard_negative[i] == (before is None and after is None)
    assert got == expected


def _exact_spread_and_correlation(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    # The same formula with every sum a Python integer.
    x = [int(v) for v in a.reshape(-1)]
    y = [int(v) for v in b.reshape(-1)]
    n = len(x)
    sa, sb = sum(x), sum(y)
    var_a = float(n * sum(v * v for v in x) - sa * sa) / n / n
    var_b = float(n * sum(v * v for v in y) - sb * sb) / n / n
    if var_a <= 0 or var_b <= 0:
        return math.sqrt(max(var_a, 0.0)), 0.0
    cov = float(n * sum(u * v for u, v in zip(x, y, strict=True)) - sa * sb) / n / n
    return math.sqrt(var_a), cov / math.sqrt(var_a * var_b)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.integers(1, 300), w=st.integers(1, 300),
       dy=st.integers(0, 20), dx=st.integers(0, 20), bright=st.booleans())  # fmt: skip
def test_same_position_sums_are_exact(seed, h, w, dy, dx, bright):
    # Views into a larger image (rows not contiguous), bright ones making the largest sums:
    # the statistics equal the exact integer formula's, to the last bit.
    rng = np.random.default_rng(seed)
    image = rng.integers(200 if bright else 0, 256, (h + 20, w + 20), np.uint8)
    patch, other = image[:h, :w], image[dy : dy + h, dx : dx + w]
    assert _spread_and_correlation(patch, other) == _exact_spread_and_correlation(patch, other)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), h=st.integers(2, 60), w=st.integers(2, 60),
       flat=st.booleans())  # fmt: skip
def test_same_position_correlation_is_opencvs_up_to_rounding(seed, h, w, flat):
    rng = np.random.default_rng(seed)
    patch = rng.integers(0, 256, (h, w), np.uint8)
    other = np.full((h, w), 7, np.uint8) if flat else rng.integers(0, 256, (h, w), np.uint8)
    spread, same = _spread_and_correlation(patch, other)
    assert spread == pytest.approx(float(patch.std()), rel=1e-9, abs=1e-9)
    if flat:
        assert same == 0.0
    else:
        expected = float(cv2.matchTemplate(other, patch, cv2.TM_CCOEFF_NORMED)[0, 0])
        assert same == pytest.approx(expected, abs=1e-4)
