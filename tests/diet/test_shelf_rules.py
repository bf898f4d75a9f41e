"""Known answers of the shelf-type rules added for label coverage (issue 22): one shelf per rule.

Letters per attribute in GMFDENSA order (gluten meat fish dairy egg nuts sugar alcohol):
'Y' yes, '-' no, '?' unknown. Only the attributes a rule claims to decide are compared.
"""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.schema import DIET_ATTRIBUTES
from recsys.diet.labeler import label_products, load_rules

G = "GROCERY"
#: rule id -> (department, category, type, expected GMDE letters: gluten, meat, dairy, egg)
CASES: dict[str, tuple[str, str, str, str]] = {
    "V_SALTY_CHIPS": (G, "BAG SNACKS", "POTATO CHIPS", "?-?-"),
    "V_PRETZELS": (G, "BAG SNACKS", "PRETZELS", "Y-?-"),
    "V_SALTINES": (G, "CRACKERS/MISC BKD FD", "SOUP CRACKERS (SALTINE/OYSTER)", "Y?--"),
    "V_US_MACARONI": (G, "DRY NOODLES/PASTA", "SPAGHETTI DRY", "Y---"),
    "V_MAYO": (G, "SALD DRSNG/SNDWCH SPRD", "SEMI-SOLID SALAD DRESSING MAY", "---Y"),
    "V_DRESSING_EGG": (G, "SALD DRSNG/SNDWCH SPRD", "POURABLE SALAD DRESSINGS", "???Y"),
    "V_CREAM_CHEESE": (G, "CHEESE", "CREAM CHEESE", "??Y-"),
    "V_CHOC_MILK_GLUTEN": (G, "FLUID MILK PRODUCTS", "CHOCOLATE MILK", "--Y-"),
    "V_CREAMER": (G, "FLUID MILK PRODUCTS", "REFRIGERATED COFFEE CREAMERS", "?-?-"),
    "V_TUNA": (G, "SEAFOOD - SHELF STABLE", "TUNA", "?-?-"),
    "V_SWEET_BAKED_EGG": (G, "BAKED SWEET GOODS", "SNACK CAKE - MULTI PACK", "Y?YY"),
    "V_CHOC_CANDY_DAIRY": ("DRUG GM", "CANDY - PACKAGED", "CANDY BAGS-CHOCOCLATE", "??Y?"),
    "V_NOUGAT_EGG": ("DRUG GM", "CANDY - CHECKLANE", "CANDY BARS (SINGLES)(INCLUDING", "??YY"),
    "V_NONCHOC_CANDY": ("DRUG GM", "CANDY - PACKAGED", "CANDY BAGS-NON CHOCOLATE", "???-"),
    "V_FRUIT_SNACKS": (G, "CONVENIENT BRKFST/WHLSM SNACKS", "FRUIT SNACKS", "?Y?-"),
    "V_ICE_CREAM_EGG": (G, "ICE CREAM/MILK/SHERBTS", "PREMIUM", "??YY"),
    "V_CONDENSED_SOUP": (G, "SOUP", "CONDENSED SOUP", "YY??"),
    "V_BROTH": (G, "SOUP", "BROTH", "?Y??"),
    "V_RAMEN": (G, "SOUP", "RAMEN NOODLES/RAMEN CUPS", "YY??"),
    "V_FROZEN_DINNERS": (G, "FRZN MEAT/MEAT DINNERS", "SS ECONOMY ENTREES/DINNERS ALL", "YYY?"),
    "V_BREADED_CHICKEN": ("MEAT-PCKGD", "FROZEN MEAT", "FRZN BREADED PREPARED CHICK", "YY??"),
    "V_PIZZA_MEAT": (G, "FROZEN PIZZA", "PIZZA/ECONOMY", "YYY?"),
    "V_BABY_PUREE": ("DRUG GM", "BABY FOODS", "BABY FOOD - BEGINNER", "???-"),
    "V_BABY_JUICE": ("DRUG GM", "BABY FOODS", "BABY JUICES", "----"),
    "V_BABY_CEREAL": ("DRUG GM", "BABY FOODS", "BABY FOOD CEREALS", "Y-?-"),
    "V_CHEESE_CRACKERS": (G, "CRACKERS/MISC BKD FD", "CHEESE CRACKERS (CHEEZ-ITS/GOL", "Y?Y-"),
    "V_PASTA_SAUCE": (G, "PASTA SAUCE", "MAINSTREAM", "????"),
    "V_WAFFLES": (G, "FRZN BREAKFAST FOODS", "WAFFLES/PANCAKES/FRENCH TOAST", "Y?YY"),
    "V_PREMIUM_COOKIES": (G, "COOKIES/CONES", "PREMIUM COOKIES (EX: PEPPERIDG", "Y?YY"),
    "V_MAC_CHEESE": (G, "DINNER MXS:DRY", "MACARONI & CHEESE DNRS", "Y-Y-"),
    "V_RICE_SIDES": (G, "DRY BN/VEG/POTATO/RICE", "RICE SIDE DISH MIXES DRY", "YY??"),
    "V_NOODLE_SIDES": (G, "DRY BN/VEG/POTATO/RICE", "NOODLE SIDE DISH MIXES", "Y?YY"),
    "V_GRAVY_MIX": (G, "DRY SAUCES/GRAVY", "SAUCE MIXES GRAVY MIXES DRY", "YY??"),
    "V_SALSA_SHELF": (G, "HISPANIC", "MEXICAN SAUCESSALSAPICANTEE", "?-?-"),
    "V_FROZEN_POTATO": (G, "FRZN POTATOES", "FRZN FRENCH FRIES", "???-"),
    "V_PROCESSED_CHEESE_GLUTEN": (G, "CHEESE", "IWS SINGLE CHEESE", "--Y-"),
    "V_TACO_SHELLS": (G, "HISPANIC", "MEXICAN TACO TOSTADO SHELLS", "-?--"),
    "V_REFRIED_BEANS": (G, "HISPANIC", "MEXICAN BEANS REFRIED", "?Y?-"),
    "V_LYSOZYME": (G, "CHEESE", "GRATED CHEESE", "--Y?"),
    "V_RAW_FROZEN_SEAFOOD": ("SEAFOOD", "SEAFOOD - FROZEN", "SEAFOOD-FRZ-RW-ALL", "----"),
    "V_GELATIN_DESSERT": (G, "DRY MIX DESSERTS", "GELATIN", "-Y--"),
    "V_WATER_ICE": (G, "FRZN NOVELTIES/WTR ICE", "WATER ICE", "-???"),
    "V_NATURAL_RAISINS": ("NUTRITION", "DRIED FRUIT", "RAISINS", "--?-"),
    "V_DRIED_PLUMS": ("NUTRITION", "DRIED FRUIT", "DRIED PLUMS", "----"),
    "V_SHORTENING": (G, "SHORTENING/OIL", "SOLID SHORTENING", "-?--"),
    "V_CANNED_YAMS": (G, "VEGETABLES - SHELF STABLE", "POTATOES SWEET", "--?-"),
    "V_AEROSOL_CREAM": (G, "MILK BY-PRODUCTS", "AEROSOL TOPPINGS", "-?Y-"),
    "V_BAKING_COCONUT": (G, "BAKING NEEDS", "COCONUT", "----"),
    "V_CIDER": ("PRODUCE", "PROCESSED", "CIDER", "----"),
    "V_EXTRACTS_PLAIN": (G, "SPICES & EXTRACTS", "PURE EXTRACTS", "----"),
    "V_CANNED_CHILES": (G, "HISPANIC", "MEXICAN PEPPERS CHILIES", "?---"),
    "V_ORIENTAL_VEG": (G, "HISPANIC", "ORIENTAL VEGETABLES", "?---"),
    "V_HISPANIC_SODA": (G, "HISPANIC", "HISPANIC CARBONATED BEVERAGES", "?---"),
    "V_FRUIT_SUNDRIES": (G, "PNT BTR/JELLY/JAMS", "APPLE BUTTER", "----"),
    "V_ELECTROLYTE_DRINK": ("DRUG GM", "INFANT FORMULA", "BABY ISOTONIC DRINKS", "----"),
}
SHORT = dict(zip("GMDE", ("contains_gluten", "contains_meat", "contains_dairy", "contains_egg"), strict=True))


