"""Ranking metrics at k, vectorised over a (n_users, k) array of recommended item indices.

`recs[u]` is user u's list (item indices, -1 marks an empty slot) and `truth` is a CSR matrix whose
row u holds u's relevant items (any non-zero counts as relevant; duplicates are irrelevant). Every
function returns the mean over the rows; rows with no relevant item should be removed by the caller
(`evaluate` does) and count as 0 here.

Definitions (binary relevance, `T` = the user's relevant set, `hit_i` = item at rank i is in T):
- precision@k = hits / k                         (implicit divides by min(k, |T|) instead)
- recall@k    = hits / |T|
- ndcg@k      = sum hit_i / log2(i + 1) / IDCG, IDCG over min(k, |T|) hits   (same as implicit)
- map@k       = sum hit_i * precision@i / min(k, |T|)                       (same as implicit)
- mrr@k       = 1 / rank of the first hit (0 when none)
- hit_rate@k  = 1 if any hit
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def hit_matrix(recs: np.ndarray, truth: sp.csr_matrix, k: int | None = None) -> np.ndarray:
    """(n_users, k) bool: is the item at each rank relevant. -1 slots are never hits."""
    recs = np.atleast_2d(np.asarray(recs, dtype=np.int64))
    if k is not None:
        recs = recs[:, :k]
    truth = sp.csr_matrix(truth)
    if truth.shape[0] != recs.shape[0]:
        raise ValueError(f"recs has {recs.shape[0]} rows, truth {truth.shape[0]}")
    n, kk = recs.shape
    if n == 0 or kk == 0:
        return np.zeros((n, kk), dtype=bool)
    valid = recs >= 0
    rows = np.repeat(np.arange(n), kk)
    vals = np.asarray(truth[rows, np.where(valid, recs, 0).ravel()]).reshape(n, kk)
    return (vals != 0) & valid


def _n_relevant(truth: sp.csr_matrix) -> np.ndarray:
    t = sp.csr_matrix(truth, copy=True)
    t.eliminate_zeros()
    return np.diff(t.indptr).astype(np.float64)


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if len(values) else 0.0


def precision_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    return _mean(hit_matrix(recs, truth, k).sum(axis=1) / k)


def recall_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recs, truth, k).sum(axis=1)
    n_rel = _n_relevant(truth)
    return _mean(np.divide(hits, n_rel, out=np.zeros_like(n_rel), where=n_rel > 0))


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def ndcg_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recs, truth, k)
    disc = _discounts(k)[: hits.shape[1]]
    dcg = (hits * disc).sum(axis=1)
    ideal_cum = np.concatenate([[0.0], np.cumsum(_discounts(k))])
    idcg = ideal_cum[np.minimum(_n_relevant(truth), k).astype(int)]
    return _mean(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0))


def map_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recs, truth, k)
    prec_at_i = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    denom = np.minimum(_n_relevant(truth), k)
    ap = (prec_at_i * hits).sum(axis=1)
    return _mean(np.divide(ap, denom, out=np.zeros_like(ap), where=denom > 0))


def mrr_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    hits = hit_matrix(recs, truth, k)
    first = np.argmax(hits, axis=1)
    return _mean(np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0))


def hit_rate_at_k(recs: np.ndarray, truth: sp.csr_matrix, k: int) -> float:
    return _mean(hit_matrix(recs, truth, k).any(axis=1).astype(np.float64))


RANKING_METRICS = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "ndcg": ndcg_at_k,
    "map": map_at_k,
    "mrr": mrr_at_k,
    "hit_rate": hit_rate_at_k,
}
