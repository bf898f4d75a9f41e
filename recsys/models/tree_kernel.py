"""The compiled traversal of exported gradient-boosted trees (numba).

Kept in its own module so that importing `recsys.models.gbdt` stays cheap: numba is imported, and
the kernel loaded from its on-disk cache, on the first prediction only.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def sum_of_trees(
    X: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    missing_left: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    is_leaf: np.ndarray,
    value: np.ndarray,
    roots: np.ndarray,
    baseline: float,
    out: np.ndarray,
) -> None:
    """out[i] = baseline + the leaf value of row i in every tree, added in tree order (the order
    scikit-learn adds them, so the sums are equal to the last bit). A row goes left when its value
    is <= the node's threshold, or is NaN at a node that sends missing values left."""
    for i in range(X.shape[0]):
        total = baseline
        for t in range(roots.shape[0]):
            node = roots[t]
            while not is_leaf[node]:
                x = X[i, feature[node]]
                if x <= threshold[node] or (np.isnan(x) and missing_left[node]):
                    node = left[node]
                else:
                    node = right[node]
            total += value[node]
        out[i] = total
