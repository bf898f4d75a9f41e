"""What each option (candidate x discount level) earns and costs, and which ones the tier rules allow.

With P(L) the response curve, v the expected spend on the group when the customer buys and m its
margin rate:

    incremental profit(L) = (P(L) - P(0)) x m x v  -  L x v x P(L)
    discount cost(L)      = L x v x P(L)       (paid also by those who would have bought anyway)

The budget is charged the planned cost, the expected cost x the budget margin's factor
(`recsys.offers.budget_margin`). Churn-risk tiers (`recsys.offers.lifecycle.TierRule`) cap the level
and can demand a minimum return on the planned cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.offers.lifecycle import TierRule


@dataclass(frozen=True)
class Options:
    profit: np.ndarray  # candidates x levels: expected incremental profit
    cost: np.ndarray  # candidates x levels: planned discount cost (expected cost x factor)
    allowed: np.ndarray  # candidates x levels: a discount the tier rules allow (level > 0)
    tier_levels: np.ndarray  # candidates x levels: levels the tier allows, 0% included


def price_options(
    curves: np.ndarray,
    candidates: pd.DataFrame,
    levels: tuple[float, ...] | np.ndarray,
    tiers: dict[str, TierRule],
    cost_factor: float = 1.0,
) -> Options:
    """Profit, planned cost and the tier rules' options for `curves` (candidates x levels P(buy));
    `candidates` needs value, margin and tier. A tier without a rule allows every level."""
    lv = np.asarray(levels, dtype=float)[None, :]
    p = curves
    v = candidates["value"].to_numpy()[:, None]
    m = candidates["margin"].to_numpy()[:, None]
    expected_cost = lv * v * p
    profit = (p - p[:, :1]) * m * v - expected_cost
    cost = expected_cost * cost_factor
    tier = candidates["tier"].to_numpy()
    max_level = np.array([tiers[t].max_level if t in tiers else 1.0 for t in tier])[:, None]
    min_roi = np.array([tiers[t].min_roi if t in tiers else 0.0 for t in tier])[:, None]
    tier_levels = lv <= max_level + 1e-9
    allowed = (lv > 0) & tier_levels & (profit >= min_roi * cost)
    return Options(profit, cost, allowed, tier_levels)
