"""CO2e, preference and diversity re-ranking: masks first, k honoured, weight 0 is a no-op."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.diet.constraints import ConstraintEngine
from recsys.ranking.rerank import co2e_summary, list_co2e, neutral_co2e, rerank
from recsys.ranking.topk import top_k
from tests.diet.catalogs import catalogs, profiles, violates


def constructed():
    """10 items: relevance falls slowly, CO2e alternates high/low."""
    scores = np.linspace(1.0, 0.5, 10, dtype=np.float32)[None, :]
    co2e = np.array([99, 1.6, 24, 0.5, 12, 3.2, 60, 1.0, 9.9, 4.7])
    return scores, co2e


def test_co2_weight_zero_equals_no_reranking():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(4, 50)).astype(np.float32)
    allowed = rng.random(50) > 0.3
    co2e = rng.uniform(0, 50, 50)
    got = rerank(scores, 7, allowed, co2e=co2e, co2_weight=0.0)
    want = top_k(scores, 7, allowed)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_higher_co2_weight_never_increases_mean_co2e():
    scores, co2e = constructed()
    means = [list_co2e(rerank(scores, 4, co2e=co2e, co2_weight=w)[0], co2e) for w in [0, 0.25, 0.5, 1, 2, 5]]
    assert all(b <= a + 1e-9 for a, b in zip(means, means[1:], strict=False))
    assert means[-1] < means[0]
    assert set(rerank(scores, 4, co2e=co2e, co2_weight=5)[0][0].tolist()) == {1, 3, 5, 7}


def test_unknown_co2e_is_neutral_and_counted():
    co2e = np.array([1.0, np.nan, 3.0, 100.0])
    assert neutral_co2e(co2e).tolist() == [1.0, 3.0, 3.0, 100.0]
    summary = co2e_summary([0, 1, 2, -1], co2e)
    assert (summary.mean, summary.n_known, summary.n_unknown) == (2.0, 2, 1)
    assert np.isnan(list_co2e([1], co2e))


def test_diversity_interleaves_categories_like_greedy_mmr():
    scores = np.array([[1.0, 0.99, 0.98, 0.5, 0.4]], dtype=np.float32)
    cats = np.array(["a", "a", "a", "b", "c"])
    items, _ = rerank(scores, 3, categories=cats, diversity=3.0)
    assert items[0].tolist() == [0, 3, 4]
    items, _ = rerank(scores, 3, categories=cats, diversity=0.01)
    assert items[0].tolist() == [0, 1, 2]


def test_penalty_pushes_down():
    scores = np.array([[1.0, 0.9, 0.8]], dtype=np.float32)
    items, _ = rerank(scores, 2, penalty=np.array([5.0, 0.0, 0.0]))
    assert items[0].tolist() == [1, 2]


def test_bad_weights_and_k():
    scores = np.ones((1, 3), dtype=np.float32)
    with pytest.raises(ValueError):
        rerank(scores, 0)
    with pytest.raises(ValueError):
        rerank(scores, 2, co2e=np.ones(3), co2_weight=-1)
    with pytest.raises(ValueError, match="co2e"):
        rerank(scores, 2, co2_weight=1)


@settings(deadline=None, max_examples=60)
@given(
    products=catalogs(),
    profile=profiles,
    k=st.integers(1, 12),
    weight=st.floats(0, 5),
    diversity=st.floats(0, 2),
    seed=st.integers(0, 1000),
)
def test_rerank_never_admits_a_forbidden_item_and_honours_k(products, profile, k, weight, diversity, seed):
    engine = ConstraintEngine(products)
    allowed = engine.allowed(profile)
    scores = np.random.default_rng(seed).normal(size=(2, len(products))).astype(np.float32)
    items, _ = rerank(
        scores,
        k,
        allowed,
        co2e=products["co2e_per_kg"].to_numpy(),
        co2_weight=weight,
        penalty=engine.preference_penalty(profile),
        categories=products["category"].to_numpy(),
        diversity=diversity,
        pool=5,
    )
    assert items.shape == (2, k)
    for row in items:
        got = row[row >= 0]
        assert violates(products, got, profile) == []
        assert len(got) == min(k, int(allowed.sum()))
        assert len(set(got.tolist())) == len(got)
