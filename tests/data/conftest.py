"""A tiny canonical data set every data-layer test starts from."""

from __future__ import annotations

import pandas as pd
import pytest

from recsys.data.schema import DIET_ATTRIBUTES


def canonical_tables() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3"],
            "consent_personalisation": ["true", "true", "false"],
            "consent_marketing": ["true", "false", "false"],
            "diet_exclusions": ["gluten", "", "vegan"],
        }
    )
    products = pd.DataFrame(
        {
            "product_id": ["p1", "p2", "p3"],
            "name": ["White bread", "Gluten-free bread", "Whole milk"],
            "department": ["PASTRY", "PASTRY", "GROCERY"],
            "category": ["BREAD", "BREAD", "FLUID MILK PRODUCTS"],
            "type": ["BREAD:WHITE", "GLUTEN FREE BREAD", "MILK"],
            "brand": ["Private", "National", "Private"],
            "price": ["1.99", "4.50", "2.10"],
            "package_size": ["20 OZ", "12 OZ", "1 GA"],
            "is_food": ["yes", "yes", "yes"],
            **{a: ["unknown", "unknown", "unknown"] for a in DIET_ATTRIBUTES},
            "co2e_per_kg": ["1.57", "", "3.15"],
        }
    )
    products["contains_gluten"] = ["yes", "no", "no"]
    interactions = pd.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c2", "c3"],
            "product_id": ["p2", "p3", "p1", "p1", "p3"],
            "timestamp": [
                "2024-01-02T10:00:00",
                "2024-01-09T10:00:00",
                "2024-01-03T09:00:00",
                "2024-02-01T09:00:00",
                "2024-01-05T12:00:00",
            ],
            "quantity": ["1", "2", "1", "1", "1"],
            "value": ["4.50", "4.20", "1.99", "1.99", "2.10"],
            "discount": ["0", "0.5", "0", "0", "0"],
            "channel": ["store", "app", "store", "online", "store"],
            "basket_id": ["b1", "b2", "b3", "b4", "b5"],
        }
    )
    return {"customers": customers, "products": products, "interactions": interactions}


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return canonical_tables()


def write_csv_dir(tables: dict[str, pd.DataFrame], directory) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_csv(directory / f"{name}.csv", index=False)
