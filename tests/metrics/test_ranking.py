"""Metrics on hand-computed examples, and NDCG/MAP cross-checked against implicit.evaluation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.metrics.beyond_accuracy import catalog_coverage, intra_list_diversity, novelty, popularity_bias
from recsys.metrics.ranking import (
    hit_rate_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    precision_at_k,
    recall_at_k,
)

# user 0: relevant {1, 4}; list [1, 2, 4] -> hits at ranks 1 and 3
# user 1: relevant {0};    list [3, 0, -1] -> hit at rank 2, one empty slot
RECS = np.array([[1, 2, 4], [3, 0, -1]])
TRUTH = sp.csr_matrix(np.array([[0, 1, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=np.float32))


def test_hand_computed():
    assert precision_at_k(RECS, TRUTH, 3) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert recall_at_k(RECS, TRUTH, 3) == pytest.approx((1.0 + 1.0) / 2)
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(3)) / 1.0
    assert ndcg_at_k(RECS, TRUTH, 3) == pytest.approx((ndcg0 + ndcg1) / 2)
    ap0 = (1 / 1 + 2 / 3) / 2
    ap1 = (1 / 2) / 1
    assert map_at_k(RECS, TRUTH, 3) == pytest.approx((ap0 + ap1) / 2)
    assert mrr_at_k(RECS, TRUTH, 3) == pytest.approx((1 + 1 / 2) / 2)
    assert hit_rate_at_k(RECS, TRUTH, 3) == 1.0
    assert ndcg_at_k(RECS, TRUTH, 1) == pytest.approx(0.5)  # only user 0 hits at rank 1


def test_beyond_accuracy_hand_computed():
    assert catalog_coverage(RECS, 10) == pytest.approx(5 / 10)
    item_users = np.array([8, 4, 2, 1, 0])
    assert popularity_bias(RECS, item_users, 8) == pytest.approx(np.mean([4, 2, 0, 1, 8]) / 8)
    assert novelty(RECS, item_users, 8) == pytest.approx(np.mean([1, 2, 3, 3, 0]))
    cats = np.array([0, 0, 1, 1, 0])
    # user 0: [1,2,4] -> cats 0,1,0 -> 2 of 3 pairs differ; user 1: [3,0] -> 1 of 1 pair differs
    assert intra_list_diversity(RECS, cats) == pytest.approx((2 / 3 + 1) / 2)


def test_ndcg_and_map_match_implicit():
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    n_users, n_items, k = 60, 40, 5
    dense = (rng.random((n_users, n_items)) < 0.15).astype(np.float32)
    test_mask = rng.random(dense.shape) < 0.3
    train = sp.csr_matrix(dense * ~test_mask)
    test = sp.csr_matrix(dense * test_mask)
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=4, iterations=3, random_state=0)
        model.fit(train, show_progress=False)
        ref = ranking_metrics_at_k(model, train, test, K=k, show_progress=False)
        # implicit filters training items (filter_already_liked_items=True) and skips users
        # without test items: do the same here, then compare metric definitions only.
        users = np.flatnonzero(np.diff(test.indptr) > 0)
        recs, _ = model.recommend(users, train[users], N=k, filter_already_liked_items=True)
    truth = test[users]
    assert ndcg_at_k(recs, truth, k) == pytest.approx(ref["ndcg"], rel=1e-6)
    assert map_at_k(recs, truth, k) == pytest.approx(ref["map"], rel=1e-6)
    # precision differs by definition: implicit divides total hits by sum(min(k, |T|)) (micro, not k)
    hits = np.array([[truth[i, j] > 0 for j in row] for i, row in enumerate(recs)]).sum()
    n_rel = np.minimum(np.diff(truth.indptr), k).sum()
    assert hits / n_rel == pytest.approx(ref["precision"], rel=1e-6)
