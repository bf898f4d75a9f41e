"""Known answers for the structural uplift model, the point-in-time baseline and the refill pass."""

import numpy as np
import pandas as pd

from recsys.offers.features import point_in_time_baseline, purchase_baseline, trend_rates
from recsys.offers.optimize import allocate, refill
from recsys.offers.uplift import OffsetHillGLM, StructuralResponse, hill_basis, shrink_factor

LADDER = np.array([0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30])


def test_offset_glm_recovers_known_parameters_and_is_monotone():
    rng = np.random.default_rng(0)
    n = 30000
    z = rng.normal(size=(n, 2))
    offset = rng.normal(-1.5, 1.0, n)
    level = rng.choice(LADDER, n)
    halves = (0.05, 0.2)
    truth = OffsetHillGLM(halves)
    truth.theta_ = np.array([0.2, 0.5, 1.0, -0.5, 0.0, -0.5, 0.8])  # c, (a_1, b_1), (a_2, b_2)
    y = (rng.random(n) < truth.predict(offset, z, level)).astype(float)
    fit = OffsetHillGLM(halves, l2=1e-3).fit(offset, z, level, y, rng.uniform(0.5, 1.5, n))
    assert fit.converged_
    assert np.max(np.abs(fit.theta_ - truth.theta_)) < 0.45
    assert abs(fit.theta_[0] - 0.2) < 0.1  # the calibration intercept
    grid = np.repeat(LADDER[None, :], 500, axis=0).ravel()
    zz, oo = np.repeat(z[:500], len(LADDER), axis=0), np.repeat(offset[:500], len(LADDER))
    got = fit.predict(oo, zz, grid).reshape(500, -1)
    want = truth.predict(oo, zz, grid).reshape(500, -1)
    assert np.max(np.abs(got - want)) < 0.07 and np.mean(np.abs(got - want)) < 0.015
    assert np.all(np.diff(got, axis=1) >= 0)  # monotone in the level by construction
    assert np.all(fit.heights(z) >= 0)
    assert np.allclose(hill_basis(np.array([0.0]), halves), 0.0)  # no uplift without a discount


def test_point_in_time_baseline_matches_purchase_baseline_and_ignores_the_future():
    rng = np.random.default_rng(1)
    products = pd.DataFrame({"product_id": ["A", "B", "C"], "category": ["A", "B", "C"], "department": "D"})
    t0 = pd.Timestamp("2024-01-01")
    rows = []
    for c in range(5):
        for b in range(40):
            ts = t0 + pd.Timedelta(hours=float(rng.uniform(0, 24 * 7 * 20)))
            for p in rng.choice(["A", "B", "C"], rng.integers(1, 4)):
                rows.append(
                    {
                        "customer_id": f"c{c}",
                        "product_id": p,
                        "basket_id": f"{c}-{b}",
                        "timestamp": ts,
                        "value": 1.0,
                        "discount": 0.0,
                    }
                )
    inter = pd.DataFrame(rows)
    at = pd.Timestamp("2024-04-01")
    ref = purchase_baseline(inter, products, at).reset_index()
    got = point_in_time_baseline(
        inter,
        products,
        ref["customer_id"].to_numpy(),
        ref["product_group"].to_numpy(),
        np.full(len(ref), at),
        trend="recency",
    )
    for col in ("base_trip_rate", "base_normal_rate"):
        assert np.allclose(got[col], ref[col])
    # the in-basket share differs only through the population prior (whole history vs lookback)
    assert np.allclose(got["base_in_basket"], ref["base_in_basket"], atol=0.02)
    later = inter.assign(
        timestamp=inter["timestamp"].where(inter["timestamp"] < at, at + pd.Timedelta(days=9))
    )
    args = (products, ref["customer_id"].to_numpy(), ref["product_group"].to_numpy(), np.full(len(ref), at))
    for trend in ("recency", "changepoint"):
        now, again = (point_in_time_baseline(x, *args, trend=trend) for x in (inter, later))
        assert np.allclose(again["base_trip_rate"], now["base_trip_rate"])  # events at or after `at` unseen


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


