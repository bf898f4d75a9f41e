"""Item-item similarity: the two measures every model's "similar items" and every reason use."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def cooccurrence_cosine(
    seen_csc: sp.csc_matrix, items: np.ndarray, others: np.ndarray | None = None
) -> np.ndarray:
    """(len(items), len(others)) cosine of purchase co-occurrence: buyers of both over the geometric
    mean of each item's buyers (`others` None: every item). `seen_csc` is users x items, binary."""
    items = np.asarray(items, dtype=np.int64)
    cols = seen_csc[:, items]
    other = seen_csc if others is None else seen_csc[:, np.asarray(others, dtype=np.int64)]
    co = (cols.T @ other).toarray().astype(np.float32)
    buyers = np.maximum(np.diff(seen_csc.indptr), 1).astype(np.float32)
    other_buyers = buyers if others is None else buyers[np.asarray(others, dtype=np.int64)]
    return co / np.sqrt(buyers[items])[:, None] / np.sqrt(other_buyers)[None, :]


def factor_cosine(factors: np.ndarray, items: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """(len(items), len(others)) cosine of item factor vectors (`others` None: every item)."""
    f = np.asarray(factors, dtype=np.float32)
    norms = np.linalg.norm(f, axis=1)
    norms[norms == 0] = 1.0
    a = f[np.asarray(items, dtype=np.int64)] / norms[np.asarray(items, dtype=np.int64), None]
    if others is None:
        return a @ (f / norms[:, None]).T
    others = np.asarray(others, dtype=np.int64)
    return a @ (f[others] / norms[others, None]).T
