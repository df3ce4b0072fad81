from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flickermine.structures import (
    clip_xyxy,
    grow_xyxy,
    iou_matrix,
    iou_pairs,
    xywh_to_xyxy,
    xyxy_to_xywh,
)

coord = st.floats(-1000, 1000, allow_nan=False, width=32)


def boxes(n: int):
    return arrays(np.float64, (n, 4), elements=coord).map(
        lambda a: np.concatenate(
            [np.minimum(a[:, :2], a[:, 2:]), np.maximum(a[:, :2], a[:, 2:])], 1
        )
    )


@given(boxes(5), boxes(3))
def test_iou_is_symmetric_and_bounded(a, b):
    m = iou_matrix(a, b)
    assert m.shape == (5, 3)
    assert np.all((m >= 0) & (m <= 1 + 1e-9))
    np.testing.assert_allclose(m, iou_matrix(b, a).T)


@given(boxes(4))
def test_iou_of_a_box_with_itself_is_one_unless_empty(a):
    diag = np.diag(iou_matrix(a, a))
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    np.testing.assert_allclose(diag[area > 0], 1.0)
    assert np.all(diag[area == 0] == 0)


@given(boxes(5), boxes(5))
def test_paired_iou_is_bit_identical_to_the_matrix_diagonal(a, b):
    # The miner decides some supports with pairs and others with matrices: same bits, same verdict.
    assert np.array_equal(iou_pairs(a, b), np.diag(iou_matrix(a, b)))


def test_iou_known_values_and_empty_inputs():
    a = np.array([[0, 0, 10, 10]], float)
    assert iou_matrix(a, np.array([[0, 0, 10, 5]], float))[0, 0] == 0.5
    assert iou_matrix(a, np.zeros((0, 4))).shape == (1, 0)


@given(boxes(6), st.integers(0, 50))
def test_grow_then_clip_stays_in_image(a, margin):
    out = clip_xyxy(grow_xyxy(a, margin), 640, 480)
    assert np.all(out[:, [0, 2]] >= 0) and np.all(out[:, [0, 2]] <= 640)
    assert np.all(out[:, [1, 3]] >= 0) and np.all(out[:, [1, 3]] <= 480)


@given(boxes(6))
def test_xywh_round_trip(a):
    np.testing.assert_allclose(xywh_to_xyxy(xyxy_to_xywh(a)), a, atol=1e-9)


@given(st.integers(0, 6).flatmap(boxes), st.integers(0, 5).flatmap(boxes))
def test_few_pairs_computed_in_python_agree_to_the_last_bit(a, b):
    from flickermine.structures.boxes import _iou

    # Any box, ordered or not: the scalar path must repeat numpy's arithmetic exactly.
    a, b = np.round(a) if len(a) % 2 else a, b[:, [2, 3, 0, 1]] if len(b) % 2 else b
    assert len(a) * len(b) <= 32  # the scalar path
    expected = _iou(a[:, None, :], b[None, :, :])
    assert np.array_equal(iou_matrix(a, b), expected.reshape(len(a), len(b)))
