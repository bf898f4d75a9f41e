"""The one selection path: decisions made once (cold start, buy-again), per-request errors, and the
sparse-candidate shortcut equal to scoring the whole catalog."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.data.idmap import UnknownIdError
from recsys.diet.profiles import as_profile
from recsys.models.base import Recommender
from recsys.models.popularity import Popularity
from recsys.personalize import align_items
from recsys.ranking.selection import ProductQuery, ProductSelector
from tests.serving.conftest import BREAD_BUYERS, MEAT_BUYERS, VEGAN, make_tables


class RepeatThenPopular(Recommender):
    """A toy candidate model: each customer's past products (by count) over popularity below them."""

    name = "base"  # not registered: the contract tests iterate the registry

    def _fit(self, dataset: Dataset) -> None:
        counts = dataset.user_item_matrix("count").tocsr().astype(np.float32)
        counts.data = 1.0 + counts.data / (1.0 + counts.data)  # in (1, 2): above every base score
        self.cand_ = counts

    def candidate_scores(self, user_idx: np.ndarray) -> sp.csr_matrix:
        return self.cand_[np.asarray(user_idx)]

    def base_scores(self) -> np.ndarray:
        pop = self.item_popularity_
        return (pop / (pop.max() + 1.0)).astype(np.float32)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        out = np.tile(self.base_scores(), (len(user_idx), 1))
        rows = self.cand_[np.asarray(user_idx)].tocoo()
        out[rows.row, rows.col] = rows.data
        return out


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.from_tables(make_tables())


def selector(model, dataset: Dataset, stock=None) -> ProductSelector:
    return ProductSelector(model, align_items(dataset.items_table, model.items_), stock=stock)


def test_cold_start_buy_again_is_empty_and_discover_is_the_popular_list(dataset):
    sel = selector(Popularity().fit(dataset), dataset)
    stranger = sel.shopper("somebody-new")
    empty, discover, mixed = sel.select(
        [ProductQuery(k=3, mode="buy_again"), ProductQuery(k=3, mode="discover"), ProductQuery(k=3)],
        [stranger] * 3,
    )
    assert len(empty.items) == 0
    assert discover.items.tolist() == mixed.items.tolist() and len(mixed.items) == 3
    assert all(text == "popular with shoppers" for text, _ in mixed.reasons)


def test_a_bad_store_fails_that_request_only(dataset):
    stock = {"s1": np.arange(5)}
    sel = selector(Popularity().fit(dataset), dataset, stock=stock)
    shoppers = [sel.shopper(BREAD_BUYERS[0]), sel.shopper(MEAT_BUYERS[0])]
    bad, good = sel.select([ProductQuery(k=3, store="nowhere"), ProductQuery(k=3, store="s1")], shoppers)
    assert isinstance(bad, UnknownIdError) and "unknown store" in str(bad)
    assert set(good.items.tolist()) <= set(range(5))


def test_not_personalised_ignores_what_the_model_knows(dataset):
    sel = selector(Popularity().fit(dataset), dataset)
    refused = sel.shopper(MEAT_BUYERS[0], personalised=False)
    (got,) = sel.select([ProductQuery(k=4, mode="buy_again")], [refused])
    assert len(got.items) == 0  # no history may be used, so nothing to buy again


@pytest.mark.parametrize("diet", [None, "vegan", "gluten-free"])
@pytest.mark.parametrize("mode", ["mixed", "buy_again", "discover"])
def test_candidate_shortcut_equals_the_dense_path(dataset, monkeypatch, diet, mode):
    model = RepeatThenPopular().fit(dataset)
    sel = selector(model, dataset)
    users = [*BREAD_BUYERS[:3], *MEAT_BUYERS[:3], VEGAN, "somebody-new"]
    shoppers = [sel.shopper(u, as_profile(diet)) for u in users]
    queries = [ProductQuery(k=6, mode=mode)] * len(users)
    fast = sel.select(queries, shoppers)
    monkeypatch.setattr(RepeatThenPopular, "has_candidates", property(lambda self: False))
    dense = sel.select(queries, shoppers)
    for a, b in zip(fast, dense, strict=True):
        assert a.items.tolist() == b.items.tolist()
        np.testing.assert_allclose(a.scores, b.scores)
        assert a.reasons == b.reasons
    allowed = sel.engine.allowed(as_profile(diet))
    assert all(allowed[s.items].all() for s in fast)  # the diet holds on the shortcut too
