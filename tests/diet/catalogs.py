"""Small hand-made and random catalogs shared by the diet, ranking and recipe tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import strategies as st

from recsys.data.dataset import Dataset
from recsys.data.schema import DIET_ATTRIBUTES
from recsys.diet.profiles import NAMED_DIETS, DietProfile

TRISTATE = st.sampled_from(["yes", "no", "unknown"])

#: category -> types, in Complete Journey words, small enough for hypothesis to cover.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "BAKED BREAD/BUNS/ROLLS": ("MAINSTREAM WHITE BREAD", "GLUTEN FREE BREAD"),
    "BEEF": ("LEAN", "PRIMAL"),
    "CHEESE": ("SHREDDED CHEESE", "VEGAN CHEESE ALTERNATIVE"),
    "VEGETABLES - ALL OTHERS": ("ONIONS", "GARLIC"),
    "PASTA": ("DRY PASTA",),
    "LAUNDRY DETERGENTS": ("LIQUID",),
}


def product_row(
    product_id: str,
    category: str,
    type_: str,
    co2e: float = float("nan"),
    is_food: str = "yes",
    **attrs: str,
) -> dict:
    """A products-table row; attributes default to 'no' ('unknown' must be asked for explicitly)."""
    row = {
        "product_id": product_id,
        "name": f"{type_} {product_id}",
        "department": "GROCERY",
        "category": category,
        "type": type_,
        "brand": "National",
        "price": 2.0,
        "package_size": "1 LB",
        "is_food": is_food,
        "co2e_per_kg": co2e,
    }
    row.update({a: "no" for a in DIET_ATTRIBUTES})
    row.update(attrs)
    return row


def make_dataset(products: pd.DataFrame, purchases: list[tuple[str, str]], n_customers: int = 3) -> Dataset:
    """Dataset over `products` with (customer_id, product_id) purchase lines, one basket per line."""
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n_customers)],
            "consent_personalisation": True,
            "consent_marketing": True,
        }
    )
    start = pd.Timestamp("2017-01-02")
    inter = pd.DataFrame(
        {
            "customer_id": [c for c, _ in purchases],
            "product_id": [p for _, p in purchases],
            "timestamp": [start + pd.Timedelta(days=i) for i in range(len(purchases))],
            "quantity": 1.0,
            "value": 2.0,
            "discount": 0.0,
            "channel": "store",
            "basket_id": [f"b{i}" for i in range(len(purchases))],
        }
    )
    return Dataset.from_tables({"customers": customers, "products": products, "interactions": inter})


@st.composite
def catalogs(draw, min_items: int = 4, max_items: int = 30) -> pd.DataFrame:
    """Random products with random tristate attributes (unknown included) and CO2e (some NaN)."""
    n = draw(st.integers(min_items, max_items))
    rows = []
    for i in range(n):
        category = draw(st.sampled_from(sorted(CATEGORIES)))
        type_ = draw(st.sampled_from(CATEGORIES[category]))
        attrs = {a: draw(TRISTATE) for a in DIET_ATTRIBUTES}
        co2e = draw(st.one_of(st.just(float("nan")), st.floats(0.1, 100.0)))
        rows.append(product_row(f"p{i}", category, type_, co2e, is_food=draw(TRISTATE), **attrs))
    return pd.DataFrame(rows)


@st.composite
def purchases(draw, products: pd.DataFrame, n_customers: int = 3) -> list[tuple[str, str]]:
    ids = products["product_id"].tolist()
    lines = draw(
        st.lists(st.tuples(st.integers(0, n_customers - 1), st.sampled_from(ids)), min_size=1, max_size=40)
    )
    return [(f"c{c}", p) for c, p in lines]


profiles = st.builds(
    DietProfile,
    exclusions=st.frozensets(st.sampled_from(DIET_ATTRIBUTES), max_size=4),
    preferences=st.dictionaries(st.sampled_from(DIET_ATTRIBUTES), st.floats(0.05, 1.0), max_size=2),
)
diet_names = st.lists(st.sampled_from(sorted(NAMED_DIETS) + ["gluten", "nuts", "sugar", "meat"]), max_size=3)


def violates(products: pd.DataFrame, item_idx: np.ndarray | list[int], profile: DietProfile) -> list[int]:
    """Independent oracle (not the engine): items whose attribute is not a clear 'no' under an exclusion.

    Only a 'no' is clear, for food and non-food alike.
    """
    bad = []
    for i in item_idx:
        row = products.iloc[int(i)]
        for a in profile.exclusions:
            value = row[a]
            if value == "no":
                continue
            bad.append(int(i))
            break
    return bad
