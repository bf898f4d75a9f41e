"""The posterior reference recovers what it should from data with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lab.posterior import deal_posterior, drift_grid, line_parts, posterior_curves, visit_posterior
from lab.synthetic import DISCOUNT_LEVELS, FORBIDDEN_LOGIT, generate, true_response_probability


def test_drift_grid_prior_and_shapes():
    mult, log_prior, churner = drift_grid(26)
    assert np.exp(log_prior).sum() == pytest.approx(1.0)
    assert np.all(mult[0] == 1.0)  # stable
    assert np.all(mult[churner][:, -1] < 0.5)  # churners end well below their normal rate
    assert np.all(mult[churner][:, 0] == 1.0)  # and start at it


def test_visit_posterior_steady_and_lapsed_customers():
    rng = np.random.default_rng(0)
    steady = np.full(26, 2.0)
    lapsed = np.r_[np.full(10, 2.0), np.zeros(16)]
    rate, drop = visit_posterior(np.vstack([steady, lapsed]), np.array([2.0, 2.0]), rng, 2000)
    assert rate[0].mean() == pytest.approx(2.0, rel=0.1)
    assert drop[0].mean() < 0.05
    assert drop[1].mean() > 0.8
    assert rate[1].mean() < 0.3


def test_line_parts_recovers_the_merge_mixture():
    rng = np.random.default_rng(1)
    parts = np.where(rng.random(200_000) < 0.2, 2, 1)
    quantity = parts + rng.poisson(0.3 * parts)
    post = line_parts(quantity)
    assert post[0, 0] == pytest.approx(1.0)  # a single unit is a single purchase
    # P(2 parts | quantity 2) = 0.2 e^-0.6 / (0.2 e^-0.6 + 0.8 x 0.3 e^-0.3)
    expected = 0.2 * np.exp(-0.6) / (0.2 * np.exp(-0.6) + 0.8 * 0.3 * np.exp(-0.3))
    assert post[1, 1] == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("parts", [1, 2])
def test_deal_posterior_inverts_the_line_model(parts):
    d, promo = 0.5, 0.1
    on_deal = 1.0 - (1.0 - promo) * (1.0 - 0.9 * d) ** parts  # P(a line of `parts` purchases is on discount)
    lines = np.array([[20_000.0]])
    weights = np.zeros((1, 2))
    weights[0, parts - 1] = 1.0
    draws = deal_posterior(
        lines, lines * on_deal, weights, np.array([0.3]), np.random.default_rng(2), 500, promo
    )
    assert draws.mean() == pytest.approx(d, abs=0.01)


@pytest.fixture(scope="module")
def small_world():
    return generate(n_customers=1500, n_products=600, weeks=26, seed=5)


def test_posterior_curves_are_calibrated_and_zero_where_forbidden(small_world):
    data = small_world
    resp = data.truth["response"]
    as_of = data.tables["interactions"]["timestamp"].max().normalize() + pd.Timedelta(days=1)
    curves = posterior_curves(
        data, resp[["customer_id", "product_group"]], as_of, DISCOUNT_LEVELS, samples=64
    )
    true = true_response_probability(resp)
    forbidden = resp["base_logit"].to_numpy() <= FORBIDDEN_LOGIT / 2
    assert forbidden.any() and np.all(curves[forbidden] == 0.0)
    ratio = curves[~forbidden].mean(axis=0) / true[~forbidden].mean(axis=0)
    assert np.all(np.abs(ratio - 1.0) < 0.05), ratio
    # and informative: it ranks pairs by their true no-discount chance far better than chance
    assert np.corrcoef(curves[~forbidden, 0], true[~forbidden, 0])[0, 1] > 0.8
