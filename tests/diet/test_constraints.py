"""Constraint engine: fail-closed masks, cached per profile, filters and stock."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings

from recsys.data.idmap import UnknownIdError
from recsys.diet.constraints import ConstraintEngine, ItemFilters, allowed_mask_for_diet
from recsys.diet.profiles import DietProfile, parse_profile
from tests.diet.catalogs import catalogs, product_row, profiles, violates


def small_catalog() -> pd.DataFrame:
    return pd.DataFrame(
        [
            product_row("wheat", "BAKED BREAD/BUNS/ROLLS", "MAINSTREAM WHITE BREAD", contains_gluten="yes"),
            product_row("gf", "BAKED BREAD/BUNS/ROLLS", "GLUTEN FREE BREAD"),
            product_row(
                "mystery", "BAKED BREAD/BUNS/ROLLS", "MAINSTREAM WHITE BREAD", contains_gluten="unknown"
            ),
            product_row("soap", "LAUNDRY DETERGENTS", "LIQUID", is_food="no", contains_gluten="unknown"),
            product_row("odd", "LAUNDRY DETERGENTS", "LIQUID", is_food="unknown", contains_gluten="unknown"),
            product_row("beef", "BEEF", "LEAN", contains_meat="yes"),
        ]
    )


def test_fail_closed_unknown_is_excluded_even_for_non_food():
    engine = ConstraintEngine(small_catalog())
    mask = engine.allowed(parse_profile("gluten-free"))
    assert mask.tolist() == [False, True, False, False, False, True]  # soap with gluten 'unknown' is out
    assert engine.allowed(None).all()


def test_missing_attribute_column_excludes_everything_asked_about():
    items = small_catalog().drop(columns=["contains_nuts"])
    engine = ConstraintEngine(items)
    assert not engine.allowed("nuts").any()


def test_masks_are_cached_and_read_only():
    engine = ConstraintEngine(small_catalog())
    a = engine.allowed(parse_profile("vegan"))
    b = engine.allowed(
        DietProfile(frozenset(a_ for a_ in parse_profile("vegan").exclusions), {"added_sugar": 1})
    )
    assert a is b
    with pytest.raises(ValueError):
        a[0] = True


def test_filters_categories_items_and_stock():
    engine = ConstraintEngine(small_catalog(), stock={"s1": [0, 1, 5]})
    f = ItemFilters.make(include_categories=["BAKED BREAD/BUNS/ROLLS"], exclude_items=["gf"])
    assert np.flatnonzero(engine.mask(None, f)).tolist() == [0, 2]
    f = ItemFilters.make(exclude_categories=["BEEF"], store="s1")
    assert np.flatnonzero(engine.mask("gluten-free", f)).tolist() == [1]
    assert np.flatnonzero(engine.mask(None, ItemFilters.make(include_items=["beef", "nope"]))).tolist() == [5]
    with pytest.raises(UnknownIdError, match="unknown store"):
        engine.mask(None, ItemFilters.make(store="s9"))


def test_preference_penalty_yes_unknown_no():
    engine = ConstraintEngine(small_catalog())
    pen = engine.preference_penalty(parse_profile(None, "gluten:0.8"))
    assert pen.tolist() == pytest.approx([0.8, 0.0, 0.4, 0.4, 0.4, 0.0])
    assert engine.preference_penalty(parse_profile("vegan")) is None


def test_allowed_mask_for_diet_helper():
    items = small_catalog()
    assert allowed_mask_for_diet("vegan", items).tolist() == [True, True, True, True, True, False]
    with pytest.raises(ValueError, match="carnivore"):
        allowed_mask_for_diet("carnivore", items)


@settings(deadline=None, max_examples=80)
@given(products=catalogs(), profile=profiles)
def test_zero_violations_and_no_unknown_leak(products, profile):
    engine = ConstraintEngine(products)
    mask = engine.allowed(profile)
    allowed_idx = np.flatnonzero(mask)
    assert violates(products, allowed_idx, profile) == []
    assert engine.violations(allowed_idx, profile) == 0
    # every excluded item really has a 'yes' or an undecided attribute (the mask is not over-strict)
    for i in np.flatnonzero(~mask):
        assert violates(products, [i], profile) == [int(i)]
    # unknown never leaks: an unknown attribute under an exclusion is never allowed, food or not
    for a in profile.exclusions:
        leak = (products[a] == "unknown").to_numpy() & mask
        assert not leak.any()
