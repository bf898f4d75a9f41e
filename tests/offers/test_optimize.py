"""Budgeted allocation: known answers and properties over random small problems."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.offers.optimize import allocate

LEVELS = np.array([0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30])


def _economics(p: np.ndarray, value: float = 10.0, margin: float = 0.3):
    cost = LEVELS[None, :] * value * p
    profit = (p - p[:, :1]) * margin * value - cost
    return profit, cost


def test_zero_uplift_gets_no_discount():
    p = np.array([[0.4] * 7, [0.1, 0.2, 0.35, 0.5, 0.55, 0.57, 0.58]])
    profit, cost = _economics(p)
    alloc = allocate(profit, cost, np.array([0, 1]), budget=100.0)
    assert alloc.choice[0] == -1
    assert alloc.choice[1] > 0


@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    n_cust = draw(st.integers(1, n))
    base = np.array(draw(st.lists(st.floats(0.0, 0.9), min_size=n, max_size=n)))
    gain = np.array(draw(st.lists(st.floats(0.0, 0.6), min_size=n, max_size=n)))
    shape = np.array(draw(st.lists(st.floats(0.02, 0.3), min_size=n, max_size=n)))
    p = np.clip(
        base[:, None] + gain[:, None] * LEVELS[None, :] ** 2 / (LEVELS[None, :] ** 2 + shape[:, None] ** 2),
        0,
        1,
    )
    customer = np.array(draw(st.lists(st.integers(0, n_cust - 1), min_size=n, max_size=n)))
    cap = draw(st.one_of(st.none(), st.integers(1, 3)))
    b1 = draw(st.floats(0.0, 20.0))
    b2 = b1 + draw(st.floats(0.0, 20.0))
    return p, customer, cap, b1, b2


@settings(max_examples=200, deadline=None)
@given(problems())
def test_higher_budget_never_lowers_profit_and_budget_is_kept(problem):
    p, customer, cap, b1, b2 = problem
    profit, cost = _economics(p)
    a1 = allocate(profit, cost, customer, b1, cap)
    a2 = allocate(profit, cost, customer, b2, cap)
    assert a1.cost <= b1 and a2.cost <= b2
    assert a2.profit >= a1.profit - 1e-9
    if cap is not None:
        chosen = customer[a2.choice >= 0]
        assert np.all(np.bincount(chosen, minlength=customer.max() + 1) <= cap)
    assert np.all(profit[a2.choice >= 0, a2.choice[a2.choice >= 0]] > 0)


def test_bad_budget_rejected():
    import pytest

    profit, cost = _economics(np.full((1, 7), 0.3))
    with pytest.raises(ValueError, match="budget"):
        allocate(profit, cost, np.array([0]), -1.0)


def test_refill_spends_leftover_without_exceeding_budget():
    from recsys.offers.optimize import refill

    profit = np.array([[0.0, 5.0], [0.0, 4.0], [0.0, 1.0], [0.0, 0.5]])
    cost = np.array([[0.0, 6.0], [0.0, 5.0], [0.0, 1.0], [0.0, 1.0]])
    customer = np.array([0, 1, 2, 3])
    alloc = allocate(profit, cost, customer, 7.0, 1)
    out = refill(profit, cost, customer, 7.0, 1, None, alloc)
    assert out.cost <= 7.0 and out.profit >= alloc.profit
    assert alloc.cost == 1.0  # the Lagrangian plan + prefix fill leave 6 of the 7 unspent
    # refill adds the best profit-per-cost move that still fits (offer 0 costs 6.0 > 7 x (1 - 1e-12) - 1)
    assert out.cost == 6.0 and out.profit == 5.0 and list(out.choice) == [-1, 1, 1, -1]
