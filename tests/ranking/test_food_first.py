"""Food-first diet lists: the non-food count of the list without the diet, freed places go to
compliant food (the model's, then substitutes of excluded favourites, then diet-popular food)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.dataset import Dataset
from recsys.diet.profiles import as_profile
from recsys.personalize import align_items
from recsys.ranking.food_first import REASON_POPULAR, FoodFirst, arrange
from recsys.ranking.selection import ProductQuery, ProductSelector
from tests.ranking.test_selection import RepeatThenPopular
from tests.serving.conftest import MEAT_BUYERS, make_tables

NONFOOD = ("p_candle", "p_soap", "p_socks")


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    tables = make_tables()
    products = tables["products"]
    extra = products.iloc[[0] * len(NONFOOD)].copy()
    extra["product_id"] = list(NONFOOD)
    extra["name"] = ["Candle", "Hand soap", "Socks"]
    extra["category"] = extra["type"] = "HOUSEHOLD"
    extra["co2e_per_kg"] = np.nan
    for col in [c for c in products.columns if c.startswith(("contains_", "added_", "alcohol", "is_food"))]:
        extra[col] = "no"  # non-food: every diet attribute 'no', as the labeler writes it
    tables["products"] = pd.concat([products, extra], ignore_index=True)
    inter = tables["interactions"]
    lines = inter[inter["customer_id"].isin(MEAT_BUYERS)].head(len(MEAT_BUYERS) * 2).copy()
    for j, pid in enumerate(NONFOOD):
        lines["product_id"] = pid
        lines["basket_id"] = lines["basket_id"] + f"-{j}"
        inter = pd.concat([inter, lines], ignore_index=True)
    tables["interactions"] = inter
    return Dataset.from_tables(tables)


def _selector(dataset: Dataset, food_first: bool) -> ProductSelector:
    model = RepeatThenPopular().fit(dataset)
    return ProductSelector(model, align_items(dataset.items_table, model.items_), food_first=food_first)


def test_arrange_caps_non_food_and_sets_the_rest_aside():
    food = np.array([True, False, False, True, True])
    items, scores, aside = arrange(np.array([0, 1, 2, 3, 4]), np.arange(5.0)[::-1], food, cap=1, k=3)
    assert items.tolist() == [0, 1, 3]
    assert scores.tolist() == [4.0, 3.0, 1.0]
    assert aside.tolist() == [2]


def test_fill_prefers_substitutes_of_excluded_favourites():
    table = pd.DataFrame(
        {
            "is_food": ["yes", "yes", "yes", "yes", "no"],
            "category": ["BREAD", "BREAD", "BREAD", "PRODUCE", "HOUSEHOLD"],
            "type": ["WHITE", "WHITE", "RYE", "APPLES", "CANDLES"],
        }
    )
    names = np.array(["Wheat bread", "GF bread", "GF rye", "Apples", "Candle"], dtype=object)
    ff = FoodFirst(table, popularity=np.array([5.0, 1.0, 2.0, 9.0, 10.0]), names=names)
    diet_ok = np.array([False, True, True, True, True])  # the wheat bread is excluded
    fills = ff.fill(diet_ok.copy(), np.array([0]), diet_ok, n=3, taken=set())
    assert [i for i, _ in fills] == [1, 2, 3]  # same type, same category, then popular food
    assert fills[0][1] == "instead of Wheat bread, which your diet excludes"
    assert fills[2][1] == REASON_POPULAR  # never the (more popular) candle


def test_diet_list_keeps_the_non_food_count_of_the_list_without_the_diet(dataset):
    on, off = _selector(dataset, True), _selector(dataset, False)
    customer = MEAT_BUYERS[1]
    veg = as_profile("vegetarian")
    q = ProductQuery(k=4)
    base = off.select([q], [off.shopper(customer)])[0]
    plain = off.select([q], [off.shopper(customer, veg)])[0]
    first = on.select([q], [on.shopper(customer, veg)])[0]
    food = on.food_first.food
    n_base, n_plain, n_first = ((~food[s.items]).sum() for s in (base, plain, first))
    assert n_plain > n_base  # the problem: the mask lets non-food filler up
    assert n_first <= n_base
    assert len(first.items) == 4 and len(first.reasons) == 4
    assert on.engine.violations(first.items, veg) == 0
    assert np.all(np.diff(first.scores) <= 0)


def test_lists_without_a_diet_are_unchanged(dataset):
    on, off = _selector(dataset, True), _selector(dataset, False)
    q = ProductQuery(k=5)
    a = on.select([q], [on.shopper(MEAT_BUYERS[2])])[0]
    b = off.select([q], [off.shopper(MEAT_BUYERS[2])])[0]
    assert a.items.tolist() == b.items.tolist() and a.reasons == b.reasons
