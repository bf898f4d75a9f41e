"""Known answers for the no-discount purchase baseline."""

import numpy as np
import pandas as pd

from recsys.offers.features import organic_interactions, purchase_baseline


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


def test_purchase_baseline_known_answer():
    as_of = pd.Timestamp("2024-07-01")
    products = pd.DataFrame({"product_id": ["A", "B"], "category": ["A", "B"], "department": ["D", "D"]})
    # one basket a week for 10 weeks, each with one A line and one B line
    inter = pd.DataFrame(_lines("c1", [["A", "B"]] * 10, [i + 0.5 for i in range(10)], as_of))
    base = purchase_baseline(inter, products, as_of, prior_lines=0.0)
    row = base.loc[("c1", "A")]
    assert np.isclose(row["base_trip_rate"], 1.0)  # steady weekly visits -> 1 trip a week
    assert np.isclose(row["base_in_basket"], 1.0 - np.exp(-2.0 * 0.5))  # 2 lines/basket x half in A
    assert np.isclose(row["base_normal_rate"], 1.0)


def test_recency_weighting_sees_a_churner_fade():
    as_of = pd.Timestamp("2024-07-01")
    products = pd.DataFrame({"product_id": ["A"], "category": ["A"], "department": ["D"]})
    # weekly visits from 20 to 6 weeks ago, nothing since
    inter = pd.DataFrame(_lines("c1", [["A"]] * 15, [w + 0.5 for w in range(6, 21)], as_of))
    base = purchase_baseline(inter, products, as_of)
    assert base.loc[("c1", "A"), "base_trip_rate"] < 0.35 * base.loc[("c1", "A"), "base_normal_rate"]


def test_organic_interactions_drop_redemptions():
    t = pd.Timestamp("2024-05-01 10:00")
    inter = pd.DataFrame(
        {"customer_id": ["c1", "c1", "c2"], "timestamp": [t, t + pd.Timedelta(hours=1), t], "value": 1.0}
    )
    offers = pd.DataFrame({"customer_id": ["c1", "c1"], "redeemed_at": [t, pd.NaT]})
    out = organic_interactions(inter, offers)
    assert len(out) == 2 and not ((out["customer_id"] == "c1") & (out["timestamp"] == t)).any()
    assert organic_interactions(inter, None) is inter
