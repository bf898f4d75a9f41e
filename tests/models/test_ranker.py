"""Grocery ranker specifics: precomputed candidate scores, stacked label windows, calibrated
negative subsampling, the on-sale universe, promotion calendar, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.models import GroceryRanker, NotFittedError
from recsys.models.base import Recommender
from recsys.models.ranker import FEATURES, PROMO_FEATURES
from recsys.models.topn_kernel import top_outside
from tests.models.conftest import block_rows, make_dataset

FAST = {"als_factors": 8, "knn_neighbours": 10, "n_discovery": 5, "n_popular": 3, "max_iter": 10}


@pytest.fixture(scope="module")
def history_gaps() -> Dataset:
    """block_dataset plus a customer with no purchases (u40) and a product only u0 bought, on day 1
    (i12: off sale for a ranker that looks back fewer than ~119 days)."""
    return make_dataset(block_rows() + [("u0", "i12", 1.0)], 13, n_users=41)


@pytest.fixture(scope="module")
def ranker(history_gaps) -> GroceryRanker:
    return GroceryRanker(label_windows=2, window_stride_days=7.0, recent_days=60.0, **FAST).fit(history_gaps)


def _same_csr(a: sp.csr_matrix, b: sp.csr_matrix) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a.indptr, b.indptr)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.data, b.data)


def test_served_scores_are_the_precomputed_candidates(ranker, history_gaps, tmp_path):
    data = history_gaps
    users = np.arange(data.n_users)
    cand = ranker.candidate_scores(users)
    # what is served was computed at the end of fit from the sub-models and trees
    with_history = users[:-1]
    _same_csr(ranker.candidate_scores(with_history), ranker.compute_candidate_scores(with_history))
    # every product a customer bought while it is on sale is a candidate; i12 is off sale
    u0, u40 = data.users.to_internal(["u0", "u40"])
    i12 = data.items.to_internal(["i12"])[0]
    seen = data.user_item_matrix("binary").tolil()
    for u in with_history:
        bought = set(seen.rows[u]) - {i12}
        assert bought <= set(cand[u].indices), u
    assert i12 in seen.rows[u0] and i12 not in set(cand.indices)
    # unknown and history-less customers: empty rows
    assert ranker.candidate_scores(np.array([-1, u40, u0])).getnnz(axis=1).tolist() == [0, 0, cand[u0].nnz]
    # score = base broadcast, candidates overlaid; every candidate above every base score
    base = ranker.base_scores()
    assert base.shape == (data.n_items,) and base.dtype == np.float32
    assert base.max() < -1.0 < cand.data.min()
    expected = np.tile(base, (len(with_history), 1))
    block = cand[with_history].toarray()
    explicit = cand[with_history].astype(bool).toarray()
    expected[explicit] = block[explicit]
    np.testing.assert_array_equal(ranker.score(with_history), expected)
    np.testing.assert_array_equal(ranker.score([u40, -1]), np.tile(ranker.fallback_scores(), (2, 1)))
    # save/load keeps them bit for bit; the loaded model has no sub-models to recompute them
    loaded = Recommender.load(ranker.save(tmp_path / "ranker"))
    _same_csr(loaded.candidate_scores(users), cand)
    np.testing.assert_array_equal(loaded.base_scores(), base)
    np.testing.assert_array_equal(loaded.score(users), ranker.score(users))
    with pytest.raises(NotFittedError):
        loaded.compute_candidate_scores(with_history)


def test_stacked_windows_add_training_rows(block_dataset):
    two = GroceryRanker(label_windows=2, window_stride_days=7.0, **FAST).fit(block_dataset)
    one = GroceryRanker(label_windows=1, window_stride_days=7.0, **FAST).fit(block_dataset)
    assert two.train_rows_[0] > one.train_rows_[0]
    for trees in two.trees_.values():
        if trees is not None:
            assert [FEATURES[j] for j in trees["columns"]] == list(FEATURES)


def test_subsampled_negatives_keep_probabilities_calibrated():
    # uninformative features: the trees can only learn the base rate; trained on all positives and
    # a quarter of the negatives, the shifted baseline must give back the true rate (10%)
    model = GroceryRanker(negative_rate=0.25, max_iter=5, min_samples_leaf=20)
    model.promo_ = np.array([False])
    rng = np.random.default_rng(0)
    y = np.zeros(40_000, dtype=bool)
    y[:4_000] = True
    keep = y | (rng.random(len(y)) < 0.25)
    X = np.zeros((int(keep.sum()), len(FEATURES)))
    seen = rng.random(len(X)) < 0.5
    model._fit_trees(X, y[keep], seen)
    p = model.stage_two_proba(X[:10], seen[:10])
    np.testing.assert_allclose(p, 0.1, atol=0.01)
    with pytest.raises(ValueError, match="negative_rate"):
        GroceryRanker(negative_rate=0.0, **FAST).fit(make_dataset(block_rows(), 12))
    for bad in ({"score_workers": -1}, {"max_fit_customers": 0}, {"score_block_customers": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            GroceryRanker(**bad, **FAST).fit(make_dataset(block_rows(), 12))


def _with_promotions(dataset, promotions: pd.DataFrame):
    """block_dataset with a store per customer (even -> s1, odd -> s2) and a promotion calendar."""
    inter = dataset.interactions.assign(
        store_id=np.where(dataset.interactions["user_idx"] % 2 == 0, "s1", "s2")
    )
    tables = {
        "customers": dataset.users_table,
        "products": dataset.items_table,
        "interactions": inter.assign(
            customer_id=dataset.users.to_external(inter["user_idx"]),
            product_id=dataset.items.to_external(inter["item_idx"]),
        ).drop(columns=["user_idx", "item_idx"]),
        "promotions": promotions,
    }
    return Dataset.from_tables(tables)


def test_promotion_features_count_weeks_at_the_main_store(block_dataset, tmp_path):
    end = block_dataset.interactions["timestamp"].max()
    week = pd.Timedelta(days=7)
    promotions = pd.DataFrame(
        {
            "product_id": ["i3", "i3", "i3", "i4", "i7"],
            "store_id": ["s1", "s1", "s2", "s1", "s2"],
            # i3: mailer at s1 in two weeks of the horizon, at s2 only after it; i4: display at s1
            # the week before the data ends; i7: mailer + display at s2 in the horizon
            "week_start": [end + week, end + 2 * week, end + 5 * week, end - week, end + week],
            "display": [False, False, False, True, True],
            "mailer": [True, True, True, False, True],
        }
    )
    data = _with_promotions(block_dataset, promotions)
    model = GroceryRanker(label_windows=1, **FAST).fit(data)
    assert model.feature_names == FEATURES + PROMO_FEATURES
    u0, u1 = data.users.to_internal(["u0", "u1"])  # u0 shops at s1, u1 at s2
    i3, i4, i7 = data.items.to_internal(["i3", "i4", "i7"])
    cols = model.history_._promo_columns(np.array([u0, u1, u0, u1, u0]), np.array([i3, i3, i4, i7, i7]))
    np.testing.assert_array_equal(cols["promo_mailer_weeks"], [2, 0, 0, 1, 0])
    np.testing.assert_array_equal(cols["promo_display_weeks"], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(cols["promo_display_weeks_before"], [0, 0, 1, 0, 0])
    np.testing.assert_array_equal(cols["promo_mailer_weeks_before"], [0, 0, 0, 0, 0])
    users = np.arange(data.n_users)
    loaded = Recommender.load(model.save(tmp_path / "ranker"))
    assert loaded.feature_names == model.feature_names
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
    # switched off, or no calendar in the data: the base feature set
    assert GroceryRanker(label_windows=1, use_promotions=False, **FAST).fit(data).feature_names == FEATURES
    assert GroceryRanker(label_windows=1, **FAST).fit(block_dataset).feature_names == FEATURES


@pytest.fixture(scope="module")
def program(tmp_path_factory) -> tuple[Dataset, Dataset]:
    """300 synthetic customers in three Parquet parts, in memory and left on disk."""
    from lab.synthetic import write_synthetic_parts
    from recsys.data.io import read_tables

    out = tmp_path_factory.mktemp("program") / "data"
    write_synthetic_parts(out, 300, 200, 8, seed=3, block=100)
    tables = read_tables(out, skip=("interactions",))
    return Dataset.from_tables(tables, lines=out), Dataset.from_tables(tables, lines=out, in_memory=False)


def test_a_program_larger_than_the_fit_sample_is_scored_in_blocks(program):
    memory, disk = program
    sampled = {"label_windows": 1, "max_fit_customers": 120, **FAST}
    a = GroceryRanker(score_block_customers=70, **sampled).fit(memory)
    # the same from the lines on disk, and whatever the block size: a customer's scores depend on
    # their own history and the sample's sub-models, not on who shares their block
    _same_csr(
        a.candidate_scores_, GroceryRanker(score_block_customers=70, **sampled).fit(disk).candidate_scores_
    )
    _same_csr(
        a.candidate_scores_,
        GroceryRanker(score_block_customers=1000, **sampled).fit(memory).candidate_scores_,
    )
    # every customer with a purchase is scored, not only the sample's
    bought = np.diff(memory.user_item_matrix("binary").indptr) > 0
    np.testing.assert_array_equal(a.candidate_scores_.getnnz(axis=1) > 0, bought)
    with pytest.raises(NotFittedError, match="sub-models of a fit"):
        a.compute_candidate_scores(np.flatnonzero(bought))


def test_the_ranker_fits_the_same_from_disk(program):
    memory, disk = program
    a = GroceryRanker(label_windows=2, window_stride_days=7.0, **FAST).fit(memory)
    _same_csr(
        a.candidate_scores_,
        GroceryRanker(label_windows=2, window_stride_days=7.0, **FAST).fit(disk).candidate_scores_,
    )


def test_discovery_top_skips_excluded_products_and_short_rows():
    scores = np.array([[3.0, 1.0, 2.0, 5.0], [0.0, 4.0, 0.0, 0.0]], dtype=np.float32)
    exclude = np.array([[False, False, False, True], [True, True, False, True]])
    keys = np.sort(top_outside(scores, exclude, 2))
    # row 0: the best two of the products not excluded; row 1 has only one product left
    assert keys.tolist() == [0 * 4 + 0, 0 * 4 + 2, 1 * 4 + 2]


def test_discovery_top_equals_a_full_sort():
    rng = np.random.default_rng(3)
    scores = rng.standard_normal((40, 300)).astype(np.float32)
    exclude = rng.random((40, 300)) < 0.3
    exclude[5, :295] = True  # a row with fewer than n products left
    scores[7, :10] = -np.inf  # never a candidate
    expected = []
    for r in range(40):
        cols = [
            c
            for c in np.argsort(-scores[r], kind="stable")
            if not exclude[r, c] and np.isfinite(scores[r, c])
        ]
        expected += [r * 300 + c for c in cols[:20]]
    assert np.sort(top_outside(scores, exclude, 20)).tolist() == sorted(expected)
