"""Known answers: block structure, purchase cycles, cold users, basket completion."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.models import ALS, BuyAgain, ItemKNN, Popularity
from recsys.models.gbdt import export_trees, predict_logit, predict_proba

from .conftest import make_dataset, missing_item


@pytest.mark.parametrize(
    "model",
    [
        ALS(factors=2, iterations=15, weighting="binary", regularization=0.1),
        ItemKNN(similarity="cosine", K=12),
    ],
    ids=["als", "item_knn"],
)
def test_block_matrix_next_item_is_the_missing_one(model, block_dataset):
    model.fit(block_dataset)
    users = [f"u{u}" for u in range(8)]
    recs = model.recommend(users, k=1, exclude_seen=True)
    assert recs["item_id"].tolist() == [missing_item(u) for u in range(8)]


def test_buy_again_ranks_the_due_cycle_first():
    # milk weekly, last bought 7 days before "now"; coffee monthly, bought 2 days ago;
    # the same number of purchases, so frequency alone cannot decide.
    rows = [("u0", "milk", d) for d in (37, 44, 51, 58, 65, 72)]
    rows += [("u0", "coffee", d) for d in (0, 30, 45, 60, 75, 77)]
    rows = [(u, {"milk": "i0", "coffee": "i1"}[i], d) for u, i, d in rows]
    rows += [("u1", "i2", 79.0)]  # sets "now" = day 79
    data = make_dataset(rows, 4)
    model = BuyAgain(cycle_weight=5.0, half_life_days=1000.0, min_cycle=3, horizon_days=0.0).fit(data)
    assert model.recommend(["u0"], k=2)["item_id"].tolist() == ["i0", "i1"]
    # and right after a purchase the product is not due: a milk bought yesterday scores lower
    fresh = make_dataset([(u, i, d + 6) if i == "i0" else (u, i, d) for u, i, d in rows], 4)
    later = BuyAgain(cycle_weight=5.0, half_life_days=1000.0, min_cycle=3, horizon_days=0.0).fit(fresh)
    s_due = model.score([0])[0, 0]
    s_fresh = later.score([0])[0, 0]
    assert s_due > s_fresh


def test_buy_again_fills_with_popular_unbought_items(block_dataset):
    model = BuyAgain().fit(block_dataset)
    recs = model.recommend(["u0"], k=12)
    assert len(recs) == 12
    bought = recs["score"] >= 1.0
    assert bought.iloc[:5].all() and not bought.iloc[5:].any()


def test_unknown_and_history_less_users_get_the_fallback(block_dataset):
    model = Popularity().fit(block_dataset)
    fallback = model.recommend(["nobody"], k=3)["item_id"].tolist()
    data = make_dataset([("u0", "i0", 1.0), ("u1", "i1", 2.0), ("u1", "i0", 3.0)], 4, n_users=3)
    als = ALS(factors=2, iterations=2).fit(data)
    assert als.recommend(["u2"], k=2)["item_id"].tolist() == ["i0", "i1"]  # u2 known, no history
    assert len(fallback) == 3


def test_category_popularity_stays_in_the_customers_categories(block_dataset):
    model = Popularity(by="category").fit(block_dataset)
    recs = model.recommend(["u0"], k=4)  # u0 buys items 0..5 (categories c0, c1) only
    assert set(recs["item_id"]) <= {f"i{j}" for j in range(6)}


def test_complete_basket_with_item_knn(block_dataset):
    model = ItemKNN(similarity="cosine", K=12).fit(block_dataset)
    basket = model.complete_basket(["i1", "i2", "i3"], k=2)
    assert set(basket["item_id"]) <= {f"i{j}" for j in range(6)}
    als = ALS(factors=2, iterations=15, weighting="binary", regularization=0.1).fit(block_dataset)
    top = als.complete_basket(["i7", "i8"], k=3)["item_id"]
    assert set(top) <= {f"i{j}" for j in range(6, 12)}


def test_similar_items_stay_in_block(block_dataset):
    model = ALS(factors=2, iterations=15, weighting="binary", regularization=0.1).fit(block_dataset)
    sims = model.similar_items(["i0", "i9"], k=3)
    assert set(sims.loc[sims.item_id == "i0", "similar_item_id"]) <= {f"i{j}" for j in range(1, 6)}
    assert set(sims.loc[sims.item_id == "i9", "similar_item_id"]) <= {f"i{j}" for j in range(6, 12)}


def test_exported_trees_match_sklearn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + X[:, 1] ** 2 > 1).astype(int)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, "openmp"):
        clf = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, y)
    trees = export_trees(clf)
    np.testing.assert_allclose(predict_proba(trees, X), clf.predict_proba(X)[:, 1], rtol=1e-12)
    np.testing.assert_allclose(predict_logit(trees, X), clf.decision_function(X), rtol=1e-12)
