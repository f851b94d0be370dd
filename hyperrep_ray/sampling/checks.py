"""Argument checks and the output contract shared by every sampler.

Every sampler validates its inputs the same way (and fails with a message that names the problem)
and returns the same kind of array: contiguous float32 in the encoder's tanh range [-1, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["check_anchors", "check_n", "check_bandwidth", "finish"]


def check_anchors(anchors: Any, min_rows: int = 1) -> np.ndarray:
    """Anchors as a finite float64 [M, D] array; fail early with a message that names the problem."""
    arr = np.asarray(anchors, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"anchors must be a 2-d array [M, D], got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise ValueError(f"anchors need at least {min_rows} row(s) and 1 column, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("anchors contain NaN or infinite values")
    return arr


def check_n(n: int) -> int:
    """``n`` as a non-negative int (a float such as 5.0 is accepted, 5.5 is not)."""
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    return int(n)


def check_bandwidth(bandwidth: float) -> float:
    if not (np.isfinite(bandwidth) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    return float(bandwidth)


def finish(z: np.ndarray) -> np.ndarray:
    """Clip to the tanh range the decoder was trained on and return contiguous float32."""
    return np.ascontiguousarray(np.clip(z, -1.0, 1.0), dtype=np.float32)