@pytest.fixture(scope="module")
def labels() -> pd.DataFrame:
    frame = pd.DataFrame(
        [c[:3] for c in CASES.values()], columns=["department", "category", "type"], index=list(CASES)
    )
    return label_products(frame)


@pytest.mark.parametrize("rule_id", list(CASES))
def test_shelf_rule_known_answer(labels: pd.DataFrame, rule_id: str) -> None:
    expected = CASES[rule_id][3]
    row = labels.loc[rule_id]
    got = "".join({"yes": "Y", "no": "-", "unknown": "?"}[row[SHORT[a]]] for a in "GMDE")
    assert got == expected, f"{rule_id}: {CASES[rule_id][:3]} -> {got}, expected {expected}"
    assert rule_id in row["diet_rule_ids"].split(",") or rule_id == "V_PASTA_SAUCE"


def test_every_coverage_rule_has_a_note_and_a_known_answer() -> None:
    rules = load_rules()
    added = rules[rules["rule_id"].str.startswith("V_")]
    assert set(added["rule_id"]) == set(CASES)
    assert added["note"].str.len().gt(20).all()


def test_shelf_rules_leave_other_attributes_to_their_owners() -> None:
    """A shelf rule never makes a non-food item food nor touches an attribute it does not name."""
    frame = pd.DataFrame([("DRUG GM", "SHAMPOO", "SHAMPOO")], columns=["department", "category", "type"])
    row = label_products(frame).iloc[0]
    assert row["is_food"] == "no"
    assert set(row[list(DIET_ATTRIBUTES)]) == {"no"}


def test_raw_seafood_rule_leaves_prepared_items_undecided() -> None:
    """A seasoned or sauced item on the raw frozen seafood shelf is not one ingredient: no 'no'."""
    frame = pd.DataFrame(
        [
            ("SEAFOOD", "SEAFOOD - FROZEN", "SEAFOOD-FRZ-RW-ALL", f"National SEAFOOD-FRZ-RW-ALL {word}")
            for word in ("SEASONED", "W/SAUCE")
        ],
        columns=["department", "category", "type", "name"],
    )
    labels = label_products(frame)
    assert (labels[["contains_gluten", "contains_dairy", "contains_egg"]] == "unknown").all().all()
