"""Policy evaluation against known truth (synthetic data), off-policy estimates on logged offers, and
the response model's calibration report.

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

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone

from lab.synthetic import true_response_probability
from recsys.offers.groups import group_margin, group_value
from recsys.offers.optimize import Allocation
from recsys.offers.planner import DiscountPlanner


def truth_rows(truth_response: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    t = truth_response.set_index(["customer_id", "product_group"])
    rows = t.reindex(pd.MultiIndex.from_frame(pairs[["customer_id", "product_group"]]))
    if rows["base_logit"].isna().any():
        raise ValueError("some candidate pairs have no true response row")
    return rows.reset_index()


def true_curves(planner: DiscountPlanner, truth_response: pd.DataFrame) -> np.ndarray:
    """The TRUE response curves of the planner's candidates (candidates x levels)."""
    rows = truth_rows(truth_response, planner.candidates_)
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


def oracle_plan(planner: DiscountPlanner, truth_response: pd.DataFrame, budget: float) -> Allocation:
    """The oracle: the same optimiser, candidates, caps and tier rules on the TRUE curves, with no
    budget margin and no exploration (it knows its costs and has nothing to learn)."""
    return planner.plan_on_curves(true_curves(planner, truth_response), budget, cost_factor=1.0)


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
    """One row per (budget, policy): true profit, true cost, planned (model) cost, offers, share of
    oracle; policies: the model's plan, the oracle and every uniform level. The model's rows also
    carry the plan's `cost_factor` and whether its budget promise is `promise_supported`."""
    curves = true_curves(planner, truth_response)
    value = planner.candidates_["value"].to_numpy()
    margin = planner.candidates_["margin"].to_numpy()
    rows = []
    for budget in budgets:
        oracle = planner.plan_on_curves(curves, budget, cost_factor=1.0)
        o = true_score(oracle.choice, curves, value, margin, planner.levels)
        planner.plan(budget)
        m = true_score(planner.allocation_.choice, curves, value, margin, planner.levels)
        entries = [("model policy", m, planner.allocation_.cost), ("oracle (true curves)", o, oracle.cost)]
        for col in range(1, len(planner.levels)):
            u = true_score(
                uniform_choice(planner, col, budget, curves, seed), curves, value, margin, planner.levels
            )
            entries.append((f"uniform {planner.levels[col]:.0%}", u, u.cost))
        for name, s, planned in entries:
            model = name == "model policy"
            rows.append(
                {
                    "budget": budget,
                    "policy": name,
                    "true_profit": s.profit,
                    "true_cost": s.cost,
                    "planned_cost": planned,
                    "offers": s.offers,
                    "share_of_oracle": s.profit / o.profit if o.profit > 0 else np.nan,
                    "cost_factor": planner.cost_factor_ if model else np.nan,
                    "promise_supported": planner.budget_promise_["supported"] if model else np.nan,
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
    frame = planner.training_frame_
    if frame is None:
        raise ValueError("the planner has no logged offers with levels")
    frame = frame.reset_index(drop=True)
    levels = np.asarray(planner.levels, dtype=float)
    col = np.searchsorted(levels, frame["level"].to_numpy())
    x = frame
    v = group_value(planner.history_, frame)
    m = group_margin(frame["product_group"], planner.margin)
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
        model = clone(planner.response_)
        model.fit(x[tr], frame["level"][tr], y[tr], prop[tr])
        q_curves[te] = model.predict_curve(x[te], levels)
    q_reward = q_curves * (v[:, None] * (m[:, None] - levels[None, :]))

    truth = truth_rows(truth_response, frame)
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


# ---- calibration ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationReport:
    """Reliability table (bins of predicted probability), Brier score and expected calibration error."""

    table: pd.DataFrame
    brier: float
    ece: float
    n: int

    def to_markdown(self) -> str:
        lines = ["| bin | n | mean predicted | observed rate |", "|---|---:|---:|---:|"]
        for row in self.table.itertuples():
            lines.append(f"| {row.bin} | {row.n} | {row.predicted:.3f} | {row.observed:.3f} |")
        return "\n".join(lines)


def calibration_report(
    y: np.ndarray, p: np.ndarray, n_bins: int = 10, weights: np.ndarray | None = None
) -> CalibrationReport:
    """Equal-count bins (quantiles of p) so every row of the reliability table has enough offers."""
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=float)
    order = np.argsort(p, kind="stable")
    bins = np.zeros(len(p), dtype=int)
    bins[order] = np.minimum((np.arange(len(p)) * n_bins) // max(len(p), 1), n_bins - 1)
    frame = pd.DataFrame({"bin": bins, "y": y * w, "p": p * w, "w": w})
    g = frame.groupby("bin").agg(n=("w", "size"), w=("w", "sum"), y=("y", "sum"), p=("p", "sum"))
    table = pd.DataFrame(
        {
            "bin": g.index,
            "n": g["n"].to_numpy(),
            "predicted": (g["p"] / g["w"]).to_numpy(),
            "observed": (g["y"] / g["w"]).to_numpy(),
        }
    )
    ece = float(
        np.sum(g["w"] / g["w"].sum() * np.abs(table["predicted"].to_numpy() - table["observed"].to_numpy()))
    )
    brier = float(np.average((p - y) ** 2, weights=w))
    return CalibrationReport(table=table, brier=brier, ece=ece, n=len(p))
