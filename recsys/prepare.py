"""Preparing a data directory: load a source, derive diet attributes, validate, write, summarise.

Diet labelling is its own step here, so loaders (`recsys.data`) stay free of diet rules and the
rules (`recsys.diet`) stay free of loaders; the CLI and the training pipeline both prepare data
through these functions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.data.io import write_tables
from recsys.data.progress import Progress
from recsys.data.schema import DIET_ATTRIBUTES
from recsys.diet.labeler import attribute_coverage, label_products

#: Steps `prepare_completejourney` reports (the loader's own steps plus labelling and writing).
COMPLETEJOURNEY_STEPS = 8


def label_diet(products: pd.DataFrame) -> pd.DataFrame:
    """The products table with is_food, every diet attribute and CO2e derived by the rule labeler."""
    labels = label_products(products)
    out = products.copy()
    out["is_food"] = labels["is_food"]
    for attr in DIET_ATTRIBUTES:
        out[attr] = labels[attr]
    out["co2e_per_kg"] = labels["co2e_per_kg"].astype("float64")
    return out


def prepare_completejourney(out: Path, progress: Progress | None = None):
    """Complete Journey -> labelled, validated tables written to `out`; returns (tables, report)."""
    from recsys.data.completejourney import load_completejourney

    progress = progress or Progress(COMPLETEJOURNEY_STEPS, enabled=False)
    tables, report = load_completejourney(progress)
    with progress.step("deriving diet attributes and CO2e"):
        tables["products"] = label_diet(tables["products"])
    with progress.step(f"validating and writing {out}"):
        write_tables(tables, Path(out), {"source": "completejourney"})
    return tables, report


def summarize(tables: dict[str, pd.DataFrame]) -> str:
    """Human-readable summary of prepared tables (printed by `recsys data prepare`)."""
    inter = tables["interactions"]
    lines = ["Tables:"]
    for name, df in tables.items():
        lines.append(f"  {name:<18} {len(df):>10,} rows")
    if len(inter):
        lines += [
            "",
            f"Interactions: {inter['customer_id'].nunique():,} customers with purchases, "
            f"{inter['product_id'].nunique():,} products bought, {inter['basket_id'].nunique():,} baskets, "
            f"{inter['timestamp'].min():%Y-%m-%d} .. {inter['timestamp'].max():%Y-%m-%d}",
            f"Lines bought on discount: {(inter['discount'] > 0).mean():.1%}",
        ]
    coverage = attribute_coverage(tables["products"], inter)
    lines += ["", "Diet-attribute coverage (products | purchase lines):", coverage.to_string()]
    return "\n".join(lines)
