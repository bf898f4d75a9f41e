"""Tiny hand-made data directories for training tests: seconds to build, known structure.

Customers re-buy a few personal staples every week (so buy-again beats popularity), products carry
diet attributes (some 'unknown', which the fail-closed engine must exclude) and CO2e values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.io import write_tables
from recsys.data.schema import DIET_ATTRIBUTES

START = pd.Timestamp("2024-01-01")


def _products(n_products: int, rng: np.random.Generator) -> pd.DataFrame:
    values = np.array(["yes", "no", "unknown"])
    rows = []
    for i in range(n_products):
        attrs = {a: values[rng.choice(3, p=[0.25, 0.65, 0.10])] for a in DIET_ATTRIBUTES}
        rows.append(
            {
                "product_id": f"P{i:04d}",
                "name": f"product {i}",
                "department": ["GROCERY", "PRODUCE", "MEAT", "DAIRY"][i % 4],
                "category": f"CAT{i % 10}",
                "type": None,
                "brand": None,
                "price": float(1 + i % 7),
                "package_size": None,
                "is_food": "yes",
                **attrs,
                "co2e_per_kg": float(rng.choice([0.5, 1.6, 3.2, 10.0, 24.0, 100.0])),
            }
        )
    return pd.DataFrame(rows)


def make_tables(
    n_customers: int = 60, n_products: int = 80, weeks: int = 8, seed: int = 0
) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    customers = pd.DataFrame(
        {
            "customer_id": [f"C{u:04d}" for u in range(n_customers)],
            "consent_personalisation": True,
            "consent_marketing": True,
        }
    )
    popularity = rng.dirichlet(np.full(n_products, 0.3))
    lines = []
    for u in range(n_customers):
        staples = rng.choice(n_products, size=4, replace=False)
        visits_per_week = 1 + u % 3
        for week in range(weeks):
            for visit in range(visits_per_week):
                ts = START + pd.Timedelta(days=7 * week + 2 * visit, hours=int(rng.integers(8, 20)))
                basket = f"B{u:04d}-{week:02d}-{visit}"
                bought = set(staples[rng.random(4) < 0.7]) | set(rng.choice(n_products, 2, p=popularity))
                for item in bought:
                    lines.append((f"C{u:04d}", f"P{item:04d}", ts, 1.0, 2.0, 0.0, "store", basket))
    interactions = pd.DataFrame(
        lines,
        columns=[
            "customer_id",
            "product_id",
            "timestamp",
            "quantity",
            "value",
            "discount",
            "channel",
            "basket_id",
        ],
    )
    return {"customers": customers, "products": _products(n_products, rng), "interactions": interactions}


def write_tiny(out: Path, **kwargs) -> Path:
    write_tables(make_tables(**kwargs), Path(out), {"source": "tiny-test"})
    return Path(out)
