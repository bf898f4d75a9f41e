"""Known answers for product groups, the spend history per group and organic interactions."""

import numpy as np
import pandas as pd

from recsys.offers.groups import group_history, group_value, organic_interactions


def _lines(customer, group_of_line, weeks_ago, as_of):
    rows = []
    for b, (groups, w) in enumerate(zip(group_of_line, weeks_ago, strict=True)):
        for g in groups:
            rows.append(
                {
                    "customer_id": customer,
                    "product_id": g,
                    "basket_id": f"{customer}-{b}",
                    "timestamp": as_of - pd.Timedelta(weeks=w) + pd.Timedelta(hours=1),
                    "value": 1.0,
                    "discount": 0.0,
                    "quantity": 1.0,
                }
            )
    return rows


def test_group_history_and_value_known_answer():
    as_of = pd.Timestamp("2024-07-01")
    products = pd.DataFrame({"product_id": ["A", "B"], "category": ["A", None], "department": ["D", "E"]})
    # one basket a week for 10 weeks, each with one A line and one B line; B's group is its department
    inter = pd.DataFrame(_lines("c1", [["A", "B"]] * 10, [i + 0.5 for i in range(10)], as_of))
    hist = group_history(inter, products, as_of, lookback_weeks=26, recent_weeks=4)
    assert set(hist.index) == {("c1", "A"), ("c1", "E")}
    row = hist.loc[("c1", "A")]
    assert row["grp_baskets"] == 10 and row["grp_recent_baskets"] == 4 and row["grp_share"] == 0.5
    assert row["grp_value"] == 1.0 and np.isclose(row["weeks_observed"], 9.5 - 1 / 168)
    # a customer's own mean per basket, shrunk towards the group's with 3 pseudo-baskets
    pairs = pd.DataFrame({"customer_id": ["c1", "new"], "product_group": ["A", "A"]})
    assert np.allclose(group_value(hist, pairs, prior_weight=3.0), [1.0, 1.0])


def test_organic_interactions_drop_redemptions():
    t = pd.Timestamp("2024-05-01 10:00")
    inter = pd.DataFrame(
        {"customer_id": ["c1", "c1", "c2"], "timestamp": [t, t + pd.Timedelta(hours=1), t], "value": 1.0}
    )
    offers = pd.DataFrame({"customer_id": ["c1", "c1"], "redeemed_at": [t, pd.NaT]})
    out = organic_interactions(inter, offers)
    assert len(out) == 2 and not ((out["customer_id"] == "c1") & (out["timestamp"] == t)).any()
    assert organic_interactions(inter, None) is inter
