"""Tiny hand-built datasets with known answers (fast; no real data)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.data.dataset import Dataset

T0 = pd.Timestamp("2024-01-01")


def make_dataset(rows: list[tuple[str, str, float]], n_items: int, n_users: int | None = None) -> Dataset:
    """rows = (customer, product, day offset); every row is its own basket."""
    users = sorted({r[0] for r in rows}, key=lambda u: int(u[1:]))
    if n_users is not None:
        users = [f"u{i}" for i in range(n_users)]
    items = [f"i{j}" for j in range(n_items)]
    customers = pd.DataFrame(
        {"customer_id": users, "consent_personalisation": True, "consent_marketing": True}
    )
    products = pd.DataFrame(
        {
            "product_id": items,
            "name": items,
            "department": ["A" if j < n_items // 2 else "B" for j in range(n_items)],
            "category": [f"c{j // 3}" for j in range(n_items)],
            "contains_meat": ["yes" if j % 4 == 0 else "no" for j in range(n_items)],
        }
    )
    inter = pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "product_id": [r[1] for r in rows],
            "timestamp": [T0 + pd.Timedelta(days=float(r[2])) for r in rows],
            "quantity": 1.0,
            "value": 1.0,
            "discount": 0.0,
            "channel": "store",
            "basket_id": [f"b{i}" for i in range(len(rows))],
        }
    )
    return Dataset.from_tables({"customers": customers, "products": products, "interactions": inter})


def block_rows(n_users: int = 40, n_items: int = 12, seed: int = 0) -> list[tuple[str, str, float]]:
    """Two blocks: even users buy items 0..5, odd users items 6..11, each user skipping one item of
    their block (the obvious next item), repeated over ~120 days."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    rows = []
    for u in range(n_users):
        block = range(0, half) if u % 2 == 0 else range(half, n_items)
        missing = block[u // 2 % half]
        for j in block:
            if j == missing:
                continue
            for day in sorted(rng.choice(120, size=4, replace=False)):
                rows.append((f"u{u}", f"i{j}", float(day)))
    return rows


def missing_item(u: int, n_items: int = 12) -> str:
    half = n_items // 2
    start = 0 if u % 2 == 0 else half
    return f"i{start + (u // 2 % half)}"


@pytest.fixture(scope="session")
def block_dataset() -> Dataset:
    return make_dataset(block_rows(), 12)
