"""The budget margin: how much more a plan's discounts really cost than the response model predicts.

A plan buys the options whose predicted profit per cost is highest, which are the ones whose cost the
model most under-estimates (winner's curse), so a plan priced at the predicted cost overruns its
budget in truth. The planner therefore prices every option at expected cost x a factor: the upper
confidence bound of realised / predicted discount cost, measured on logged offers the model did not
see, among those a plan would buy (floored at 1: the check imitates the plan's selection only partly,
so a factor below 1 would spend more than the check can vouch for).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone

from recsys.offers.groups import group_margin, group_value
from recsys.offers.offer_log import campaign_planned_offers
from recsys.offers.response import StructuralResponse, ips_weights

#: Below this many checked offers the margin is not to be trusted (the few offers misjudge the shape
#: of the deal-prone customers' curves, where a tight plan spends most); `recsys offers` warns.
MIN_COST_CHECK_OFFERS = 500

#: Once this many logged offers were chosen by past campaigns, the cost is also checked on them.
MIN_CAMPAIGN_OFFERS = 500

#: The check runs on the best share of the profitable held-out offers by predicted return on cost:
#: a budgeted plan buys those first, and on the whole selection the margin comes out too small.
COST_TOP_SHARE = 0.5

#: Without logged levels (prior response curves) nothing can be measured: this fixed factor instead.
FIXED_COST_FACTOR = 1.15

CAMPAIGN_CHECKS = ("max", "instead", "off")


def measured_cost_ratio(
    model: StructuralResponse,
    frame: pd.DataFrame,
    value: np.ndarray,
    margin: np.ndarray,
    folds: int = 3,
    z: float = 1.2816,
    seed: int = 0,
    baseline: pd.DataFrame | None = None,
    top_share: float = COST_TOP_SHARE,
    on: np.ndarray | None = None,
) -> dict[str, float]:
    """Realised / predicted discount cost on HELD-OUT logged offers (customer folds, cross-fitted).

    Among held-out offers with a discount that the fold's model calls profitable at their logged level
    (the options a plan buys) and, with `top_share` < 1, among the best `top_share` of those by
    predicted profit / cost: realised cost = L x v x bought, predicted = L x v x P_model(L), both
    inverse-propensity weighted. `baseline`: the organic pseudo-decisions the planning model calibrates
    on, so the fold models are the model that plans. `on`: a mask of offers a plan chose (past
    campaigns) to measure on instead, unweighted: their selection already is a plan's.

    Returns the ratio, its customer-clustered standard error (delta method), the one-sided upper bound
    ratio + z x se (z = 1.2816: 90%) and the number of offers it rests on.
    """
    frame = frame.reset_index(drop=True)
    cust = pd.factorize(frame["customer_id"])[0]
    fold = np.random.default_rng(seed).integers(0, folds, cust.max() + 1)[cust]
    level = frame["level"].to_numpy(float)
    levels = np.asarray(model.levels, dtype=float)
    col = np.searchsorted(levels, level)
    p_hat = np.full(len(frame), np.nan)
    selected = np.zeros(len(frame), dtype=bool)
    return_on_cost = np.zeros(len(frame))
    for f in range(folds):
        tr, te = fold != f, fold == f
        m = clone(model).fit(
            frame[tr], level[tr], frame["bought"].to_numpy()[tr], frame["propensity"][tr], baseline=baseline
        )
        curve = m.predict_curve(frame[te], levels)
        rows = np.arange(te.sum())
        p = curve[rows, col[te]]
        v, mg = value[te], margin[te]
        profit = (p - curve[:, 0]) * mg * v - level[te] * v * p
        p_hat[te] = p
        selected[te] = (level[te] > 0) & (profit > 0)
        return_on_cost[te] = profit / np.maximum(level[te] * v * p, 1e-12)
    w = ips_weights(frame["propensity"].to_numpy(float), len(levels), model.max_weight)
    w = np.ones(len(frame)) if w is None else w
    if on is not None:
        selected, w = np.asarray(on, dtype=bool) & (level > 0), np.ones(len(frame))
    elif top_share < 1.0 and selected.any():  # the plan buys the best predicted return on cost first
        cut = np.quantile(return_on_cost[selected], 1.0 - top_share)
        selected &= return_on_cost >= cut
    s = selected
    realised = w[s] * level[s] * value[s] * frame["bought"].to_numpy(float)[s]
    predicted = w[s] * level[s] * value[s] * p_hat[s]
    if predicted.sum() <= 0:
        return {"ratio": 1.0, "se": 0.0, "upper": 1.0, "offers": 0}
    ratio = realised.sum() / predicted.sum()
    resid = np.bincount(cust[s], weights=realised - ratio * predicted)
    se = float(np.sqrt(np.sum(resid**2)) / predicted.sum())
    return {"ratio": float(ratio), "se": se, "upper": float(ratio + z * se), "offers": int(s.sum())}


def cost_factor(
    response: StructuralResponse,
    frame: pd.DataFrame,
    history: pd.DataFrame,
    margin: float | dict[str, float],
    baseline: pd.DataFrame | None = None,
    campaign_check: str = "max",
) -> tuple[float, dict | None]:
    """(factor, the check it came from): planned cost = expected cost x factor.

    The held-out check always runs. Once the log holds MIN_CAMPAIGN_OFFERS offers that past campaigns
    chose (`campaign_planned_offers`), they are checked too: 'max' keeps the larger upper bound (past
    campaigns can only make the margin more careful), 'instead' uses them alone, 'off' ignores them.
    """
    if campaign_check not in CAMPAIGN_CHECKS:
        raise ValueError(f"campaign_cost_check must be one of {CAMPAIGN_CHECKS}, got {campaign_check!r}")
    value = group_value(history, frame)
    rates = group_margin(frame["product_group"], margin)

    def measure(on: np.ndarray | None = None) -> dict[str, float]:
        return measured_cost_ratio(response, frame, value, rates, baseline=baseline, on=on)

    checks = {"held-out logged offers": measure()}
    planned = campaign_planned_offers(frame)
    if campaign_check != "off" and planned.sum() >= MIN_CAMPAIGN_OFFERS:
        if campaign_check == "instead":
            checks = {}
        checks["offers of past campaigns"] = measure(on=planned)
    source = max(checks, key=lambda name: checks[name]["upper"])
    ratio = {**checks[source], "source": source}
    return max(1.0, float(ratio["upper"])), ratio
