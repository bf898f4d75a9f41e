"""Diet profiles: names expand, households union their exclusions, bad input is named, suggestions."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.diet.profiles import (
    NAMED_DIETS,
    DietProfile,
    parse_profile,
    profile_for_customer,
    suggest_profiles,
)
from tests.diet.catalogs import diet_names, make_dataset, product_row


def test_named_diets_expand():
    assert parse_profile("vegan").exclusions == {
        "contains_meat",
        "contains_fish",
        "contains_dairy",
        "contains_egg",
    }
    assert parse_profile("vegetarian").exclusions == {"contains_meat", "contains_fish"}
    assert parse_profile("pescetarian").exclusions == {"contains_meat"}
    assert parse_profile(" Gluten_Free , nuts").exclusions == {"contains_gluten", "contains_nuts"}
    assert parse_profile(["sugar", "alcohol-free"]).exclusions == {"added_sugar", "alcohol"}
    assert parse_profile(None).is_empty and parse_profile("").is_empty


def test_household_members_exclusions_all_apply():
    profile = parse_profile("vegetarian", members=["gluten-free", None, ["nuts"], DietProfile()])
    assert profile.exclusions == {"contains_meat", "contains_fish", "contains_gluten", "contains_nuts"}


def test_preferences_parse_and_keep_strongest():
    profile = parse_profile(None, "sugar:0.5, meat:0.2, vegetarian:0.4")
    assert dict(profile.preferences) == {"added_sugar": 0.5, "contains_meat": 0.4, "contains_fish": 0.4}
    assert not profile.exclusions


def test_unknown_diet_names_the_culprit_and_the_valid_names():
    with pytest.raises(ValueError, match=r"'paleo'.*valid names: .*vegan"):
        parse_profile("vegan,paleo")
    with pytest.raises(ValueError, match="keto"):
        parse_profile(None, "keto:0.5")


@pytest.mark.parametrize("bad", ["sugar:0", "sugar:1.5", "sugar:-0.1", "sugar:abc", "sugar:nan"])
def test_strength_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match="sugar"):
        parse_profile(None, bad)


def test_profile_for_customer_reads_members_of_that_customer_only():
    customer = pd.Series({"customer_id": "c1", "diet_exclusions": "lactose-free", "diet_preferences": None})
    members = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2"],
            "member_id": ["m1", "m2", "m3"],
            "diet_exclusions": ["gluten", None, "vegan"],
        }
    )
    assert profile_for_customer(customer, members).exclusions == {"contains_dairy", "contains_gluten"}
    assert profile_for_customer({"diet_exclusions": float("nan")}, []).is_empty


def test_profile_is_hashable_by_exclusions():
    a = DietProfile(frozenset({"contains_meat"}), {"added_sugar": 0.5})
    b = DietProfile(frozenset({"contains_meat"}))
    assert hash(a) == hash(b) and a != b
    with pytest.raises(ValueError):
        DietProfile(frozenset({"contains_bacon"}))


@settings(deadline=None, max_examples=60)
@given(own=diet_names, members=st.lists(diet_names, max_size=3))
def test_household_profile_is_the_union(own, members):
    profile = parse_profile(own, members=members)
    expected = set()
    for names in [own, *members]:
        for name in names:
            expected |= set(NAMED_DIETS.get(name, ())) or set(parse_profile(name).exclusions)
    assert profile.exclusions == expected


def test_suggest_vegetarian_from_history_is_a_suggestion_with_confidence():
    products = pd.DataFrame(
        [
            product_row("beef", "BEEF", "LEAN", contains_meat="yes"),
            product_row("bread", "BAKED BREAD/BUNS/ROLLS", "MAINSTREAM WHITE BREAD", contains_gluten="yes"),
            product_row("onion", "VEGETABLES - ALL OTHERS", "ONIONS"),
            product_row("cheese", "CHEESE", "SHREDDED CHEESE", contains_dairy="yes"),
        ]
    )
    lines = [("c0", p) for p in ["onion", "cheese", "bread"] * 20]  # 60 food lines, never meat
    lines += [("c1", p) for p in ["beef", "onion", "bread"] * 20]  # buys meat
    lines += [("c2", "onion")] * 3  # too few purchases to say anything
    out = suggest_profiles(make_dataset(products, lines), min_purchases=30)
    assert list(out.columns) == ["customer_id", "suggestion", "confidence", "evidence"]
    c0 = out[out["customer_id"] == "c0"]
    assert "vegetarian" in set(
        c0["suggestion"]
    )  # no fish was ever bought by anyone: vegetarian, not pescetarian
    assert "vegan" not in set(c0["suggestion"])  # dairy bought
    assert (c0["confidence"] > 0.9).all() and (c0["confidence"] <= 1).all()
    assert "meat" in c0.loc[c0["suggestion"] == "vegetarian", "evidence"].iloc[0]
    assert "c2" not in set(out["customer_id"])  # too few purchases to suggest anything
    assert "vegetarian" not in set(out.loc[out["customer_id"] == "c1", "suggestion"])
