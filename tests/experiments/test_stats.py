from __future__ import annotations

import numpy as np

from recsys.experiments.stats import (
    Moments,
    analytical_power,
    difference,
    gs_boundaries,
    relative_lift,
    sequential_test,
    srm_pvalue,
    variance_reduction,
)


def test_moments_match_numpy() -> None:
    rng = np.random.default_rng(0)
    y, x = rng.normal(size=500), rng.normal(size=500)
    m = Moments.of(y, x)
    assert np.isclose(m.var, y.var(ddof=1)) and np.isclose(m.cov_xy, np.cov(x, y)[0, 1])
    both = Moments.of(y[:200], x[:200]) + Moments.of(y[200:], x[200:])
    assert np.isclose(both.mean, y.mean())


def test_lift_and_difference_known_answer() -> None:
    c = Moments.of(np.array([1.0, 2.0, 3.0, 4.0] * 50))  # mean 2.5
    t = Moments.of(np.array([2.0, 3.0, 4.0, 5.0] * 50))  # mean 3.5
    lift, diff = relative_lift(c, t), difference(c, t)
    assert np.isclose(lift.estimate, 0.4) and np.isclose(diff.estimate, 1.0)
    assert lift.lower < 0.4 < lift.upper and diff.p_value < 1e-6


def test_cuped_removes_explained_variance_without_bias() -> None:
    rng = np.random.default_rng(1)
    x = rng.gamma(2.0, 10.0, size=(2, 20_000))
    y = 0.8 * x + rng.normal(0, 5, size=x.shape)
    y[1] *= 1.1
    plain = relative_lift(Moments.of(y[0], x[0]), Moments.of(y[1], x[1]))
    cuped = relative_lift(Moments.of(y[0], x[0]), Moments.of(y[1], x[1]), cuped=True)
    assert cuped.se < 0.5 * plain.se
    assert abs(cuped.estimate - 0.1) < 3 * cuped.se
    assert variance_reduction(y[0], x[0]) > 0.8


def test_group_sequential_boundaries() -> None:
    assert np.isclose(gs_boundaries(1)[0], 1.959964, atol=1e-4)
    b = np.array(gs_boundaries(10))
    assert np.all(np.diff(b) < 0) and 1.96 < b[-1] < 2.2
    # Monte Carlo of the null: Brownian motion seen at 10 looks crosses with probability alpha
    rng = np.random.default_rng(2)
    z = np.cumsum(rng.standard_normal((100_000, 10)), 1) / np.sqrt(np.arange(1, 11))
    assert abs(sequential_test(z, 10).significant.mean() - 0.05) < 0.004
    partial = sequential_test(np.array([0.5, 8.0]), 10)
    assert partial.first_crossing == 1 and partial.significant


def test_srm_and_power() -> None:
    assert srm_pvalue(np.array([5000, 5000]), np.array([0.5, 0.5])) > 0.9
    assert srm_pvalue(np.array([5200, 4800]), np.array([0.5, 0.5])) < 0.001
    # 2.8 standard errors away: the textbook 80% power at alpha 0.05
    assert np.isclose(analytical_power(2.8, 1.0, 1.0, 2.0, 2.0, 0.05), 0.80, atol=0.01)
