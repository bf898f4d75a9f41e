"""Human-readable summary of a prepared data directory (printed by `recsys data prepare`)."""

from __future__ import annotations

import pandas as pd

from recsys.diet.labeler import attribute_coverage


def summarize(tables: dict[str, pd.DataFrame]) -> str:
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
