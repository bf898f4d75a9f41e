"""The compiled top-n of dense score rows outside an exclusion mask (numba).

Candidate generation keeps each customer's best `n` collaborative scores among the products they
have not bought. `np.argpartition` does that by copying every row with the excluded columns set to
-inf and selecting in it; a bounded heap per row reads each score once and rejects almost all of
them with one comparison, which matters when a national program scores millions of rows.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _sift_down(values: np.ndarray, cols: np.ndarray, size: int) -> None:
    """Restore the min-heap order of values[:size] after its root was replaced."""
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            return
        child = left
        if left + 1 < size and values[left + 1] < values[left]:
            child = left + 1
        if values[child] >= values[i]:
            return
        values[i], values[child] = values[child], values[i]
        cols[i], cols[child] = cols[child], cols[i]
        i = child


@numba.njit(cache=True, nogil=True)
def top_outside(scores: np.ndarray, exclude: np.ndarray, n: int) -> np.ndarray:
    """row * n_cols + col of each row's n largest finite scores whose `exclude` is False (unordered
    within a row, rows in order; fewer where a row has fewer than n such columns)."""
    n_rows, n_cols = scores.shape
    n = min(n, n_cols)
    out = np.empty(n_rows * n, dtype=np.int64)
    values = np.empty(n, dtype=scores.dtype)
    cols = np.empty(n, dtype=np.int64)
    filled = 0
    for r in range(n_rows):
        size = 0
        for c in range(n_cols):
            if exclude[r, c]:
                continue
            v = scores[r, c]
            if not v > -np.inf:  # -inf and NaN are never candidates
                continue
            if size < n:
                # grow the heap: append, then sift the new value up
                i = size
                values[i], cols[i] = v, c
                size += 1
                while i > 0:
                    parent = (i - 1) // 2
                    if values[parent] <= values[i]:
                        break
                    values[i], values[parent] = values[parent], values[i]
                    cols[i], cols[parent] = cols[parent], cols[i]
                    i = parent
            elif v > values[0]:
                values[0], cols[0] = v, c
                _sift_down(values, cols, size)
        for j in range(size):
            out[filled + j] = r * n_cols + cols[j]
        filled += size
    return out[:filled]
