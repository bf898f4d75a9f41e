"""Basket completion: co-occurrence learnt from checkouts, blended with the customer's own scores, on
the one selection path (basket items never come back, the diet mask holds)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.dataset import Dataset
from recsys.diet.profiles import as_profile
from recsys.models.buy_again import BuyAgain
from recsys.models.popularity import Popularity
from recsys.personalize import align_items
from recsys.ranking.basket import BasketCompleter, blend, unit_scale
from recsys.ranking.selection import ProductQuery, ProductSelector
from tests.serving.conftest import BREAD_BUYERS, MEAT_BUYERS, make_tables


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.from_tables(make_tables())


def selector(model, dataset: Dataset, baskets: bool = True) -> ProductSelector:
    completer = BasketCompleter.from_interactions(dataset.interactions, dataset.n_items) if baskets else None
    return ProductSelector(model, align_items(dataset.items_table, model.items_), baskets=completer)


def test_neighbours_are_the_cosine_of_shared_baskets_without_the_item_itself():
    lines = pd.DataFrame(
        {"basket_id": ["x", "x", "y", "y", "z", "z", "w"], "item_idx": [0, 1, 0, 1, 0, 2, 3]}
    )
    bc = BasketCompleter.from_interactions(lines, n_items=4, neighbours=1)
    row = bc.neighbours[0].toarray().ravel()
    assert row.tolist() == pytest.approx([0.0, 2 / np.sqrt(3 * 2), 0.0, 0.0])  # one kept: item 1
    co = bc.cooccurrence(np.array([1, 2]))
    assert co[0] == pytest.approx(2 / np.sqrt(6) + 1 / np.sqrt(3)) and co[3] == 0.0


def test_blend_scales_each_signal_and_keeps_forbidden_scores():
    personal = np.array([10.0, 0.0, -np.inf, 5.0], dtype=np.float32)
    assert unit_scale(personal).tolist() == [1.0, 0.0, -np.inf, 0.5]
    out = blend(np.array([0.0, 4.0, 1.0, 0.0], dtype=np.float32), personal, 0.5)
    assert out[1] == pytest.approx(0.5) and out[0] == pytest.approx(0.5) and out[2] == -np.inf


@pytest.mark.parametrize("baskets", [True, False])
def test_complete_basket_follows_the_basket_and_never_returns_it(dataset, baskets):
    sel = selector(Popularity().fit(dataset), dataset, baskets)
    stranger = sel.shopper("somebody-new")
    (got,) = sel.select([ProductQuery(k=3, mode="complete_basket", basket=("p_beef", "p_bbq"))], [stranger])
    ids = sel.item_ids[got.items].tolist()
    assert not {"p_beef", "p_bbq"} & set(ids)
    assert set(ids[:2]) <= {"p_pork", "p_chicken"}  # what the meat baskets hold next


def test_the_same_basket_is_completed_per_customer(dataset):
    sel = selector(BuyAgain().fit(dataset), dataset)
    query = ProductQuery(k=2, mode="complete_basket", basket=("p_apple",))
    bread, meat = sel.select([query, query], [sel.shopper(BREAD_BUYERS[1]), sel.shopper(MEAT_BUYERS[1])])
    bread_ids = set(sel.item_ids[bread.items].tolist())
    meat_ids = set(sel.item_ids[meat.items].tolist())
    assert bread_ids <= {"p_bread", "p_butter", "p_jam", "p_milk", "p_rye"}
    assert meat_ids <= {"p_beef", "p_bbq", "p_pork", "p_chicken", "p_salmon"}


@pytest.mark.parametrize("diet", ["gluten-free", "vegan"])
def test_complete_basket_is_diet_safe_fail_closed(dataset, diet):
    sel = selector(BuyAgain().fit(dataset), dataset)
    profile = as_profile(diet)
    allowed = sel.engine.allowed(profile)
    shoppers = [sel.shopper(c, profile) for c in [*BREAD_BUYERS, *MEAT_BUYERS, "somebody-new"]]
    query = ProductQuery(k=10, mode="complete_basket", basket=("p_bread", "p_beef", "p_mystery"))
    for got in sel.select([query] * len(shoppers), shoppers):
        assert len(got.items) and allowed[got.items].all()
        assert "p_mystery" not in sel.item_ids[got.items].tolist()
