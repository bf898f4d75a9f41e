"""Substitutes: compliant, same type first, never the item itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.diet.constraints import ConstraintEngine
from recsys.models.popularity import Popularity
from recsys.personalize import Personalizer
from recsys.ranking.substitutes import substitute_idx
from tests.diet.catalogs import catalogs, make_dataset, product_row, profiles, purchases, violates

BREAD = "BAKED BREAD/BUNS/ROLLS"


def bread_catalog() -> pd.DataFrame:
    return pd.DataFrame(
        [
            product_row("wheat", BREAD, "MAINSTREAM WHITE BREAD", 1.6, contains_gluten="yes"),
            product_row("wheat2", BREAD, "MAINSTREAM WHITE BREAD", 1.6, contains_gluten="yes"),
            product_row("gf", BREAD, "GLUTEN FREE BREAD", 1.8),
            product_row("gf-unknown", BREAD, "GLUTEN FREE BREAD", 1.8, contains_gluten="unknown"),
            product_row("pasta", "PASTA", "DRY PASTA", 1.6),
            product_row("beef", "BEEF", "LEAN", 99.0, contains_meat="yes"),
        ]
    )


def test_gluten_free_bread_substitutes_wheat_bread():
    products = bread_catalog()
    data = make_dataset(products, [("c0", "wheat"), ("c1", "gf"), ("c1", "wheat"), ("c2", "pasta")])
    p = Personalizer(Popularity().fit(data), data)
    subs = p.substitutes("wheat", "gluten-free", k=5)
    assert subs["item_id"].tolist() == ["gf"]  # not pasta (another category), not the unknown one
    assert subs["reason"].tolist() == ["same category"]
    plain = p.substitutes("wheat", None, k=5)
    assert plain["item_id"].tolist()[0] == "wheat2"  # same type first
    assert set(plain["item_id"]) == {"wheat2", "gf", "gf-unknown"} and "wheat" not in set(plain["item_id"])


def test_substitutes_without_a_model_and_bad_k():
    products = bread_catalog()
    engine = ConstraintEngine(products)
    idx, _, reasons = substitute_idx(0, engine.allowed(None), products, k=1)
    assert idx.tolist() == [1] and reasons == ["same type"]
    with pytest.raises(ValueError):
        substitute_idx(0, engine.allowed(None), products, k=0)


@settings(deadline=None, max_examples=40)
@given(data=st.data(), products=catalogs(min_items=3, max_items=20), profile=profiles, k=st.integers(1, 6))
def test_substitutes_are_compliant_and_never_the_item(data, products, profile, k):
    dataset = make_dataset(products, data.draw(purchases(products)))
    p = Personalizer(Popularity().fit(dataset), dataset)
    item = data.draw(st.sampled_from(products["product_id"].tolist()))
    subs = p.substitutes(item, profile, k=k)
    idx = dataset.items.to_internal(subs["item_id"])
    assert item not in set(subs["item_id"])
    assert violates(products, idx, profile) == []
    cat = products.loc[products["product_id"] == item, "category"].iloc[0]
    same_cat = products[(products["category"] == cat) & (products["product_id"] != item)]
    compliant = [i for i in same_cat.index if not violates(products, [i], profile)]
    assert len(subs) == min(k, len(compliant))
    # same type before same category
    tiers = (subs["reason"] == "same type").to_numpy()
    assert (np.diff(tiers.astype(int)) <= 0).all()
