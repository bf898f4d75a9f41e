"""The one top-k path: the pruned dense selection and the sparse candidate selection are exactly the
plain masked top-k."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.ranking.topk import _select, apply_mask, candidate_top_k, top_k


@pytest.mark.parametrize("n_items", [50, 20_000])
@pytest.mark.parametrize("allowed_share", [0.0, 0.001, 0.5, 1.0])
@pytest.mark.parametrize("k", [1, 10, 300])
def test_pruned_top_k_equals_the_full_partition(n_items, allowed_share, k):
    rng = np.random.default_rng(k + n_items)
    scores = rng.normal(size=(6, n_items)).astype(np.float32)
    allowed = rng.random((6, n_items)) < allowed_share
    got_items, got_scores = top_k(scores, k, allowed)
    ref_items, ref_scores = _select(apply_mask(scores, allowed), k)
    np.testing.assert_array_equal(got_scores, ref_scores)
    np.testing.assert_array_equal(got_items, ref_items)
    assert allowed[np.nonzero(got_items >= 0)[0], got_items[got_items >= 0]].all()


@pytest.mark.parametrize("k", [1, 5, 40])
@pytest.mark.parametrize("allowed_share", [0.05, 0.5, 1.0])
def test_candidate_top_k_equals_top_k_of_the_dense_rows(k, allowed_share):
    rng = np.random.default_rng(k)
    n_users, n_items = 8, 500
    base = -2.0 + rng.random(n_items).astype(np.float32)  # every base score below every candidate
    dense = np.tile(base, (n_users, 1))
    rows, cols, vals = [], [], []
    for u in range(n_users):
        cand = rng.choice(n_items, size=rng.integers(0, 30), replace=False)
        rows += [u] * len(cand)
        cols += cand.tolist()
        vals += rng.random(len(cand)).tolist()
    candidates = sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(n_users, n_items))
    dense[rows, cols] = vals
    for allowed in (
        None,
        rng.random(n_items) < allowed_share,
        rng.random((n_users, n_items)) < allowed_share,
    ):
        got = candidate_top_k(candidates, base, k, allowed)
        ref = top_k(dense, k, allowed)
        np.testing.assert_array_equal(got[0], ref[0])
        np.testing.assert_allclose(got[1], ref[1])


def test_k_must_be_positive():
    with pytest.raises(ValueError, match="k must be positive"):
        top_k(np.zeros((1, 3)), 0)
    with pytest.raises(ValueError, match="k must be positive"):
        candidate_top_k(sp.csr_matrix((1, 3), dtype=np.float32), np.zeros(3), 0)
