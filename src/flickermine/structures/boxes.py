"""Vectorised box maths. Boxes are float arrays of shape ``(N, 4)``; the format is in the name.

Coordinates are continuous pixels: a box ``xyxy = (x1, y1, x2, y2)`` has width ``x2 - x1``.

>>> import numpy as np
>>> a = np.array([[0, 0, 10, 10]], dtype=np.float32)
>>> b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float32)
>>> iou_matrix(a, b).round(3).tolist()
[[0.333, 0.0]]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.floating]


def box_area(xyxy: FloatArray) -> FloatArray:
    """Areas of boxes ``(N, 4)`` xyxy -> ``(N,)``; negative extents count as zero."""
    w = np.clip(xyxy[:, 2] - xyxy[:, 0], 0, None)
    h = np.clip(xyxy[:, 3] - xyxy[:, 1], 0, None)
    return w * h


def _iou(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> FloatArray:
    """IoU of boxes ``a`` and ``b`` (``(..., 4)``, broadcast against each other)."""
    ix1 = np.maximum(a[..., 0], b[..., 0])
    iy1 = np.maximum(a[..., 1], b[..., 1])
    ix2 = np.minimum(a[..., 2], b[..., 2])
    iy2 = np.minimum(a[..., 3], b[..., 3])
    inter = np.maximum(ix2 - ix1, 0.0) * np.maximum(iy2 - iy1, 0.0)
    area_a = np.maximum(a[..., 2] - a[..., 0], 0.0) * np.maximum(a[..., 3] - a[..., 1], 0.0)
    area_b = np.maximum(b[..., 2] - b[..., 0], 0.0) * np.maximum(b[..., 3] - b[..., 1], 0.0)
    union = area_a + area_b - inter
    positive = union > 0
    return np.where(positive, inter / np.where(positive, union, 1.0), 0.0)


def iou_matrix(a_xyxy: FloatArray, b_xyxy: FloatArray) -> FloatArray:
    """Intersection over union of every box of ``a`` ``(N, 4)`` with every box of ``b`` ``(M, 4)``.

    Returns:
        ``(N, M)`` float array in [0, 1]; pairs whose union is empty get 0.
    """
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    if len(a) * len(b) <= _SCALAR_PAIRS and np.isfinite(a).all() and np.isfinite(b).all():
        return np.array(_iou_lists(a.tolist(), b.tolist()), np.float64).reshape(len(a), len(b))
    return _iou(a[:, None, :], b[None, :, :])


#: Up to this many pairs, plain Python floats beat numpy's per-call overhead (the miner asks
#: for a handful of pairs thousands of times).
_SCALAR_PAIRS = 32


def _iou_lists(a: list[list[float]], b: list[list[float]]) -> list[list[float]]:
    """:func:`_iou` on Python floats: the same IEEE operations in the same order, so the same
    results to the last bit (for finite coordinates)."""
    areas_b = [max(x2 - x1, 0.0) * max(y2 - y1, 0.0) for x1, y1, x2, y2 in b]
    out = []
    for ax1, ay1, ax2, ay2 in a:
        area_a = max(ax2 - ax1, 0.0) * max(ay2 - ay1, 0.0)
        row = []
        for (bx1, by1, bx2, by2), area_b in zip(b, areas_b, strict=True):
            iw = max(min(ax2, bx2) - max(ax1, bx1), 0.0)
            inter = iw * max(min(ay2, by2) - max(ay1, by1), 0.0)
            union = area_a + area_b - inter
            row.append(inter / union if union > 0 else 0.0)
        out.append(row)
    return out


def iou_pairs(a_xyxy: FloatArray, b_xyxy: FloatArray) -> FloatArray:
    """Intersection over union of box ``i`` of ``a`` with box ``i`` of ``b`` (both ``(N, 4)``).

    Same arithmetic as :func:`iou_matrix`, so ``iou_pairs(a, b)[i] == iou_matrix(a, b)[i, i]``
    exactly.
    """
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    return _iou(a, b)


def grow_xyxy(xyxy: FloatArray, margin: float) -> FloatArray:
    """Grow boxes ``(N, 4)`` by ``margin`` pixels on every side (shrink when negative)."""
    out = np.array(xyxy, dtype=np.float64, copy=True).reshape(-1, 4)
    out[:, :2] -= margin
    out[:, 2:] += margin
    return out


def clip_xyxy(xyxy: FloatArray, width: int, height: int) -> FloatArray:
    """Clip boxes ``(N, 4)`` to an image of ``width`` x ``height`` pixels."""
    out = np.array(xyxy, copy=True).reshape(-1, 4)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, height)
    return out


def xyxy_to_xywh(xyxy: FloatArray) -> FloatArray:
    """``(N, 4)`` corners -> ``(N, 4)`` top-left corner plus size."""
    out = np.array(xyxy, copy=True).reshape(-1, 4)
    with np.errstate(over="ignore", invalid="ignore"):  # callers check for non-finite values
        out[:, 2:] -= out[:, :2]
    return out


def xywh_to_xyxy(xywh: FloatArray) -> FloatArray:
    """``(N, 4)`` top-left corner plus size -> ``(N, 4)`` corners."""
    out = np.array(xywh, copy=True).reshape(-1, 4)
    with np.errstate(over="ignore", invalid="ignore"):  # callers check for non-finite values
        out[:, 2:] += out[:, :2]
    return out