def test_refill_spends_leftover_without_exceeding_budget():
    profit = np.array([[0.0, 5.0], [0.0, 4.0], [0.0, 1.0], [0.0, 0.5]])
    cost = np.array([[0.0, 6.0], [0.0, 5.0], [0.0, 1.0], [0.0, 1.0]])
    customer = np.array([0, 1, 2, 3])
    alloc = allocate(profit, cost, customer, 7.0, 1)
    out = refill(profit, cost, customer, 7.0, 1, None, alloc)
    assert out.cost <= 7.0 and out.profit >= alloc.profit
    assert alloc.cost == 1.0  # the Lagrangian plan + prefix fill leave 6 of the 7 unspent
    # refill adds the best profit-per-cost move that still fits (offer 0 costs 6.0 > 7 x (1 - 1e-12) - 1)
    assert out.cost == 6.0 and out.profit == 5.0 and list(out.choice) == [-1, 1, 1, -1]


def test_free_offset_coefficient_and_hinge_are_recovered():
    # true baseline logit = -0.3 + 0.7 x offset + 0.4 x max(offset + 1, 0): a diluted, bent offset
    rng = np.random.default_rng(2)
    n = 40000
    z = rng.normal(size=(n, 1))
    offset = rng.normal(-1.5, 1.2, n)
    level = rng.choice(LADDER, n)
    truth = OffsetHillGLM((0.1,), link="exp", offset_coef=True, knots=(-1.0,))
    truth.theta_ = np.array([-0.3, 0.7, 0.4, 0.0, 0.5])  # c, gamma, d, a, b
    assert truth.gamma_ == 0.7
    y = (rng.random(n) < truth.predict(offset, z, level)).astype(float)
    fit = OffsetHillGLM((0.1,), link="exp", l2=1e-3, offset_coef=True, knots=(-1.0,)).fit(offset, z, level, y)
    assert np.max(np.abs(fit.theta_ - truth.theta_)) < 0.1
    # pinned at 1, the same data give a different (biased) baseline and uplift
    fixed = OffsetHillGLM((0.1,), link="exp", l2=1e-3).fit(offset, z, level, y)
    assert np.max(np.abs(fixed.base_logit(offset) - truth.base_logit(offset))) > 0.5
    # extra linear baseline terms: coefficient recovered, no effect on rows where they are 0
    x = rng.normal(size=n)
    y2 = (rng.random(n) < _sig(truth.base_logit(offset) - 0.5 * x + truth.uplift_logit(z, level))).astype(
        float
    )
    fit2 = OffsetHillGLM((0.1,), link="exp", l2=1e-3, offset_coef=True, knots=(-1.0,)).fit(
        offset, z, level, y2, extra=x
    )
    assert fit2.n_extra_ == 1 and abs(fit2.theta_[3] + 0.5) < 0.08


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_shrink_factor_known_answer():
    rng = np.random.default_rng(3)
    n = 60000
    base = rng.normal(-1.0, 1.0, n)
    uplift = rng.uniform(0.0, 2.0, n)
    y = (rng.random(n) < _sig(base + 0.6 * uplift)).astype(float)
    assert abs(shrink_factor(base, uplift, y) - 0.6) < 0.05
    y1 = (rng.random(n) < _sig(base + uplift)).astype(float)
    assert abs(shrink_factor(base, uplift, y1) - 1.0) < 0.05
    assert shrink_factor(base, uplift, np.zeros(n)) == 0.0  # clipped: never a negative uplift


def test_structural_response_applies_a_fixed_shrink_to_the_uplift_logit():
    rng = np.random.default_rng(4)
    n = 5000
    feats = pd.DataFrame(
        {
            "offset": rng.normal(-1.0, 1.0, n),
            "deal_proneness": rng.uniform(0, 1, n),
            "deal_proneness_sq": 0.0,
            "visit_drop": rng.uniform(0, 1, n),
        }
    )
    feats["deal_proneness_sq"] = feats["deal_proneness"] ** 2
    level = rng.choice(LADDER, n)
    y = (rng.random(n) < _sig(feats["offset"] + 3.0 * feats["deal_proneness"] * level / 0.3)).astype(float)
    full = StructuralResponse().fit(feats, level, y)
    half = StructuralResponse(shrink=0.5).fit(feats, level, y)
    assert full.shrink_ == 1.0 and half.shrink_ == 0.5
    cf = full.predict_curve(feats)
    lf = np.log(cf / (1 - cf))
    ch = half.predict_curve(feats)
    lh = np.log(ch / (1 - ch))
    assert np.allclose(lh - lh[:, :1], 0.5 * (lf - lf[:, :1]))
    assert np.all(np.diff(ch, axis=1) >= 0)


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


