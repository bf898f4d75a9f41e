"""Exploration: randomise the level of a share of a plan's offers and log each level's propensity.

Why: a deterministic plan sends each chosen (customer, group) one level with probability 1, so its
offers cannot teach the next response fit anything about the other levels (inverse-propensity weights
need every level to have had a chance). With `share` = e, each planned offer keeps its level with
probability 1 - e, else takes a level drawn uniformly from the `eligible` ones (the ladder levels its
tier allows, 0% included: a no-discount control, logged but sent without a discount). The propensity
logged with the offer is P(level | pair planned) = (1 - e) x 1[level = planned] + e / K.

A plan's cost error sits where a tight budget spends most (small discounts to the most deal-prone
customers), where logs from other policies hold few offers; a plan's own explored offers land exactly
there. The budget still holds: `explored_plan` shrinks the planned part until the randomised plan's
expected cost plus three standard deviations fits, and checks the drawn plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from recsys.offers.optimize import Allocation


@dataclass(frozen=True)
class ExploredPlan:
    choice: np.ndarray  # per candidate: ladder column sent, -1 = no offer
    propensity: np.ndarray  # per candidate: P(that column | the pair was planned), NaN = no offer
    explored: np.ndarray  # per candidate: the level was drawn at random


def randomised_cost(
    planned: np.ndarray, cost: np.ndarray, eligible: np.ndarray, share: float
) -> tuple[float, float]:
    """Mean and variance of the total cost of `planned` once `explore_levels` has randomised it."""
    rows = np.flatnonzero(planned >= 0)
    c, ok = cost[rows], eligible[rows]
    k = ok.sum(axis=1)
    kept = c[np.arange(len(rows)), planned[rows]]
    drawn_mean = np.where(ok, c, 0.0).sum(axis=1) / k
    drawn_sq = np.where(ok, c**2, 0.0).sum(axis=1) / k
    mean = (1.0 - share) * kept + share * drawn_mean
    second = (1.0 - share) * kept**2 + share * drawn_sq
    return float(mean.sum()), float(np.clip(second - mean**2, 0.0, None).sum())


def explore_levels(
    planned: np.ndarray, eligible: np.ndarray, share: float, rng: np.random.Generator
) -> ExploredPlan:
    """Randomise the levels of the planned offers (`planned`: column per candidate, -1 none);
    `eligible`: candidates x levels, the levels an explored offer may take (each planned row needs one)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"exploration share must be in [0, 1], got {share}")
    rows = np.flatnonzero(planned >= 0)
    ok = eligible[rows]
    k = ok.sum(axis=1)
    if (k == 0).any():
        raise ValueError("a planned offer has no level it may be explored at")
    explored = rng.random(len(rows)) < share
    # the j-th eligible level, j uniform in 0..k-1: first column whose running count exceeds j
    j = np.minimum(np.floor(rng.random(len(rows)) * k), k - 1)
    drawn = np.argmax(np.cumsum(ok, axis=1) > j[:, None], axis=1)
    choice = planned.copy()
    choice[rows[explored]] = drawn[explored]
    propensity = np.full(len(planned), np.nan)
    propensity[rows] = share / k + (1.0 - share) * (choice[rows] == planned[rows])
    flag = np.zeros(len(planned), dtype=bool)
    flag[rows[explored]] = True
    return ExploredPlan(choice, propensity, flag)


def explored_plan(
    allocate: Callable[[float], Allocation],
    profit: np.ndarray,
    cost: np.ndarray,
    eligible: np.ndarray,
    budget: float,
    share: float,
    seed: int,
) -> tuple[Allocation, np.ndarray, np.ndarray]:
    """The plan with `share` of its offers at a random eligible level: (allocation, each candidate's
    propensity, which offers were explored). `allocate(b)` plans at budget b. The planned part's
    budget is the largest (bisection) whose randomised expected cost + 3 sd fits; a draw that still
    overruns shrinks it further and draws again."""

    def fitting(limit: float) -> tuple[Allocation, float]:
        """The plan at the largest planned budget <= limit whose randomised cost fits (bisection)."""

        def fits(inner: float) -> tuple[Allocation, bool]:
            alloc = allocate(inner)
            mean, var = randomised_cost(alloc.choice, cost, eligible, share)
            return alloc, mean + 3.0 * np.sqrt(var) <= budget * (1.0 + 1e-12)

        alloc, ok = fits(limit)
        if ok:
            return alloc, limit
        lo, hi = 0.0, limit  # an empty plan (budget 0) always fits
        best = allocate(0.0)
        for _ in range(20):
            mid = 0.5 * (lo + hi)
            trial, ok = fits(mid)
            lo, hi, best = (mid, hi, trial) if ok else (lo, mid, best)
        return best, lo

    rng = np.random.default_rng(seed)
    limit = budget
    for _ in range(100):
        alloc, inner = fitting(limit)
        drawn = explore_levels(alloc.choice, eligible, share, rng)
        rows = np.flatnonzero(drawn.choice >= 0)
        spent = float(cost[rows, drawn.choice[rows]].sum())
        if spent <= budget * (1.0 + 1e-12):
            gain = float(profit[rows, drawn.choice[rows]].sum())
            return Allocation(drawn.choice, gain, spent, alloc.lam), drawn.propensity, drawn.explored
        limit = 0.97 * inner
    raise RuntimeError("no randomised plan fits the budget")  # after 100 shrinks the plan is all but empty
