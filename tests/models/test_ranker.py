"""Grocery ranker specifics: stacked label windows, re-buy-only extra features, save/load of both."""

from __future__ import annotations

import numpy as np

from recsys.models import GroceryRanker
from recsys.models.base import Recommender
from recsys.models.ranker import EXTRA_FEATURES, FEATURES

FAST = {"als_factors": 8, "knn_neighbours": 10, "n_discovery": 5, "n_popular": 3, "max_iter": 10}


def test_stacked_windows_and_extras_round_trip(block_dataset, tmp_path):
    model = GroceryRanker(label_windows=2, window_stride_days=7.0, extra_features=True, **FAST).fit(
        block_dataset
    )
    one = GroceryRanker(label_windows=1, window_stride_days=7.0, extra_features=True, **FAST).fit(
        block_dataset
    )
    # a second label window adds training rows
    assert model.train_rows_[0] > one.train_rows_[0]
    names = FEATURES + EXTRA_FEATURES
    for part, trees in model.trees_.items():
        if trees is None:
            continue
        used = [names[j] for j in trees["columns"]]
        if part == "discovery":  # the discovery model never sees the re-buy-only extras
            assert used == list(FEATURES)
        else:
            assert used == list(names)
    users = np.arange(block_dataset.n_users)
    loaded = Recommender.load(model.save(tmp_path / "ranker"))
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
    X = model._features(users[:2], np.array([0, 1]), np.array([0, 1]), *model._candidates(users[:2])[3:])
    assert X.shape == (2, len(names)) and np.isfinite(X).all()


def test_without_extras_matches_the_base_feature_set(block_dataset, tmp_path):
    model = GroceryRanker(extra_features=False, label_windows=1, **FAST).fit(block_dataset)
    assert not hasattr(model, "pair_table_")
    loaded = Recommender.load(model.save(tmp_path / "ranker"))
    users = np.arange(block_dataset.n_users)
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
