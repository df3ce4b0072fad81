"""Detector plugins for the tests (``--backend detect.plugin_examples:...``)."""

from __future__ import annotations

import numpy as np


def bright_squares(frames):
    """Boxes around pixels brighter than 200 (one box per frame, score 0.9)."""
    out = []
    for f in frames:
        ys, xs = np.nonzero(f.max(axis=2) > 200)
        if len(xs):
            out.append((np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]]), [0.9]))
        else:
            out.append((np.zeros((0, 4)), np.zeros(0)))
    return out


bright_squares.category = "square"


def wrong_shapes(frames):
    return [(np.zeros((2, 3)), np.zeros(2)) for _ in frames]
