"""Known answers for the point-in-time no-discount baseline and the visit-trend model."""

import numpy as np
import pandas as pd

from recsys.offers.baseline import _mixture_log_weights, _softmax_rows, point_in_time_baseline, trend_rates


def _inter(rng) -> pd.DataFrame:
    t0 = pd.Timestamp("2024-01-01")
    rows = []
    for c in range(5):
        for b in range(40):
            ts = t0 + pd.Timedelta(hours=float(rng.uniform(0, 24 * 7 * 20)))
            for p in rng.choice(["A", "B", "C"], rng.integers(1, 4)):
                rows.append(
                    {"customer_id": f"c{c}", "product_id": p, "basket_id": f"{c}-{b}", "timestamp": ts}
                )
    return pd.DataFrame(rows).assign(value=1.0, discount=0.0)


def test_point_in_time_baseline_ignores_the_future_and_knows_the_steady_rate():
    products = pd.DataFrame({"product_id": ["A", "B", "C"], "category": ["A", "B", "C"], "department": "D"})
    inter = _inter(np.random.default_rng(1))
    at = pd.Timestamp("2024-04-01")
    ids = np.repeat([f"c{c}" for c in range(5)], 3)
    groups = np.tile(["A", "B", "C"], 5)
    args = (products, ids, groups, np.full(len(ids), at))
    now = point_in_time_baseline(inter, *args)
    later = inter.assign(
        timestamp=inter["timestamp"].where(inter["timestamp"] < at, at + pd.Timedelta(days=9))
    )
    again = point_in_time_baseline(later, *args)
    for col in ("base_trip_rate", "base_in_basket", "deal_share", "visits_recent"):
        assert np.allclose(again[col], now[col])  # events at or after `at` unseen
    # ~2 baskets a week spread evenly: the current rate is near the customer's average, no drop
    assert np.all(np.abs(now["base_trip_rate"] - 2.0) < 0.8) and np.all(now["base_visit_drop"] < 0.3)
    unknown = point_in_time_baseline(inter, products, np.array(["nobody"]), np.array(["A"]), np.array([at]))
    assert unknown["base_trip_rate"].isna().all() and unknown["observed_weeks"].iloc[0] == 0.0


def test_point_in_time_baseline_reports_visit_recency():
    # c0 visits weekly until 6 weeks before `at`, then stops; c1 visits every week up to 2 days before
    products = pd.DataFrame({"product_id": ["A"], "category": ["A"], "department": "D"})
    at = pd.Timestamp("2024-06-01")
    rows = []
    for c, last in (("c0", 6.0), ("c1", 2 / 7)):
        for k in range(12):
            ts = at - pd.Timedelta(weeks=last + k)
            rows.append({"customer_id": c, "product_id": "A", "basket_id": f"{c}-{k}", "timestamp": ts})
    inter = pd.DataFrame(rows).assign(value=1.0, discount=0.0)
    got = point_in_time_baseline(
        inter, products, np.array(["c0", "c1"]), np.array(["A", "A"]), np.full(2, at)
    )
    assert np.allclose(got["weeks_since_visit"], [6.0, 2 / 7])
    assert np.allclose(got["visits_recent"], [0.0, 4.0])  # baskets in the last 4 weeks
    assert got["base_visit_drop"].iloc[0] > got["base_visit_drop"].iloc[1]


def test_trend_rates_follow_a_decline_and_average_a_steady_customer():
    weeks = 26
    steady = np.tile([1.0, 2.0], weeks // 2)  # 1.5 visits a week, no trend
    leaving = np.r_[np.zeros(10), np.full(weeks - 10, 2.0)]  # bin 0 = last week: 2 a week, then none
    rng = np.random.default_rng(0)
    crowd = rng.poisson(1.5, (200, weeks)).astype(float)  # a steady population for the prior
    counts = np.vstack([steady, leaving, crowd])
    now, normal, drop, prior = trend_rates(counts, np.ones_like(counts, dtype=bool))
    assert abs(now[0] - 1.5) < 0.2 and abs(normal[0] - 1.5) < 0.2 and drop[0] < 0.2
    assert now[1] < 0.25 * normal[1] and drop[1] > 0.7 and abs(normal[1] - 2.0) < 0.4
    # the same prior passed back gives the same answer (training offers and candidates share it)
    again = trend_rates(counts[:2], np.ones((2, weeks), dtype=bool), prior=prior)
    assert np.allclose(again[0], now[:2]) and np.allclose(again[2], drop[:2])


def test_mixture_weights_match_the_textbook_em():
    # EM on mixture weights written plainly: w <- mean over rows of softmax(loglik + log w)
    rng = np.random.default_rng(3)
    loglik = rng.normal(0.0, 20.0, (300, 12))
    log_w = np.full(12, -np.log(12))
    for _ in range(50):
        log_w = np.log(_softmax_rows(loglik + log_w).mean(axis=0) + 1e-12)
    np.testing.assert_allclose(np.exp(_mixture_log_weights(loglik, 50)), np.exp(log_w), atol=1e-12)
