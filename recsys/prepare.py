"""Preparing a data directory: load a source, derive diet attributes, validate, write, summarise.

Diet labelling is its own step here, so loaders (`recsys.data`) stay free of diet rules and the
rules (`recsys.diet`) stay free of loaders; the CLI and the training pipeline both prepare data
through these functions.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.data.io import connect, read_manifest, sql_list, table_files, write_tables
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


def summarize(data_dir: Path) -> str:
    """Human-readable summary of a prepared data directory (printed by `recsys data prepare`); the
    purchase lines are aggregated by DuckDB over their Parquet file(s), never loaded whole."""
    lines = ["Tables:"]
    for name, rows in read_manifest(data_dir)["tables"].items():
        lines.append(f"  {name:<18} {rows:>10,} rows")
    inter = f"read_parquet({sql_list(table_files(data_dir, 'interactions'))})"
    con = connect()
    n, customers, products, baskets, first, last, discounted = con.execute(
        "SELECT count(*), count(DISTINCT customer_id), count(DISTINCT product_id), count(DISTINCT basket_id),"
        f" min(timestamp), max(timestamp), avg((discount > 0)::DOUBLE) FROM {inter}"
    ).fetchone()
    if n:
        lines += [
            "",
            f"Interactions: {customers:,} customers with purchases, {products:,} products bought, "
            f"{baskets:,} baskets, {first:%Y-%m-%d} .. {last:%Y-%m-%d}",
            f"Lines bought on discount: {discounted:.1%}",
        ]
    per_product = con.execute(f"SELECT product_id, count(*) AS n FROM {inter} GROUP BY product_id").df()
    products_table = pd.read_parquet(table_files(data_dir, "products")[0])
    coverage = attribute_coverage(products_table, per_product.set_index("product_id")["n"])
    lines += ["", "Diet-attribute coverage (products | purchase lines):", coverage.to_string()]
    return "\n".join(lines)
