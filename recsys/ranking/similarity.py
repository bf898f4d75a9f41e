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


def cooccurrence_sparse(seen_csc: sp.csc_matrix) -> sp.csr_matrix:
    """items x items cosine of co-occurrence as a SPARSE matrix (only pairs that share a row): the
    whole-catalog form of `cooccurrence_cosine`, for rows that are short (baskets, not customers)."""
    co = (seen_csc.T @ seen_csc).tocsr().astype(np.float32)
    buyers = np.maximum(np.diff(seen_csc.indptr), 1).astype(np.float32)
    inv = sp.diags(1.0 / np.sqrt(buyers))
    return (inv @ co @ inv).tocsr().astype(np.float32)


def unit_rows(factors: np.ndarray) -> np.ndarray:
    """Factor rows scaled to unit length (zero rows stay zero), float32: compute once per model."""
    f = np.asarray(factors, dtype=np.float32)
    norms = np.linalg.norm(f, axis=1, keepdims=True)
    return f / np.where(norms == 0, 1.0, norms)


def factor_cosine(unit: np.ndarray, items: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
    """(len(items), len(others)) cosine of item factors (`others` None: every item), given
    `unit_rows(factors)`."""
    a = unit[np.asarray(items, dtype=np.int64)]
    b = unit if others is None else unit[np.asarray(others, dtype=np.int64)]
    return a @ b.T
