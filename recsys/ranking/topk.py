"""The one top-k path every model, re-ranker and serving path goes through.

Forbidden items get -inf BEFORE selection, so a mask can never be violated and k is honoured
whenever k allowed items exist; fewer allowed items means a shorter list, never a forbidden one.
Equal scores are ordered by item index, so every path that selects from the same scores gives the
same list.

Two exact shortcuts keep the cost per request small on large catalogs:
- dense rows: the k-th largest score of a strided sample is <= the row's k-th largest, so every item
  of the true top-k scores >= it; only the few survivors of that one vectorised comparison are
  partitioned (argpartition over the whole catalog was the largest cost per request);
- candidate models (`candidate_top_k`): a sparse row of candidate scores over one shared base order
  that ranks below every candidate; the candidates are sorted, and the base order fills the list
  only when too few allowed candidates exist.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

#: Dense rows longer than this are pruned by a strided sample before partitioning.
PRUNE_MIN_ITEMS = 4096
PRUNE_STRIDE = 16


def apply_mask(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Scores with disallowed items set to -inf. `allowed` is (n_items,) or (n_users, n_items) bool."""
    if allowed is None:
        return scores
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.shape[-1] != scores.shape[-1]:
        raise ValueError(f"mask covers {allowed.shape[-1]} items, scores cover {scores.shape[-1]}")
    return np.where(allowed, scores, -np.inf)


def _check_k(k: int) -> None:
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")


def _select_row(row: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k positions of one masked row, best first, ties broken by the lower position, so every
    path that selects from the same scores gives the same list; -inf entries are never selected."""
    n = len(row)
    kk = min(k, n)
    if kk == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    threshold = np.partition(row, n - kk)[n - kk] if kk < n else -np.inf
    # every tie at the k-th score is a candidate; with fewer than k allowed items, all of them
    cand = np.flatnonzero(row >= threshold) if np.isfinite(threshold) else np.flatnonzero(np.isfinite(row))
    order = np.lexsort((cand, -row[cand]))[:kk]
    return cand[order], row[cand[order]]


def _select(masked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of already masked rows (no pruning): (items, scores), -1 / -inf padded to k."""
    n_rows = masked.shape[0]
    items = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    for r in range(n_rows):
        idx, sc = _select_row(masked[r], k)
        items[r, : len(idx)], top[r, : len(idx)] = idx, sc
    return items, top


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a (n_users, n_items) score matrix.

    Returns (items, scores), both (n_users, k). Slots with no allowed item left hold item -1 and
    score -inf; callers drop them.
    """
    _check_k(k)
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    masked = apply_mask(scores, allowed)
    n_rows, n_items = masked.shape
    if n_items <= PRUNE_MIN_ITEMS or n_items // PRUNE_STRIDE <= k:
        return _select(masked, k)
    sample = masked[:, ::PRUNE_STRIDE]
    threshold = np.partition(sample, sample.shape[1] - k, axis=1)[:, sample.shape[1] - k]
    items = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    for r in range(n_rows):
        row = masked[r]
        if np.isfinite(threshold[r]):
            cand = np.flatnonzero(row >= threshold[r])
        else:  # fewer than k allowed items in the sample: every allowed item is a candidate
            cand = np.flatnonzero(np.isfinite(row))
        local, sc = _select_row(row[cand], k)
        items[r, : len(local)], top[r, : len(local)] = cand[local], sc
    return items, top


def candidate_top_k(
    candidates: sp.csr_matrix,
    base: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
    base_order: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exactly `top_k(dense, k, allowed)` where dense[r] = `base` with row r's candidates overlaid.

    Precondition (the model's contract): every candidate score is above every base score. Cost per
    row is the row's candidate count, plus a pass over the base order only when the allowed
    candidates cannot fill k. `base_order` is `argsort(-base, kind="stable")`, passed when cached.
    """
    _check_k(k)
    n_rows, n_items = candidates.shape
    if allowed is not None:
        allowed = np.asarray(allowed, dtype=bool)
        if allowed.shape[-1] != n_items:
            raise ValueError(f"mask covers {allowed.shape[-1]} items, scores cover {n_items}")
    items = np.full((n_rows, k), -1, dtype=np.int64)
    top = np.full((n_rows, k), -np.inf, dtype=np.float32)
    indptr, indices, data = candidates.indptr, candidates.indices, candidates.data
    for r in range(n_rows):
        idx = indices[indptr[r] : indptr[r + 1]]
        sc = data[indptr[r] : indptr[r + 1]]
        row_allowed = None if allowed is None else (allowed if allowed.ndim == 1 else allowed[r])
        if row_allowed is not None:
            keep = row_allowed[idx]
            idx, sc = idx[keep], sc[keep]
        order = np.lexsort((idx, -sc))[:k]  # ties by the lower item index, as in top_k
        n = len(order)
        items[r, :n], top[r, :n] = idx[order], sc[order]
        if n < k:
            if base_order is None:
                base_order = np.argsort(-base, kind="stable")
            fill = np.ones(n_items, dtype=bool) if row_allowed is None else row_allowed.copy()
            fill[indices[indptr[r] : indptr[r + 1]]] = False  # candidates were considered above
            rest = base_order[fill[base_order]][: k - n]
            rest = rest[np.isfinite(base[rest])]
            items[r, n : n + len(rest)] = rest
            top[r, n : n + len(rest)] = base[rest]
    return items, top
