"""Policy evaluation against known truth (synthetic data) and off-policy estimates on logged offers.

Every policy is scored by its TRUE expected incremental profit, computed from the true response
curves of the synthetic generator: sum over offers of (P_true(L) - P_true(0)) * m * v - L * v * P_true(L).
The basket value v is not part of the truth, so all policies use the same estimate from history.

- oracle: the same optimiser, candidates, caps and tier rules, fed the true curves (an upper bound
  for any model with these constraints);
- uniform(L): a blanket campaign: everybody's top `max_per_customer` groups at level L, customers in
  random order until the (true) expected cost reaches the budget;
- off-policy: IPS and doubly robust estimates of a policy's value on the logged offers, next to the
  value the truth gives for the same offers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.offers.features import PAIR_FEATURES, group_value
from recsys.offers.policy import DiscountPlanner
from recsys.offers.uplift import StructuralResponse


def _truth_rows(truth_response: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    t = truth_response.set_index(["customer_id", "product_group"])
    rows = t.reindex(pd.MultiIndex.from_frame(pairs[["customer_id", "product_group"]]))
    if rows["base_logit"].isna().any():
        raise ValueError("some candidate pairs have no true response row")
    return rows.reset_index()


def true_curves(planner: DiscountPlanner, truth_response: pd.DataFrame) -> np.ndarray:
    from recsys.data.synthetic import true_response_probability

    rows = _truth_rows(truth_response, planner.candidates_)
    return true_response_probability(rows, np.asarray(planner.levels, dtype=float))


@dataclass(frozen=True)
class Score:
    profit: float
    cost: float
    offers: int


def true_score(
    choice: np.ndarray, curves: np.ndarray, value: np.ndarray, margin: np.ndarray, levels
) -> Score:
    """True incremental profit and discount cost of a plan (choice = ladder column per candidate, -1 none)."""
    rows = np.flatnonzero(choice >= 0)
    lv = np.asarray(levels, dtype=float)[choice[rows]]
    p = curves[rows, choice[rows]]
    p0 = curves[rows, 0]
    v, m = value[rows], margin[rows]
    cost = lv * v * p
    return Score(float(((p - p0) * m * v - cost).sum()), float(cost.sum()), int(rows.size))


def oracle_planner(planner: DiscountPlanner, truth_response: pd.DataFrame) -> DiscountPlanner:
    """A copy of a fitted planner whose curves are the true ones (same candidates, caps and tiers), no
    cost safety margin and no exploration: the oracle knows its costs exactly."""
    oracle = copy.copy(planner)
    oracle.cost_safety = 0.0
    oracle.explore = 0.0  # it knows the curves: nothing to learn
    oracle.curves_ = true_curves(planner, truth_response)
    oracle._economics()
    return oracle


def uniform_choice(
    planner: DiscountPlanner, level_col: int, budget: float, curves: np.ndarray, seed: int = 0
) -> np.ndarray:
    """Blanket level for each customer's top `max_per_customer` groups, random customers until the
    true expected cost would exceed the budget (a prefix, so it never does)."""
    cand = planner.candidates_
    top = cand.groupby("customer_id", sort=False).cumcount().to_numpy() < planner.max_per_customer
    lv = float(planner.levels[level_col])
    cost = np.where(top, lv * cand["value"].to_numpy() * curves[:, level_col], 0.0)
    codes = planner.customer_codes_
    per_cust = np.bincount(codes, weights=cost)
    order = np.random.default_rng(seed).permutation(len(per_cust))
    take = order[np.cumsum(per_cust[order]) <= budget * (1 - 1e-12)]
    chosen = top & np.isin(codes, take)
    return np.where(chosen, level_col, -1)


def policy_comparison(
    planner: DiscountPlanner, truth_response: pd.DataFrame, budgets: list[float], seed: int = 0
) -> pd.DataFrame:
    """One row per (budget, policy): true profit, true cost, planned (model) cost, offers, share of oracle."""
    oracle = oracle_planner(planner, truth_response)
    curves = oracle.curves_
    value = planner.candidates_["value"].to_numpy()
    margin = planner.candidates_["margin"].to_numpy()
    rows = []
    for budget in budgets:
        o_plan = oracle.plan(budget)
        o = true_score(oracle.allocation_.choice, curves, value, margin, planner.levels)
        planner.plan(budget)
        m = true_score(planner.allocation_.choice, curves, value, margin, planner.levels)
        entries = [
            ("model policy", m, planner.allocation_.cost),
            ("oracle (true curves)", o, oracle.allocation_.cost),
        ]
        del o_plan
        for col in range(1, len(planner.levels)):
            u = true_score(
                uniform_choice(planner, col, budget, curves, seed), curves, value, margin, planner.levels
            )
            entries.append((f"uniform {planner.levels[col]:.0%}", u, u.cost))
        for name, s, planned in entries:
            rows.append(
                {
                    "budget": budget,
                    "policy": name,
                    "true_profit": s.profit,
                    "true_cost": s.cost,
                    "planned_cost": planned,
                    "offers": s.offers,
                    "share_of_oracle": s.profit / o.profit if o.profit > 0 else np.nan,
                }
            )
    return pd.DataFrame(rows)


# ---- off-policy evaluation ---------------------------------------------------------------------


def off_policy_estimates(
    planner: DiscountPlanner,
    truth_response: pd.DataFrame,
    policies: dict[str, np.ndarray] | None = None,
    folds: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """IPS and doubly robust value of per-offer level policies on the logged offers vs their truth.

    Value of a policy on the logged (customer, group) pairs = mean profit per offer,
    r = bought * v * (m - L) (the margin kept after the discount). IPS: mean(1[a = pi] / propensity * r);
    DR: mean(q(x, pi) + 1[a = pi] / propensity * (r - q(x, a))) with q from a response model
    cross-fitted over `folds` customer folds (the model never scores offers it was trained on).
    Truth: mean over the same pairs of P_true(pi) * v * (m - pi). Policies: the model policy
    (unbudgeted best level per logged pair) and every uniform level, unless given.
    """
    from recsys.data.synthetic import true_response_probability

    frame = planner.training_frame_
    if frame is None:
        raise ValueError("the planner has no logged offers with levels")
    frame = frame.reset_index(drop=True)
    levels = np.asarray(planner.levels, dtype=float)
    col = np.searchsorted(levels, frame["level"].to_numpy())
    structural = isinstance(planner.response_, StructuralResponse)
    x = frame if structural else frame[list(PAIR_FEATURES)]
    v = group_value(planner.history_, frame)
    margin = planner.margin
    m = (
        frame["product_group"].map(margin).fillna(0.3).to_numpy(float)
        if isinstance(margin, dict)
        else np.full(len(frame), float(margin))
    )
    y = frame["bought"].to_numpy(float)
    prop = frame["propensity"].to_numpy(float)
    reward = y * v * (m - levels[col])

    model_curves = planner.response_.predict_curve(x, levels)
    profit = (model_curves - model_curves[:, :1]) * (m * v)[:, None] - levels[None, :] * v[
        :, None
    ] * model_curves
    q_curves = np.zeros_like(model_curves)
    cust = frame["customer_id"].to_numpy()
    fold = (
        pd.Series(pd.factorize(cust)[0])
        .map(dict(enumerate(np.random.default_rng(seed).integers(0, folds, len(np.unique(cust))))))
        .to_numpy()
    )
    for f in range(folds):
        tr, te = fold != f, fold == f
        model = type(planner.response_)(**planner.response_.get_params())
        model.fit(x[tr], frame["level"][tr], y[tr], prop[tr])
        q_curves[te] = model.predict_curve(x[te], levels)
    q_reward = q_curves * (v[:, None] * (m[:, None] - levels[None, :]))

    truth = _truth_rows(truth_response, frame)
    true_reward = true_response_probability(truth, levels) * (v[:, None] * (m[:, None] - levels[None, :]))

    policies = dict(policies or {})
    if not policies:
        policies["model policy"] = np.where(profit.max(axis=1) > 0, profit.argmax(axis=1), 0)
        for c in range(len(levels)):
            policies[f"uniform {levels[c]:.0%}"] = np.full(len(frame), c)
    rows = []
    n = np.arange(len(frame))
    for name, pi in policies.items():
        match = (col == pi).astype(float)
        ips_terms = match / prop * reward
        dr_terms = q_reward[n, pi] + match / prop * (reward - q_reward[n, col])
        rows.append(
            {
                "policy": name,
                "true_value": float(true_reward[n, pi].mean()),
                "ips": float(ips_terms.mean()),
                "ips_se": float(ips_terms.std(ddof=1) / np.sqrt(len(frame))),
                "dr": float(dr_terms.mean()),
                "dr_se": float(dr_terms.std(ddof=1) / np.sqrt(len(frame))),
                "logged_offers": len(frame),
            }
        )
    return pd.DataFrame(rows)


# ---- closed-loop simulation --------------------------------------------------------------------


def campaign_outcomes(
    plan: pd.DataFrame,
    truth_response: pd.DataFrame,
    sent_at: pd.Timestamp,
    rng: np.random.Generator,
    campaign_id: str,
    window_days: int = 7,
) -> pd.DataFrame:
    """A campaign's rows for the offers table, as the retailer's systems would log them: every planned
    offer sent at `sent_at` with its level and propensity, redeemed (bought from the group within the
    window) with its TRUE probability under the synthetic truth. Appended to the offers table, they are
    what the next fit learns from: the closed loop a campaign runs in (`benchmarks/offers_rounds.py`)."""
    from recsys.data.synthetic import true_response_probability

    rows = _truth_rows(truth_response, plan)
    level = plan["discount_level"].to_numpy(float)
    ladder = np.unique(level)
    p = true_response_probability(rows, ladder)[np.arange(len(plan)), np.searchsorted(ladder, level)]
    bought = rng.random(len(plan)) < p
    sent = pd.Timestamp(sent_at)
    redeemed = sent + pd.Timedelta(days=3)  # any time inside the window; no interaction line carries it
    return pd.DataFrame(
        {
            "offer_id": [f"{campaign_id}-{i}" for i in range(len(plan))],
            "customer_id": plan["customer_id"].to_numpy(),
            "product_group": plan["product_group"].to_numpy(),
            "discount_level": level,
            "sent_at": np.full(len(plan), sent.to_datetime64()).astype("datetime64[ns]"),
            "expires_at": np.full(len(plan), (sent + pd.Timedelta(days=window_days)).to_datetime64()).astype(
                "datetime64[ns]"
            ),
            "channel": "email",
            "redeemed_at": pd.Series(np.where(bought, redeemed.to_datetime64(), np.datetime64("NaT"))).astype(
                "datetime64[ns]"
            ),
            "propensity": plan["propensity"].to_numpy(float),
            "campaign_id": campaign_id,
        }
    )
