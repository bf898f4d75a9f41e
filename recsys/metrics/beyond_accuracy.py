"""Beyond-accuracy metrics over a (n_users, k) array of recommended item indices (-1 = empty slot).

- catalog_coverage: share of the catalog (or of `n_items`) appearing in at least one list
- novelty: mean self-information -log2(p_i) of recommended items, p_i = share of training users
  who bought item i (items nobody bought count as p = 1 / n_users)
- intra_list_diversity: mean share of item pairs within a list that belong to different categories
- popularity_bias: mean training popularity p_i of recommended items (average recommendation
  popularity, ARP, as a share of users)
"""

from __future__ import annotations

import numpy as np


def _valid(recs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    recs = np.atleast_2d(np.asarray(recs, dtype=np.int64))
    return recs, recs >= 0


def catalog_coverage(recs: np.ndarray, n_items: int) -> float:
    recs, valid = _valid(recs)
    return float(len(np.unique(recs[valid])) / n_items) if n_items else 0.0


def novelty(recs: np.ndarray, item_users: np.ndarray, n_users: int) -> float:
    """`item_users[i]` = number of training users who bought item i."""
    recs, valid = _valid(recs)
    if not valid.any():
        return 0.0
    p = np.maximum(np.asarray(item_users, dtype=np.float64), 1.0) / max(n_users, 1)
    info = -np.log2(np.clip(p, 1e-12, 1.0))
    return float(info[recs[valid]].mean())


def popularity_bias(recs: np.ndarray, item_users: np.ndarray, n_users: int) -> float:
    recs, valid = _valid(recs)
    if not valid.any():
        return 0.0
    p = np.asarray(item_users, dtype=np.float64) / max(n_users, 1)
    return float(p[recs[valid]].mean())


def intra_list_diversity(recs: np.ndarray, item_category: np.ndarray) -> float:
    """`item_category[i]` is an integer category code (negative = unknown, never equal to anything)."""
    recs, valid = _valid(recs)
    n, k = recs.shape
    if n == 0 or k < 2:
        return 0.0
    cats = np.asarray(item_category, dtype=np.int64)[np.where(valid, recs, 0)]
    # unknown or empty slots get unique negative codes so they never count as "same category"
    filler = -(np.arange(n * k).reshape(n, k) + 1)
    cats = np.where(valid & (cats >= 0), cats, filler)
    same = cats[:, :, None] == cats[:, None, :]
    pair_ok = valid[:, :, None] & valid[:, None, :]
    iu = np.triu_indices(k, 1)
    pairs = pair_ok[:, iu[0], iu[1]]
    diff = (~same[:, iu[0], iu[1]]) & pairs
    n_pairs = pairs.sum(axis=1)
    rows = n_pairs > 0
    return float((diff.sum(axis=1)[rows] / n_pairs[rows]).mean()) if rows.any() else 0.0
