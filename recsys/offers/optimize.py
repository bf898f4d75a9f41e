"""Budgeted choice of one discount level per candidate (customer x group), at most K per customer.

A multiple-choice knapsack. We solve its Lagrangian relaxation exactly: for a price lambda on budget,
each candidate takes the level maximising profit - lambda x cost (or nothing if that is <= 0) and each
customer keeps their K best candidates. Total cost is non-increasing in lambda, so bisection finds the
smallest lambda whose plan fits the budget; the slack is then filled by switching whole customers to
the plan of the next-lower lambda, best profit-per-cost first, stopping at the first that does not fit.

Why this and not a plain greedy: (1) exact maximisers of the Lagrangian make total profit provably
non-decreasing in the budget (a higher budget never lowers profit; the prefix fill keeps that);
(2) it is a handful of vectorised argmax/sort passes over all candidates, no loop per customer;
(3) the budget is a hard constraint: the returned plan never costs more than `budget`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Allocation:
    choice: np.ndarray  # per candidate: column index into the ladder, -1 = no offer
    profit: float
    cost: float
    lam: float  # shadow price of the budget (profit per unit of extra budget at the margin)


def _solve(
    profit: np.ndarray, cost: np.ndarray, customer: np.ndarray, lam: float, cap: int | None
) -> np.ndarray:
    value = profit - lam * cost
    best = np.argmax(value, axis=1)
    bv = value[np.arange(len(value)), best]
    active = bv > 1e-12
    if cap is not None and active.any():
        idx = np.flatnonzero(active)
        order = idx[np.lexsort((idx, -bv[idx], customer[idx]))]  # customer, value desc, index
        cust_sorted = customer[order]
        first = np.r_[True, cust_sorted[1:] != cust_sorted[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        rank = np.arange(len(order)) - start
        active = np.zeros_like(active)
        active[order[rank < cap]] = True
    return np.where(active, best, -1)


def _totals(profit: np.ndarray, cost: np.ndarray, choice: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(choice >= 0)
    p = np.zeros(len(choice))
    c = np.zeros(len(choice))
    p[rows] = profit[rows, choice[rows]]
    c[rows] = cost[rows, choice[rows]]
    return p, c


def allocate(
    profit: np.ndarray,
    cost: np.ndarray,
    customer: np.ndarray,
    budget: float,
    max_per_customer: int | None = None,
    allowed: np.ndarray | None = None,
    iterations: int = 60,
) -> Allocation:
    """Choose at most one column per row of `profit`/`cost` (candidates x levels).

    customer: integer code per row (the cap applies per code); allowed: boolean mask of options
    (business rules, diet); budget: hard limit on the summed cost of the chosen options.
    """
    profit = np.asarray(profit, dtype=float)
    cost = np.asarray(cost, dtype=float)
    customer = np.asarray(customer)
    if budget < 0 or not np.isfinite(budget):
        raise ValueError(f"budget must be a non-negative number, got {budget}")
    if profit.shape != cost.shape or profit.ndim != 2 or len(customer) != len(profit):
        raise ValueError("profit and cost must be candidates x levels, customer one code per candidate")
    if np.any(cost < 0):
        raise ValueError("costs must be non-negative")
    if max_per_customer is not None and max_per_customer < 1:
        raise ValueError(f"max_per_customer must be >= 1, got {max_per_customer}")
    if allowed is not None:
        profit = np.where(allowed, profit, -np.inf)
    if len(profit) == 0:
        return Allocation(np.zeros(0, dtype=int), 0.0, 0.0, 0.0)
    limit = budget * (1.0 - 1e-12)  # never exceed, even after float summation in another order

    def fits(choice: np.ndarray) -> bool:
        return float(_totals(profit, cost, choice)[1].sum()) <= limit

    free = _solve(profit, cost, customer, 0.0, max_per_customer)
    if fits(free):
        return _finish(profit, cost, free, 0.0)
    finite = np.isfinite(profit) & (cost > 0)
    ratio = np.where(finite, profit / np.where(cost > 0, cost, 1.0), 0.0)
    lo, hi = 0.0, float(max(ratio.max(), 0.0)) * 1.001 + 1e-9
    x_hi = _solve(profit, cost, customer, hi, max_per_customer)
    if not fits(x_hi):  # only zero-cost options left and still over budget: impossible unless budget 0
        x_hi = np.full(len(profit), -1)
    x_lo = free
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        x = _solve(profit, cost, customer, mid, max_per_customer)
        if fits(x):
            hi, x_hi = mid, x
        else:
            lo, x_lo = mid, x
    return _finish(profit, cost, _fill(profit, cost, customer, x_hi, x_lo, limit), hi)


def _fill(
    profit: np.ndarray,
    cost: np.ndarray,
    customer: np.ndarray,
    x_hi: np.ndarray,
    x_lo: np.ndarray,
    limit: float,
) -> np.ndarray:
    """Switch whole customers from the feasible plan to the infeasible one while the budget allows."""
    p_hi, c_hi = _totals(profit, cost, x_hi)
    p_lo, c_lo = _totals(profit, cost, x_lo)
    codes, inv = np.unique(customer, return_inverse=True)
    d_p = np.bincount(inv, weights=p_lo - p_hi, minlength=len(codes))
    d_c = np.bincount(inv, weights=c_lo - c_hi, minlength=len(codes))
    changed = np.bincount(inv, weights=(x_hi != x_lo).astype(float), minlength=len(codes)) > 0
    cand = np.flatnonzero(changed & (d_p > 0))
    if cand.size == 0:
        return x_hi
    ratio = np.where(d_c[cand] > 0, d_p[cand] / np.where(d_c[cand] > 0, d_c[cand], 1.0), np.inf)
    cand = cand[np.lexsort((cand, -ratio))]
    spent = float(c_hi.sum()) + np.cumsum(d_c[cand])
    ok = spent <= limit
    take = cand[: int(np.argmin(ok)) if not ok.all() else len(cand)]  # a prefix: monotone in budget
    switch = np.isin(inv, take)
    return np.where(switch, x_lo, x_hi)


def _finish(profit: np.ndarray, cost: np.ndarray, choice: np.ndarray, lam: float) -> Allocation:
    p, c = _totals(profit, cost, choice)
    return Allocation(choice=choice, profit=float(p.sum()), cost=float(c.sum()), lam=lam)


def refill(
    profit: np.ndarray,
    cost: np.ndarray,
    customer: np.ndarray,
    budget: float,
    max_per_customer: int | None,
    allowed: np.ndarray | None,
    alloc: Allocation,
) -> Allocation:
    """Second pass: spend the budget an allocation left unused (the Lagrangian plan plus its prefix
    fill stop at the first customer that does not fit) on the best remaining moves, greedily by
    extra profit per extra cost: a new offer (while the customer is under the cap) or a change of
    level of a chosen one. Each candidate moves at most once; the budget stays a hard limit."""
    profit = np.asarray(profit, dtype=float)
    if allowed is not None:
        profit = np.where(allowed, profit, -np.inf)
    choice = alloc.choice.copy()
    limit = budget * (1.0 - 1e-12)
    p_now, c_now = _totals(profit, cost, choice)
    left = limit - float(c_now.sum())
    if left <= 0 or len(profit) == 0:
        return alloc
    d_p = profit - p_now[:, None]
    d_c = cost - c_now[:, None]
    ok = np.isfinite(d_p) & (d_p > 1e-12) & (d_c <= left)
    if not ok.any():
        return alloc
    ratio = np.where(ok, d_p / np.maximum(d_c, 1e-12), -np.inf)
    best = np.argmax(ratio, axis=1)
    rows = np.flatnonzero(ok[np.arange(len(profit)), best])
    rows = rows[np.lexsort((rows, -ratio[rows, best[rows]]))]
    codes, inv = np.unique(customer, return_inverse=True)
    n_offers = np.bincount(inv, weights=(choice >= 0).astype(float), minlength=len(codes))
    cap = np.inf if max_per_customer is None else max_per_customer
    for r in rows:
        dc = d_c[r, best[r]]
        if dc > left:
            continue
        if choice[r] < 0:
            if n_offers[inv[r]] >= cap:
                continue
            n_offers[inv[r]] += 1
        choice[r] = best[r]
        left -= dc
    return _finish(profit, cost, choice, alloc.lam)
