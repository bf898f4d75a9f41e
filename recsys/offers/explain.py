"""Explanations a marketer can read: why an offer, why no offer, and the plan's offer table.

A customer who buys anyway getting no discount is a decision, not a gap, and should read as one; an
offer names the customer's visit trend, their deal proneness and what the discount is expected to do.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.offers.economics import Options
from recsys.offers.lifecycle import TierRule

#: Share of spend bought on promotion from which a reason calls the customer deal-prone.
DEAL_PRONE = 0.35


def visit_context(row) -> str:
    """The customer's visit trend (and churn risk when high), the first words of every reason."""
    seg, change = row.segment, row.visit_change
    if seg in ("dropping", "dropping sharply"):
        text = f"visits down {abs(change):.0%} vs own baseline"
    elif seg == "lapsed":
        text = f"no visit for {row.recency_days:.0f} days"
    elif seg == "growing":
        text = f"visits up {change:.0%} vs own baseline"
    elif seg == "new":
        text = "new customer"
    else:
        text = "steady visits"
    return f"{text}; churn risk {row.churn_risk:.0%}" if row.churn_risk >= 0.5 else text


def reasons(cand: pd.DataFrame, level: np.ndarray, uplift: np.ndarray) -> list[str]:
    """'visits down 45% vs own baseline; deal-prone (52% of spend on promotion); dairy (20% of their
    spend): +12 pts purchase chance at 15% off', one per candidate row."""
    out = []
    for row, lv, up in zip(cand.itertuples(index=False), level, uplift, strict=True):
        parts = [visit_context(row)]
        if row.deal_proneness >= DEAL_PRONE:
            parts.append(f"deal-prone ({row.deal_proneness:.0%} of spend on promotion)")
        points = 100 * up
        parts.append(
            f"{str(row.product_group).lower()} ({row.grp_share:.0%} of their spend): "
            f"+{points:.{0 if points >= 1 else 1}f} pts purchase chance at {lv:.0%} off"
        )
        out.append("; ".join(parts))
    return out


def no_offer_reason(
    cand: pd.DataFrame,
    curves: np.ndarray,
    profit: np.ndarray,
    cost: np.ndarray,
    allowed: np.ndarray,
    levels: np.ndarray,
    tiers: dict[str, TierRule],
    shadow_price: float,
) -> str:
    """Why a plan leaves one customer out, from their candidate rows (and the rows' curves and
    options): no discount pays for itself (they buy anyway, or it moves them too little), a tier rule,
    or below the campaign's cut-off (the budget's shadow price)."""
    group = cand["product_group"].astype(str).str.lower().to_numpy()
    context = visit_context(next(cand.itertuples(index=False)))
    levels = np.asarray(levels, dtype=float)
    positive = np.where(levels[None, :] > 0, profit, -np.inf)
    top, col = np.unravel_index(int(np.argmax(positive)), positive.shape)
    if positive[top, col] <= 0:
        sure = int(np.argmax(curves[:, 0]))
        if curves[sure, 0] >= 0.5:
            why = f"they buy {group[sure]} anyway ({curves[sure, 0]:.0%} chance without a discount)"
        else:  # the offer that loses least: what its extra purchases earn against what it pays out
            value, margin = cand["value"].iloc[top], cand["margin"].iloc[top]
            uplift = curves[top, col] - curves[top, 0]
            why = (
                f"the extra margin does not cover the discount paid (best: {group[top]} at "
                f"{levels[col]:.0%} off, +{100 * uplift:.1f} pts, {uplift * margin * value:.2f} extra "
                f"margin for {levels[col] * value * curves[top, col]:.2f} of discount)"
            )
        return f"{context}; no discount pays for itself: {why}"
    if not allowed.any():
        tier = str(cand["tier"].iloc[0])
        rule = tiers.get(tier)
        limit = (
            f" (at most {rule.max_level:.0%} off, profit >= {rule.min_roi:.0%} of the cost)" if rule else ""
        )
        return f"{context}; the {tier!r} tier rule{limit} rules out the best offer ({group[top]})"
    best = np.where(allowed, profit, -np.inf)
    top, col = np.unravel_index(int(np.argmax(best)), best.shape)
    return (
        f"{context}; below the campaign's cut-off: the budget goes to offers with a higher return "
        f"(their best: {group[top]} at {levels[col]:.0%} off, expected profit "
        f"{profit[top, col]:.2f} for {cost[top, col]:.2f} of discount; shadow price {shadow_price:.2f})"
    )


def offer_table(
    candidates: pd.DataFrame,
    choice: np.ndarray,
    curves: np.ndarray,
    options: Options,
    levels: np.ndarray,
    propensity: np.ndarray | None = None,
    explored: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per offer (choice: ladder column per candidate, -1 none), best expected profit first
    per customer. `propensity` (default 1: a decided level) and `explored` (levels drawn at random,
    named in their reason) come from exploration."""
    rows = np.flatnonzero(choice >= 0)
    cols = choice[rows]
    cand = candidates.iloc[rows]
    lv = np.asarray(levels, dtype=float)
    p = curves[rows]
    why = reasons(cand, lv[cols], p[np.arange(len(rows)), cols] - p[:, 0])
    prop = np.ones(len(rows)) if propensity is None else propensity[rows]
    if explored is not None and explored[rows].any():
        why = [
            (
                f"exploration ({'control: send no discount' if lv[c] == 0 else 'random level'}, "
                f"propensity {pr:.3f}); {w}"
            )
            if e
            else w
            for w, c, pr, e in zip(why, cols, prop, explored[rows], strict=True)
        ]
    out = pd.DataFrame(
        {
            "customer_id": cand["customer_id"].to_numpy(),
            "product_group": cand["product_group"].to_numpy(),
            "discount_level": lv[cols],
            "expected_uplift": p[np.arange(len(rows)), cols] - p[:, 0],
            "expected_profit": options.profit[rows, cols],
            "expected_cost": options.cost[rows, cols],
            "propensity": prop,
            "reason": why,
            "best_send_time": cand["best_send_time"].to_numpy(),
            "tier": cand["tier"].to_numpy(),
        }
    )
    return out.sort_values(["customer_id", "expected_profit"], ascending=[True, False]).reset_index(drop=True)
