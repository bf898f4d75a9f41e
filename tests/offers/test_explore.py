"""Exploration draws: propensities that match the draw, eligible levels only, the budget kept."""

import numpy as np
import pytest

from lab.synthetic import generate
from recsys.offers import budget_margin
from recsys.offers.explore import explore_levels, randomised_cost
from recsys.offers.planner import DiscountPlanner


def test_no_exploration_keeps_the_plan_with_propensity_one():
    planned = np.array([2, -1, 0, 5])
    eligible = np.ones((4, 7), dtype=bool)
    out = explore_levels(planned, eligible, 0.0, np.random.default_rng(0))
    assert np.array_equal(out.choice, planned)
    assert np.array_equal(out.propensity, [1.0, np.nan, 1.0, 1.0], equal_nan=True)
    assert not out.explored.any()


def test_draws_are_uniform_over_eligible_levels_and_propensities_match():
    n = 40_000
    planned = np.full(n, 1)
    eligible = np.zeros((n, 7), dtype=bool)
    eligible[:, [0, 1, 2, 4]] = True  # e.g. a tier capped at 20%, with 15% left out to test the map
    out = explore_levels(planned, eligible, 0.3, np.random.default_rng(1))
    assert set(np.unique(out.choice)) == {0, 1, 2, 4}
    assert abs(out.explored.mean() - 0.3) < 0.01
    # explored offers: each eligible level a quarter of the time
    freq = np.bincount(out.choice[out.explored], minlength=7) / out.explored.sum()
    assert np.allclose(freq[[0, 1, 2, 4]], 0.25, atol=0.015)
    # P(level) = 0.7 x 1[planned] + 0.3 / 4, and the empirical shares agree with it
    expected = np.where(out.choice == 1, 0.7 + 0.3 / 4, 0.3 / 4)
    assert np.allclose(out.propensity, expected)
    assert abs((out.choice == 1).mean() - (0.7 + 0.3 / 4)) < 0.01


def test_randomised_cost_known_answer():
    cost = np.array([[0.0, 1.0, 2.0, 3.0]])
    mean, var = randomised_cost(np.array([2]), cost, np.ones((1, 4), dtype=bool), 0.5)
    # mean = 0.5 x 2 + 0.5 x 1.5; E[c^2] = 0.5 x 4 + 0.5 x 14 / 4
    assert mean == pytest.approx(1.75)
    assert var == pytest.approx(3.75 - 1.75**2)


def test_bad_share_is_refused():
    with pytest.raises(ValueError, match="exploration share must be in"):
        explore_levels(np.array([0]), np.ones((1, 2), dtype=bool), 1.5, np.random.default_rng(0))


@pytest.fixture(scope="module")
def planner():
    data = generate(n_customers=400, n_products=400, weeks=16, seed=3)
    return DiscountPlanner().fit(data.tables)


def test_explored_plan_keeps_budget_tiers_and_logs_propensities(planner, monkeypatch):
    # a small world: its cost check could not back a promise, and the cautious plan would be tiny
    monkeypatch.setattr(budget_margin, "MIN_COST_CHECK_OFFERS", 1)
    # read by plan(); the fit does not depend on it; undone after the test even when it fails
    monkeypatch.setattr(planner, "explore", 0.4)
    plan = planner.plan(60.0)
    assert 0 < plan["expected_cost"].sum() <= 60.0
    explored = plan["reason"].str.startswith("exploration")
    assert explored.any() and (~explored).any()
    # a no-discount control costs nothing and says so
    control = plan["discount_level"] == 0
    assert control.any()
    assert (plan.loc[control, "expected_cost"] == 0).all()
    assert plan.loc[control, "reason"].str.startswith("exploration (control: send no discount").all()
    # tier caps hold for explored levels too
    tiers = planner.candidates_.set_index(["customer_id", "product_group"])["tier"]
    tier = tiers.reindex(list(zip(plan["customer_id"], plan["product_group"], strict=True))).to_numpy()
    cap = np.array([planner.tiers_[t].max_level if t in planner.tiers_ else 1.0 for t in tier])
    assert (plan["discount_level"].to_numpy() <= cap + 1e-9).all()
    # propensities: (1 - e) + e / K at the planned level, e / K elsewhere; K = levels the tier allows
    k = (np.asarray(planner.levels)[None, :] <= cap[:, None] + 1e-9).sum(axis=1)
    prop = plan["propensity"].to_numpy()
    assert np.all(np.isclose(prop, 0.4 / k) | np.isclose(prop, 0.6 + 0.4 / k))
    assert np.all(np.isclose(prop[~explored.to_numpy()], 0.6 + 0.4 / k[~explored.to_numpy()]))
    # reproducible from its seed
    assert planner.plan(60.0).equals(plan)
    planner.set_params(explore=0.0)


def test_default_plan_logs_propensity_one_and_bad_share_is_refused(planner):
    plan = planner.plan(25.0)
    assert (plan["propensity"] == 1.0).all()
    with pytest.raises(ValueError, match="explore must be a share in"):
        DiscountPlanner(explore=-0.1).fit({"interactions": None})
