"""Lifecycle metrics on hand-made interaction tables with obvious answers."""

import numpy as np
import pandas as pd

from recsys.offers.lifecycle import lifecycle_metrics

AS_OF = pd.Timestamp("2024-07-01")


def _visits(customer: str, per_week_base: int, per_week_recent: int, weeks: int = 26, recent: int = 4):
    rows = []
    for w in range(weeks):
        start = AS_OF - pd.Timedelta(weeks=weeks - w)
        n = per_week_recent if w >= weeks - recent else per_week_base
        for i in range(n):
            ts = start + pd.Timedelta(days=2 * i + 1, hours=10)  # a Tue/Thu/... at 10:00
            rows.append((customer, f"{customer}-{w}-{i}", ts))
    return rows


def _table(rows, discount_every: int = 0) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["customer_id", "basket_id", "timestamp"])
    df["product_id"] = "P1"
    df["value"] = 10.0
    df["discount"] = 0.0
    if discount_every:
        df.loc[::discount_every, "discount"] = 1.0
    return df


def test_halving_visits_is_dropping_and_steady_is_stable():
    df = _table(_visits("half", 2, 1) + _visits("steady", 2, 2) + _visits("up", 1, 3))
    m = lifecycle_metrics(df, AS_OF, churn="heuristic")
    assert m.loc["half", "segment"] == "dropping"
    assert m.loc["steady", "segment"] == "stable"
    assert m.loc["up", "segment"] == "growing"
    assert m.loc["half", "visit_change"] < -0.3
    assert m.loc["half", "churn_risk"] > m.loc["steady", "churn_risk"]


def test_lapsed_rfm_deal_proneness_and_send_time():
    rows = _visits("gone", 2, 0, recent=10) + _visits("deal", 1, 1)
    df = _table(rows)
    df.loc[df["customer_id"] == "deal", "discount"] = np.where(
        np.arange((df["customer_id"] == "deal").sum()) % 2 == 0, 1.0, 0.0
    )
    m = lifecycle_metrics(df, AS_OF, churn="heuristic")
    assert m.loc["gone", "segment"] == "lapsed"
    assert m.loc["deal", "deal_proneness"] == 0.5
    assert m.loc["gone", "deal_proneness"] == 0.0
    assert m.loc["deal", "avg_order_value"] == 10.0
    assert m.loc["deal", "preferred_hour"] == 10
    assert m.loc["deal", "best_send_time"].endswith("08:00")
    assert m.loc["gone", "recency_days"] > 60
    assert m.loc["deal", "clv"] > 0
