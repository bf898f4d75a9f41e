"""The one top-k path every model and re-ranker goes through.

Forbidden items get -inf BEFORE selection, so a mask can never be violated and k is honoured
whenever k allowed items exist; fewer allowed items means a shorter list, never a forbidden one.
"""

from __future__ import annotations

import numpy as np


def apply_mask(scores: np.ndarray, allowed: np.ndarray | None) -> np.ndarray:
    """Scores with disallowed items set to -inf. `allowed` is (n_items,) or (n_users, n_items) bool."""
    if allowed is None:
        return scores
    allowed = np.asarray(allowed, dtype=bool)
    if allowed.shape[-1] != scores.shape[-1]:
        raise ValueError(f"mask covers {allowed.shape[-1]} items, scores cover {scores.shape[-1]}")
    return np.where(allowed, scores, -np.inf)


def top_k(scores: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise top-k of a (n_users, n_items) score matrix.

    Returns (items, scores), both (n_users, k). Slots with no allowed item left hold item -1 and
    score -inf; callers drop them.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    masked = apply_mask(scores, allowed)
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
