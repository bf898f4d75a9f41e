from __future__ import annotations

import numpy as np

from lab.experiments import DiscountTruth, SimSpec, daily_moments, simulate
from recsys.experiments.stats import difference, relative_lift


def test_true_effects_are_what_the_simulator_says() -> None:
    rng = np.random.default_rng(0)
    truth = DiscountTruth()
    draw = simulate(SimSpec(customers=400_000, lift=0.1, discount=truth), 1, rng)
    t = draw.treated[0] == 1
    # spend lift is 0.1 on the non-discount part; the margin difference is the closed form
    margin = draw.margin(truth.gross_margin)[0]
    assert abs(margin[t].mean() - margin[~t].mean() - (truth.true_margin() + 0.3 * 0.1 * 0.8 * 40)) < 0.25
    assert not draw.redeemed[0][~t].any() and draw.discount_cost[0][~t].sum() == 0


def test_daily_moments_accumulate_to_the_final_look() -> None:
    rng = np.random.default_rng(1)
    spec = SimSpec(customers=2000, days=5, lift=0.2)
    draw = simulate(spec, 3, rng)
    c, t = daily_moments(draw, draw.spend, spec.days)
    assert c.n.shape == (3, 5) and np.all(np.diff(c.n, axis=1) >= 0)
    assert np.allclose(c.n[:, -1] + t.n[:, -1], 2000)
    y = draw.spend[0]
    treated = draw.treated[0] == 1
    assert np.isclose(t.mean[0, -1], y[treated].mean())
    lift = relative_lift(c, t)
    assert lift.estimate.shape == (3, 5)
    assert np.isclose(difference(c, t).estimate[0, -1], y[treated].mean() - y[~treated].mean())
