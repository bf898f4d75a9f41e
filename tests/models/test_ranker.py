"""Grocery ranker specifics: stacked label windows, promotion calendar, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.models import GroceryRanker
from recsys.models.base import Recommender
from recsys.models.ranker import FEATURES, PROMO_FEATURES

FAST = {"als_factors": 8, "knn_neighbours": 10, "n_discovery": 5, "n_popular": 3, "max_iter": 10}


def test_stacked_windows_round_trip(block_dataset, tmp_path):
    model = GroceryRanker(label_windows=2, window_stride_days=7.0, **FAST).fit(block_dataset)
    one = GroceryRanker(label_windows=1, window_stride_days=7.0, **FAST).fit(block_dataset)
    # a second label window adds training rows
    assert model.train_rows_[0] > one.train_rows_[0]
    for trees in model.trees_.values():
        if trees is not None:
            assert [FEATURES[j] for j in trees["columns"]] == list(FEATURES)
    users = np.arange(block_dataset.n_users)
    loaded = Recommender.load(model.save(tmp_path / "ranker"))
    np.testing.assert_array_equal(model.score(users), loaded.score(users))
    X = model._features(users[:2], np.array([0, 1]), np.array([0, 1]), *model._candidates(users[:2])[3:])
    assert X.shape == (2, len(FEATURES)) and np.isfinite(X).all()


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
    cols = model._promo_columns(np.array([u0, u1, u0, u1, u0]), np.array([i3, i3, i4, i7, i7]))
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