def test_organic_calibration_recovers_a_diluted_baseline_the_offers_alone_cannot():
    # true no-discount logit = -0.5 + 0.9 x offset - 1.0 x visit_drop; uplift 2 x deal x a saturating
    # Hill curve in the level (half-saturation 0.07, the model's first basis curve)
    rng = np.random.default_rng(5)

    def frame(n: int) -> pd.DataFrame:
        f = pd.DataFrame(
            {
                "offset": rng.normal(-2.0, 1.0, n),
                "deal_proneness": rng.uniform(0, 1, n),
                "visit_drop": rng.uniform(0, 1, n),
            }
        )
        return f.assign(deal_proneness_sq=f["deal_proneness"] ** 2)

    def base(f: pd.DataFrame) -> np.ndarray:
        return (-0.5 + 0.9 * f["offset"] - 1.0 * f["visit_drop"]).to_numpy()

    organic = frame(100000)
    organic["bought"] = (rng.random(len(organic)) < _sig(base(organic))).astype(int)
    offers = frame(4000)
    level = rng.choice(LADDER, len(offers))
    hill = level**2 / (level**2 + 0.07**2)
    y = (rng.random(len(offers)) < _sig(base(offers) + 2.0 * offers["deal_proneness"] * hill)).astype(int)
    model = StructuralResponse().fit(offers, level, y, baseline=organic)
    cal = model.calibration_
    assert abs(cal.theta_[-1] + 1.0) < 0.1  # the visit drop's coefficient
    drop = offers[["visit_drop"]].to_numpy()
    assert np.mean(np.abs(cal.base_logit(offers["offset"].to_numpy(), drop) - base(offers))) < 0.05
    p0 = model.predict_curve(offers)[:, 0]  # the offers' free intercept moves it a little
    assert np.mean(np.abs(np.log(p0 / (1 - p0)) - base(offers))) < 0.25
    # uplift still monotone in the level; no organic frame, or calibration='offers': calibrated on the
    # logged offers as before
    assert np.all(np.diff(model.predict_curve(offers), axis=1) >= 0)
    assert StructuralResponse().fit(offers, level, y).calibration_ is None
    assert (
        StructuralResponse(calibration="offers").fit(offers, level, y, baseline=organic).calibration_ is None
    )


def test_half_shift_recovers_a_half_saturation_that_falls_with_the_first_feature():
    # truth: height exp(0.5 + 0.6 z0), half-saturation 0.07 x exp(-0.4 z0): deal-prone rows (z0 > 0)
    # respond to smaller discounts. A fixed 0.07 curve cannot follow that; the shifted one recovers it.
    rng = np.random.default_rng(0)
    n = 20000
    z = rng.normal(size=(n, 2))
    level = rng.choice([0.0, 0.05, 0.1, 0.2, 0.3], n)
    offset = rng.normal(-1.0, 1.0, n)
    half = 0.07 * np.exp(-0.4 * z[:, 0])
    eta = offset + np.exp(0.5 + 0.6 * z[:, 0]) * level**2 / (level**2 + half**2)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    shifted = OffsetHillGLM((0.07,), "exp", l2=0.0, half_shift=True).fit(offset, z, level, y)
    theta = shifted.theta_  # c, a, b (2), kappa
    assert abs(theta[0]) < 0.1 and abs(theta[1] - 0.5) < 0.1 and abs(theta[2] - 0.6) < 0.1
    assert abs(theta[3]) < 0.1 and abs(theta[4] + 0.4) < 0.1  # z1 has no effect; kappa = -0.4
    fixed = OffsetHillGLM((0.07,), "exp", l2=0.0).fit(offset, z, level, y)
    assert shifted.loss_ < fixed.loss_
    # a deal-prone row at 5%: the shifted model matches the truth, the fixed one falls short
    row = np.array([[2.0, 0.0]])
    true_5 = np.exp(0.5 + 1.2) * 0.05**2 / (0.05**2 + (0.07 * np.exp(-0.8)) ** 2)
    assert abs(shifted.uplift_logit(row, np.array([0.05]))[0] - true_5) < 0.1 * true_5
    assert fixed.uplift_logit(row, np.array([0.05]))[0] < 0.9 * true_5
