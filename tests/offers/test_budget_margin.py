"""The budget promise: a one-sided bound on realised / predicted cost, sized to the plan's budget share,
the plan's own cost over bootstrap refits, and no promise (a more cautious plan) where the check rests
on too few offers."""

import numpy as np
import pytest
from scipy.stats import norm

from recsys.offers.budget_margin import (
    CostChecks,
    HeldOutCheck,
    form_cost_ratio,
    plan_cost_bound,
    promise_factor,
    ratio_bound,
)


def _check(n: int, bought: np.ndarray, return_on_cost: np.ndarray | None = None) -> HeldOutCheck:
    return HeldOutCheck(
        customer=np.arange(n),
        level=np.full(n, 0.1),
        value=np.full(n, 10.0),
        bought=bought.astype(float),
        predicted=np.full(n, 0.5),
        weight=np.ones(n),
        profitable=np.ones(n, dtype=bool),
        return_on_cost=np.linspace(2.0, 0.1, n) if return_on_cost is None else return_on_cost,
    )


def test_the_factor_is_the_one_sided_bound_at_the_promised_risk():
    n = 600
    check = _check(n, np.arange(n) % 2 == 0)  # half bought at P = 0.5: realised = predicted
    r = ratio_bound(check, 1.0, z=0.0)
    assert r["ratio"] == pytest.approx(1.0) and r["offers"] == n
    factor, info = promise_factor(CostChecks(check, None, "max"), share=1.0, risk=0.02)
    assert info["supported"] and factor == pytest.approx(1.0 + norm.ppf(0.98) * r["se"])
    looser, _ = promise_factor(CostChecks(check, None, "max"), share=1.0, risk=0.10)
    assert 1.0 <= looser < factor  # a larger allowed risk plans closer to the expected cost


def test_a_tight_budget_is_checked_on_the_best_looking_offers():
    n = 600
    bought = np.arange(n) < n // 4  # the best quarter by return on cost is always bought
    check = _check(n, bought)
    tight = ratio_bound(check, 0.25, z=0.0)
    whole = ratio_bound(check, 1.0, z=0.0)
    assert tight["offers"] == pytest.approx(n // 4, abs=1) and tight["ratio"] == pytest.approx(2.0, rel=0.02)
    assert whole["ratio"] == pytest.approx(0.5)


def test_too_few_offers_give_no_promise_and_a_more_cautious_plan():
    n = 250
    check = _check(n, np.arange(n) % 2 == 0)
    factor, info = promise_factor(CostChecks(check, None, "max"), share=1.0)
    bound = max(1.0, ratio_bound(check, 1.0, z=norm.ppf(0.98))["upper"])
    assert not info["supported"] and info["evidence"] == n
    assert factor == pytest.approx(bound / (n / 500))  # spends only what the evidence covers
    assert info["caution"] == pytest.approx(500 / n)


def test_the_plan_cost_bound_adds_parameter_and_redemption_spread():
    levels = np.array([0.0, 0.1, 0.2])
    curves = np.array([[0.1, 0.5, 0.6], [0.2, 0.4, 0.5], [0.3, 0.5, 0.9]])
    choice = np.array([1, -1, 2])  # two offers: 10% to the first, 20% to the third
    value = np.array([10.0, 10.0, 5.0])
    boots = np.stack([curves * 0.9, curves * 1.1]).astype(np.float32)  # the refits: -10% and +10%
    b = plan_cost_bound(choice, curves, boots, levels, value, risk=0.02)
    unit = np.array([0.1 * 10.0, 0.2 * 5.0])
    p = np.array([0.5, 0.9])
    assert b["mean"] == pytest.approx(1.0, abs=1e-6)
    assert b["parameter_sd"] == pytest.approx(np.std([0.9, 1.1], ddof=1), rel=1e-5)
    assert b["redemption_sd"] == pytest.approx(np.sqrt(np.sum(unit**2 * p * (1 - p))) / np.sum(unit * p))
    spread = np.hypot(b["parameter_sd"], b["redemption_sd"])
    assert b["upper"] == pytest.approx(1.0 + norm.ppf(0.98) * spread, rel=1e-5)
    assert plan_cost_bound(np.full(3, -1), curves, boots, levels, value)["upper"] == 1.0  # no offers


def test_the_form_ratio_is_the_costliest_form_over_the_plug_in():
    levels = np.array([0.0, 0.1, 0.2])
    plugin = np.array([[0.1, 0.5, 0.6], [0.2, 0.4, 0.5], [0.3, 0.5, 0.8]])
    choice = np.array([1, -1, 2])
    value = np.array([10.0, 10.0, 5.0])  # unit costs 1.0 and 1.0: plug-in cost 0.5 + 0.8 = 1.3
    cheaper, dearer = plugin * 0.8, plugin.copy()
    dearer[0, 1] = 0.7  # the first offer redeems more under this form: cost 0.7 + 0.8 = 1.5
    forms = np.stack([cheaper, dearer]).astype(np.float32)
    assert form_cost_ratio(choice, plugin, forms, levels, value) == pytest.approx(1.5 / 1.3, rel=1e-6)
    # a form that prices the plan lower does not loosen the promise; no plan, no ratio
    assert form_cost_ratio(choice, plugin, forms[:1], levels, value) == 1.0
    assert form_cost_ratio(np.full(3, -1), plugin, forms, levels, value) == 1.0
