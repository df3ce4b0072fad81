"""The miner's speed-ups must not change any verdict: checked against the plain rules."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from flickermine.mine import MinerParams
from flickermine.mine.flicker import (
    Support,
    _overlap_possible,
    match_template,
    probe_neighbour,
)
from flickermine.structures import iou_matrix

from factories import texture


@settings(max_examples=200, deadline=None)
@given(
    w=st.integers(1, 40), h=st.integers(1, 40),
    rx=st.integers(0, 30), ry=st.integers(0, 30), rw=st.integers(0, 40), rh=st.integers(0, 40),
    n=st.lists(st.tuples(st.integers(-10, 100), st.integers(-10, 100), st.integers(1, 60),
                         st.integers(1, 60)), min_size=1, max_size=4),
    thr=st.floats(0.0, 0.9),
)  # fmt: skip
def test_overlap_bound_is_never_below_any_placement(w, h, rx, ry, rw, rh, n, thr):
    region = (rx, ry, rx + w + rw, ry + h + rh)
    neighbours = np.array([[x, y, x + a, y + b] for x, y, a, b in n], float)
    placements = np.array(
        [[x, y, x + w, y + h] for x in range(region[0], region[2] - w + 1)
         for y in range(region[1], region[3] - h + 1)], float,
    )  # fmt: skip
    reachable = iou_matrix(placements, neighbours).max() > thr
    if reachable:
        assert _overlap_possible((w, h), region, neighbours, thr)


def plain_probe(gray_t, gray_u, box, neighbours, params):
    """SPEC §3 step 3 without shortcuts."""
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
