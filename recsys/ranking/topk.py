"""The one top-k path every model, re-ranker and serving path goes through.

Forbidden items get -inf BEFORE selection, so a mask can never be violated and k is honoured
whenever k allowed items exist; fewer allowed items means a shorter list, never a forbidden one.

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


def _select(masked: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of already masked rows (no pruning): (items, scores), -1 / -inf padded to k."""
    n_items = masked.shape[1]
    kk = min(k, n_items)
    if kk < n_items:
        part = np.argpartition(-masked, kk - 1, axis=1)[:, :kk]
    else:
        part = np.tile(np.arange(n_items), (masked.shape[0], 1))
    part_scores = np.take_along_axis(masked, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    items = np.take_along_axis(part, order, axis=1)
    top_scores = np.take_along_axis(part_scores, order, axis=1)
    items = np.where(np.isfinite(top_scores), items, -1)
    if kk < k:  # pad so the shape is always (n_users, k)
        pad = k - kk
        items = np.pad(items, ((0, 0), (0, pad)), constant_values=-1)
        top_scores = np.pad(top_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return items, top_scores


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
        if not len(cand):
            continue
        local, sc = _select(row[cand][None, :], k)
        ok = local[0] >= 0
        items[r, : ok.sum()] = cand[local[0][ok]]
        top[r, : ok.sum()] = sc[0][ok]
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
        order = np.argsort(-sc, kind="stable")[:k]
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
