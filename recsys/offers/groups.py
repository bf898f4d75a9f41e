"""Product groups and each customer's spend history per group: what an offer is about.

An offer is on a product group (the category; the department where the category is missing), so the
planner reads the purchase history per customer x group: which groups a customer buys (the
candidates), their share of the customer's spend (relevance) and the spend a purchase brings (the
value a discount is paid on). Redemptions of logged offers are not the customer's habit and are
removed wherever a no-discount baseline is estimated (`organic_interactions`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def product_groups(products: pd.DataFrame) -> pd.Series:
    """product_id -> product group (the category; department where the category is missing)."""
    group = products["category"].astype(object).where(products["category"].notna(), products["department"])
    return pd.Series(group.to_numpy(), index=products["product_id"].to_numpy(), name="product_group")


def organic_interactions(interactions: pd.DataFrame, offers: pd.DataFrame | None) -> pd.DataFrame:
    """The interactions without the lines that redeemed a logged offer (same customer and timestamp as
    an offer's `redeemed_at`): those purchases were caused by the offer, not by the customer's habit,
    so they would inflate the no-discount baseline of exactly the pairs that were offered before."""
    if offers is None or offers.empty or "redeemed_at" not in offers:
        return interactions
    red = offers[offers["redeemed_at"].notna()]
    if red.empty:
        return interactions
    key = pd.MultiIndex.from_arrays([interactions["customer_id"], interactions["timestamp"]])
    drop = key.isin(pd.MultiIndex.from_arrays([red["customer_id"], red["redeemed_at"]]))
    return interactions[~drop]


def group_history(
    interactions: pd.DataFrame,
    products: pd.DataFrame,
    as_of: pd.Timestamp,
    lookback_weeks: int = 26,
    recent_weeks: int = 8,
) -> pd.DataFrame:
    """One row per (customer_id, product_group) bought in the `lookback_weeks` before `as_of`.

    Columns: grp_baskets / grp_recent_baskets (baskets containing the group, whole lookback / last
    `recent_weeks`), grp_spend, grp_share (of the customer's spend), grp_value (average spend on the
    group per basket that has it), grp_deal (share of that spend bought on discount), grp_recency_days,
    weeks_observed (weeks of the lookback the customer was known, at least 1).
    """
    as_of = pd.Timestamp(as_of)
    start = as_of - pd.Timedelta(weeks=lookback_weeks)
    ts = interactions["timestamp"]
    inter = interactions[(ts >= start) & (ts < as_of)]
    groups = product_groups(products)
    frame = pd.DataFrame(
        {
            "customer_id": inter["customer_id"].to_numpy(),
            "product_group": inter["product_id"].map(groups).to_numpy(),
            "basket_id": inter["basket_id"].to_numpy(),
            "timestamp": inter["timestamp"].to_numpy(),
            "value": inter["value"].to_numpy(float),
            "deal": inter["value"].where(inter["discount"] > 0, 0.0).to_numpy(float),
        }
    ).dropna(subset=["product_group"])
    per_basket = (
        frame.groupby(["customer_id", "product_group", "basket_id"], sort=False)
        .agg(timestamp=("timestamp", "min"), value=("value", "sum"), deal=("deal", "sum"))
        .reset_index()
    )
    recent = per_basket["timestamp"] >= as_of - pd.Timedelta(weeks=recent_weeks)
    per_basket["recent"] = recent.astype(int)
    hist = per_basket.groupby(["customer_id", "product_group"]).agg(
        grp_baskets=("basket_id", "size"),
        grp_recent_baskets=("recent", "sum"),
        grp_spend=("value", "sum"),
        grp_deal_spend=("deal", "sum"),
        grp_last=("timestamp", "max"),
    )
    total = hist.groupby(level="customer_id")["grp_spend"].transform("sum")
    hist["grp_share"] = (hist["grp_spend"] / total.where(total > 0)).fillna(0.0)
    hist["grp_value"] = hist["grp_spend"] / hist["grp_baskets"]
    hist["grp_deal"] = (hist["grp_deal_spend"] / hist["grp_spend"].where(hist["grp_spend"] > 0)).fillna(0.0)
    hist["grp_recency_days"] = (as_of - hist["grp_last"]).dt.total_seconds() / 86400.0
    first = frame.groupby("customer_id")["timestamp"].min()
    weeks = ((as_of - first).dt.total_seconds() / 604800.0).clip(lower=1.0, upper=float(lookback_weeks))
    hist["weeks_observed"] = hist.index.get_level_values("customer_id").map(weeks).to_numpy()
    return hist.drop(columns=["grp_deal_spend", "grp_last"])


def group_value(history: pd.DataFrame, pairs: pd.DataFrame, prior_weight: float = 3.0) -> np.ndarray:
    """Expected spend on the group when the customer buys from it: their own average per basket,
    shrunk towards the group's average with `prior_weight` pseudo-baskets (few baskets -> noisy mean)."""
    group_mean = (
        history["grp_spend"].groupby(level="product_group").sum()
        / history["grp_baskets"].groupby(level="product_group").sum()
    )
    overall = float(history["grp_spend"].sum() / max(history["grp_baskets"].sum(), 1))
    idx = pd.MultiIndex.from_frame(pairs[["customer_id", "product_group"]])
    own = history.reindex(idx)
    n = own["grp_baskets"].fillna(0.0).to_numpy()
    prior = pairs["product_group"].map(group_mean).fillna(overall).to_numpy(float)
    mean = own["grp_value"].fillna(0.0).to_numpy()
    return (n * mean + prior_weight * prior) / (n + prior_weight)


def group_margin(
    product_group: pd.Series, margin: float | dict[str, float], default: float = 0.3
) -> np.ndarray:
    """The retailer's margin rate per row: one rate for every group, or a mapping group -> rate
    (`default` for groups it does not name)."""
    if isinstance(margin, dict):
        return product_group.map(margin).fillna(default).to_numpy(float)
    return np.full(len(product_group), float(margin))
