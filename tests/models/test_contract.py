"""One contract over every registered model: fit, recommend, k, masks, exclude_seen, unknown users,
save/load identical recommendations."""

from __future__ import annotations

import numpy as np
import pytest

import recsys.models  # noqa: F401  (registers every model)
from recsys.models.base import Recommender

#: Small settings so the contract runs in seconds; unknown (future) models run with defaults.
FAST_PARAMS: dict[str, dict] = {
    "als": {"factors": 8, "iterations": 5},
    "bpr": {"factors": 8, "iterations": 20},
    "item_knn": {"K": 10},
    "lightfm": {"no_components": 8, "epochs": 3, "num_threads": 1},
    "grocery_ranker": {
        "als_factors": 8,
        "knn_neighbours": 10,
        "n_discovery": 5,
        "n_popular": 3,
        "max_iter": 10,
    },
}

MODELS = sorted(Recommender.registry)


@pytest.fixture(scope="module")
def fitted(block_dataset):
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = Recommender.registry[name](**FAST_PARAMS.get(name, {})).fit(block_dataset)
        return cache[name]

    return get


def test_registry_has_the_issue_models():
    assert {"popularity", "buy_again", "als", "bpr", "item_knn", "lightfm", "grocery_ranker"} <= set(MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_contract(name, fitted, block_dataset, tmp_path):
    model = fitted(name)
    users = ["u0", "u1", "u7", "stranger"]
    n_items = block_dataset.n_items

    recs = model.recommend(users, k=5)
    assert list(recs.columns) == ["user_id", "item_id", "rank", "score"]
    # an unknown customer's scores are shares of buyers (0-1), never raw counts an app would show
    stranger = recs.loc[recs["user_id"] == "stranger", "score"]
    assert stranger.between(0.0, 1.0).all() and stranger.max() > 0.0
    assert recs.groupby("user_id").size().to_dict() == {
        u: 5 for u in users
    }  # k honoured, fallback for stranger
    assert (recs.groupby("user_id")["rank"].apply(list) == [[1, 2, 3, 4, 5]] * 4).all()
    assert recs.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing).all()

    allowed = np.ones(n_items, dtype=bool)
    forbidden = ["i0", "i3", "i6", "i7"]
    allowed[block_dataset.items.to_internal(forbidden)] = False
    masked = model.recommend(users, k=6, allowed=allowed)
    assert not masked["item_id"].isin(forbidden).any()
    assert masked.groupby("user_id").size().min() == 6

    fresh = model.recommend(users, k=3, exclude_seen=True)
    seen = block_dataset.interactions.assign(
        user=block_dataset.users.to_external(block_dataset.interactions["user_idx"]),
        item=block_dataset.items.to_external(block_dataset.interactions["item_idx"]),
    )
    bought = set(zip(seen["user"], seen["item"], strict=True))
    assert not any((u, i) in bought for u, i in zip(fresh["user_id"], fresh["item_id"], strict=True))
    assert fresh.groupby("user_id").size().min() == 3

    # more than the catalog: shorter list, never a forbidden or padded item
    whole = model.recommend(["u0"], k=n_items + 5, allowed=allowed)
    assert len(whole) == allowed.sum() and whole["item_id"].is_unique

    loaded = Recommender.load(model.save(tmp_path / name))
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    again = loaded.recommend(users, k=5)
    assert again[["user_id", "item_id", "rank"]].equals(recs[["user_id", "item_id", "rank"]])
    np.testing.assert_allclose(again["score"], recs["score"], rtol=1e-6)

    sims = model.similar_items(["i1"], k=3)
    assert len(sims) == 3 and "i1" not in set(sims["similar_item_id"])
    if model.supports_basket:
        basket = model.complete_basket(["i1", "i2"], k=3)
        assert len(basket) == 3 and not basket["item_id"].isin(["i1", "i2"]).any()


def test_item_similarity_counts_a_bounded_customer_sample(block_dataset, monkeypatch):
    from recsys.models import base
    from recsys.models.buy_again import BuyAgain
    from recsys.ranking.similarity import cooccurrence_cosine

    model = BuyAgain().fit(block_dataset)
    items = np.arange(3)
    everyone = model.item_similarity(items)
    np.testing.assert_allclose(everyone, cooccurrence_cosine(model.seen_.tocsc(), items), rtol=1e-6)
    monkeypatch.setattr(base, "SIMILARITY_CUSTOMERS", 10)
    model.fit(block_dataset)  # a refit forgets the matrix of the fit before
    rows = np.linspace(0, model.seen_.shape[0] - 1, 10).astype(np.int64)
    sampled = model.item_similarity(items)
    np.testing.assert_allclose(sampled, cooccurrence_cosine(model.seen_[rows].tocsc(), items), rtol=1e-6)
    assert not np.allclose(sampled, everyone)
