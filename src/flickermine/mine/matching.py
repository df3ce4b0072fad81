"""Patch similarity shared by the miners."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt


def ncc(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> float:
    """Normalised cross-correlation of two same-size patches (``TM_CCOEFF_NORMED`` at one
    position); 0 when either patch is flat."""
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    a64 -= a64.mean()
    b64 -= b64.mean()
    denom = math.sqrt(float((a64 * a64).sum()) * float((b64 * b64).sum()))
    return float((a64 * b64).sum()) / denom if denom > 0 else 0.0
