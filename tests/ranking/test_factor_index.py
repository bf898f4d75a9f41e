"""Bounded factor scoring is exact: the same top-k as scoring every allowed item."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.ranking.factor_index import FactorIndex
from recsys.ranking.topk import top_k


@pytest.mark.parametrize("k", [1, 5, 40, 700])
@pytest.mark.parametrize("allowed_share", [0.0, 0.01, 0.6, 1.0])
def test_factor_index_top_k_is_exact(k, allowed_share):
    rng = np.random.default_rng(k)
    # norms spread over orders of magnitude, like ALS items (rare items have small factors)
    items = rng.normal(size=(20_000, 16)).astype(np.float32) * rng.lognormal(-2, 1, size=(20_000, 1))
    users = rng.normal(size=(7, 16)).astype(np.float32)
    allowed = rng.random(len(items)) < allowed_share
    index = FactorIndex.build(items, allowed)
    got_items, got_scores = index.top_k(users, k)
    ref_items, ref_scores = top_k(users @ items.T, k, allowed)
    assert got_items.shape == ref_items.shape == (7, k)
    np.testing.assert_allclose(got_scores, ref_scores, rtol=1e-5, atol=1e-6)
    assert ((got_items >= 0) == (ref_items >= 0)).all()  # same padding when few items are allowed
    assert allowed[got_items[got_items >= 0]].all()  # never a forbidden item
    real = got_items >= 0
    exact = (users @ items.T)[np.nonzero(real)[0], got_items[real]]
    np.testing.assert_allclose(got_scores[real], exact, rtol=1e-5, atol=1e-6)
