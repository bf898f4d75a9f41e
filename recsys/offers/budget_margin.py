"""The budget promise: plan so that a campaign's TRUE discount cost exceeds its budget with
probability at most BUDGET_RISK, as far as the model's own uncertainty can tell.

A plan buys the options whose predicted profit per cost is highest, which are the ones whose cost the
model most under-estimates (winner's curse), so a plan priced at the predicted cost overruns its
budget in truth. The planner therefore prices every option at expected cost x a factor, the larger of
two one-sided bounds at z(1 - risk) (a chance constraint):

- the plan's own cost under the model's uncertainty (`plan_cost_bound`): the response model refitted
  on customer-bootstrap resamples of the logged offers prices the plan's chosen offers; their spread
  (parameter uncertainty) and the Bernoulli spread of the redemptions give the distribution of the
  plan's cost over its predicted cost. It sees the plan's own selection and widens by itself where
  the base is small. The refits share the model's form, though, and a plan also buys where the form
  itself is wrong: the smallest discounts of the most deal-prone customers, whose curves rise faster
  than the first basis curve allows and which the logged offers barely tell apart from the model's.
  So the plan is also priced under the response forms in ALTERNATIVE_HALVES, fitted on the same
  offers, and the bound is widened by the largest ratio of their cost to the model's
  (`form_cost_ratio`): uncertainty about the form on top of uncertainty about the parameters;
- realised / predicted discount cost on logged offers the model did not see, among those a plan of
  the same size would buy (`promise_factor`).

Where the held-out check rests on too few offers to promise anything, the plan says so and spends
only the part of the budget its evidence covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm
from sklearn.base import clone

from recsys.offers.groups import group_margin, group_value
from recsys.offers.offer_log import campaign_planned_offers
from recsys.offers.response import StructuralResponse, ips_weights

#: The budget promise: a plan allows P(true cost > budget) at most this, from the model's own checks.
BUDGET_RISK = 0.02

#: Below this many checked offers (profitable held-out offers) the promise cannot be made: the few
#: offers misjudge the shape of the deal-prone customers' curves, where a tight plan spends most. The
#: planner says so and spends only the part of the budget its evidence covers.
MIN_COST_CHECK_OFFERS = 500

#: Once this many logged offers were chosen by past campaigns, the cost is also checked on them.
MIN_CAMPAIGN_OFFERS = 500

#: The check runs on the best share of the profitable held-out offers by predicted return on cost:
#: a budgeted plan buys those first, and on the whole selection the margin comes out too small.
COST_TOP_SHARE = 0.5

#: Without logged levels (prior response curves) nothing can be measured: this fixed factor instead.
FIXED_COST_FACTOR = 1.15

#: A check on fewer offers than this says nothing about a ratio: the selection takes at least these.
MIN_SELECTED = 50

#: Response-model refits on customer-bootstrap resamples behind the plan's cost distribution.
BOOTSTRAP_FITS = 20

#: Basis half-saturations of the response forms the plan is also priced under (`form_curves`): lower
#: first curves, which the logged offers barely tell apart from the model's own (0.07, 0.25).
ALTERNATIVE_HALVES: tuple[tuple[float, ...], ...] = ((0.05, 0.25), (0.04, 0.25), (0.04, 0.07, 0.25))

#: A plan is re-priced with its own cost bound until the bound moves less than this (or after
#: PROMISE_ROUNDS re-plans): a larger factor buys a different, usually safer, selection.
PROMISE_TOLERANCE = 0.005
PROMISE_ROUNDS = 4

CAMPAIGN_CHECKS = ("max", "instead", "off")


@dataclass(frozen=True)
class HeldOutCheck:
    """Cross-fitted predictions on logged offers, per offer: what a cost check selects and compares."""

    customer: np.ndarray  # integer code (the standard error is clustered by customer)
    level: np.ndarray
    value: np.ndarray
    bought: np.ndarray
    predicted: np.ndarray  # P_model(buy | logged level) from a model that did not see the customer
    weight: np.ndarray  # inverse-propensity weight (1 where the levels were not randomised)
    profitable: np.ndarray  # a discount the fold's model calls profitable: an option a plan buys
    return_on_cost: np.ndarray  # predicted incremental profit / predicted discount cost


def _refit(
    model: StructuralResponse,
    frame: pd.DataFrame,
    level,
    bought,
    propensity,
    baseline: pd.DataFrame | None,
) -> StructuralResponse:
    """`model` fitted on other offers: a fitted model keeps its baseline calibration (`refit`; the
    caller passes the organic pseudo-decisions it was fitted on), an unfitted one is fitted anew."""
    if hasattr(model, "calibration_") and (baseline is None) == (model.calibration_ is None):
        return model.refit(frame, level, bought, propensity)
    return clone(model).fit(frame, level, bought, propensity, baseline=baseline)


def held_out_check(
    model: StructuralResponse,
    frame: pd.DataFrame,
    value: np.ndarray,
    margin: np.ndarray,
    folds: int = 3,
    seed: int = 0,
    baseline: pd.DataFrame | None = None,
) -> HeldOutCheck:
    """Refit `model` on customer folds and predict each held-out logged offer at its logged level.
    `baseline`: the organic pseudo-decisions the planning model calibrates on, so the fold models are
    the model that plans (a fitted `model` lends them its calibration, see `_refit`)."""
    frame = frame.reset_index(drop=True)
    cust = pd.factorize(frame["customer_id"])[0]
    fold = np.random.default_rng(seed).integers(0, folds, cust.max() + 1)[cust]
    level = frame["level"].to_numpy(float)
    levels = np.asarray(model.levels, dtype=float)
    col = np.searchsorted(levels, level)
    p_hat = np.full(len(frame), np.nan)
    profitable = np.zeros(len(frame), dtype=bool)
    return_on_cost = np.zeros(len(frame))
    for f in range(folds):
        tr, te = fold != f, fold == f
        m = _refit(
            model, frame[tr], level[tr], frame["bought"].to_numpy()[tr], frame["propensity"][tr], baseline
        )
        curve = m.predict_curve(frame[te], levels)
        p = curve[np.arange(te.sum()), col[te]]
        v, mg = value[te], margin[te]
        profit = (p - curve[:, 0]) * mg * v - level[te] * v * p
        p_hat[te] = p
        profitable[te] = (level[te] > 0) & (profit > 0)
        return_on_cost[te] = profit / np.maximum(level[te] * v * p, 1e-12)
    w = ips_weights(frame["propensity"].to_numpy(float), len(levels), model.max_weight)
    return HeldOutCheck(
        customer=cust,
        level=level,
        value=np.asarray(value, dtype=float),
        bought=frame["bought"].to_numpy(float),
        predicted=p_hat,
        weight=np.ones(len(frame)) if w is None else w,
        profitable=profitable,
        return_on_cost=return_on_cost,
    )


def ratio_bound(
    check: HeldOutCheck, top_share: float = COST_TOP_SHARE, z: float = 1.2816, on: np.ndarray | None = None
) -> dict[str, float]:
    """Realised / predicted discount cost on the offers a plan would buy: the profitable held-out
    offers, and with `top_share` < 1 only the best of them by predicted return on cost holding
    `top_share` of their predicted cost (a tighter budget buys fewer, better-looking offers, whose
    cost the model under-estimates more), at least MIN_SELECTED of them. `on`: a mask of offers a
    plan chose (past campaigns) to measure on instead, unweighted: their selection already is a plan's.

    Returns the ratio, its customer-clustered standard error (delta method), the one-sided upper bound
    ratio + z x se and the number of offers it rests on.
    """
    w, level, value = check.weight, check.level, check.value
    if on is not None:
        selected, w = np.asarray(on, dtype=bool) & (level > 0), np.ones(len(level))
    else:
        selected = check.profitable.copy()
        if top_share < 1.0 and selected.any():  # the plan buys the best predicted return on cost first
            idx = np.flatnonzero(selected)
            idx = idx[np.argsort(-check.return_on_cost[idx], kind="stable")]
            cost = (w * level * value * check.predicted)[idx]
            keep = max(int(np.searchsorted(np.cumsum(cost), top_share * cost.sum())) + 1, MIN_SELECTED)
            selected = np.zeros(len(level), dtype=bool)
            selected[idx[:keep]] = True
    s = selected
    realised = w[s] * level[s] * value[s] * check.bought[s]
    predicted = w[s] * level[s] * value[s] * check.predicted[s]
    if predicted.sum() <= 0:
        return {"ratio": 1.0, "se": 0.0, "upper": 1.0, "offers": 0}
    ratio = realised.sum() / predicted.sum()
    resid = np.bincount(check.customer[s], weights=realised - ratio * predicted)
    se = float(np.sqrt(np.sum(resid**2)) / predicted.sum())
    return {"ratio": float(ratio), "se": se, "upper": float(ratio + z * se), "offers": int(s.sum())}


@dataclass(frozen=True)
class CostChecks:
    """What the budget promise is measured on: the held-out check and, when past campaigns logged
    enough offers (and `campaign_check` is not 'off'), the mask of their offers."""

    held_out: HeldOutCheck
    campaign: np.ndarray | None
    campaign_check: str


def cost_checks(
    response: StructuralResponse,
    frame: pd.DataFrame,
    history: pd.DataFrame,
    margin: float | dict[str, float],
    baseline: pd.DataFrame | None = None,
    campaign_check: str = "max",
) -> CostChecks:
    """Run the held-out check once per fit (the fold refits); the plan's factor comes from it later,
    for the budget at hand (`promise_factor`)."""
    if campaign_check not in CAMPAIGN_CHECKS:
        raise ValueError(f"campaign_cost_check must be one of {CAMPAIGN_CHECKS}, got {campaign_check!r}")
    value = group_value(history, frame)
    rates = group_margin(frame["product_group"], margin)
    planned = campaign_planned_offers(frame)
    use = campaign_check != "off" and planned.sum() >= MIN_CAMPAIGN_OFFERS
    return CostChecks(
        held_out_check(response, frame, value, rates, baseline=baseline),
        planned if use else None,
        campaign_check,
    )


def promise_factor(checks: CostChecks, share: float, risk: float = BUDGET_RISK) -> tuple[float, dict]:
    """(factor, the check behind it): planned cost = expected cost x factor, so that
    P(true cost > budget) <= `risk` as far as the model's own checks can tell (a one-sided normal
    bound on realised / predicted cost: ratio + z(1 - risk) x se).

    `share`: the budget over the plan's unconstrained cost; the held-out check measures on the best
    offers holding that share of the profitable ones' cost, the ones a plan of that size buys. Past
    campaigns' offers (when checked): 'max' keeps the larger bound (they can only make the plan more
    careful), 'instead' uses them alone. Floored at 1: the checks imitate a plan's selection only in
    part, so a factor below 1 would spend more than they can vouch for.

    The promise holds only when the held-out check rests on MIN_COST_CHECK_OFFERS offers at the
    whole selection (`supported`); below that the factor is multiplied by the `caution`
    MIN_COST_CHECK_OFFERS / offers: the plan spends only the part of the budget its evidence covers.
    """
    z = float(norm.ppf(1.0 - risk))
    found = {}
    campaign_only = checks.campaign is not None and checks.campaign_check == "instead"
    if not campaign_only:
        found["held-out logged offers"] = ratio_bound(checks.held_out, min(max(share, 0.0), 1.0), z)
    if checks.campaign is not None:
        found["offers of past campaigns"] = ratio_bound(checks.held_out, z=z, on=checks.campaign)
    source = max(found, key=lambda name: found[name]["upper"])
    if campaign_only:
        evidence = found["offers of past campaigns"]["offers"]
    else:
        evidence = ratio_bound(checks.held_out, 1.0, z)["offers"]
    supported = evidence >= MIN_COST_CHECK_OFFERS
    caution = 1.0 if supported else MIN_COST_CHECK_OFFERS / max(evidence, 1)
    factor = max(1.0, float(found[source]["upper"])) * caution
    ratio = {
        **found[source],
        "source": source,
        "risk": risk,
        "share": share,
        "evidence": int(evidence),
        "supported": bool(supported),
        "caution": caution,
    }
    return factor, ratio


def bootstrap_curves(
    model: StructuralResponse,
    frame: pd.DataFrame,
    features: pd.DataFrame,
    levels: np.ndarray,
    baseline: pd.DataFrame | None = None,
    fits: int = BOOTSTRAP_FITS,
    seed: int = 0,
) -> np.ndarray:
    """fits x rows x levels: `model` refitted on customer-bootstrap resamples of the logged offers
    `frame` (whole customers drawn with replacement: their offers are not independent), each predicting
    the response curves of `features` (the candidates). The spread over the fits is the model's
    parameter uncertainty about each candidate's curve; float32 to keep a large base in memory.
    `baseline` as in `held_out_check`: the offers are resampled, the organic calibration is shared."""
    frame = frame.reset_index(drop=True)
    cust = pd.factorize(frame["customer_id"])[0]
    n = int(cust.max()) + 1
    rng = np.random.default_rng(seed)
    rows = np.arange(len(frame))
    out = np.empty((fits, len(features), len(levels)), dtype=np.float32)
    for b in range(fits):
        draws = np.bincount(rng.integers(0, n, n), minlength=n)
        f = frame.iloc[np.repeat(rows, draws[cust])]
        if f["bought"].nunique() < 2:
            raise ValueError("a bootstrap resample of the logged offers has a single outcome: too few offers")
        m = _refit(model, f, f["level"], f["bought"], f["propensity"], baseline)
        out[b] = m.predict_curve(features, levels)
    return out


def plan_cost_bound(
    choice: np.ndarray,
    curves: np.ndarray,
    boots: np.ndarray,
    levels: np.ndarray,
    value: np.ndarray,
    risk: float = BUDGET_RISK,
) -> dict[str, float]:
    """The distribution of a plan's discount cost over its predicted cost, from the model's own
    uncertainty: `choice` (ladder column per candidate, -1 none) priced by the planning `curves` and
    by every bootstrap refit in `boots`. The ratio's mean and spread over the refits (parameter
    uncertainty) and the Bernoulli spread of the redemptions around the predicted cost combine into
    the one-sided bound mean + z(1 - risk) x sqrt(sd^2 + redemption_sd^2)."""
    rows = np.flatnonzero(choice >= 0)
    if rows.size == 0:
        return {"mean": 1.0, "parameter_sd": 0.0, "redemption_sd": 0.0, "upper": 1.0}
    col = choice[rows]
    unit = np.asarray(levels, dtype=float)[col] * np.asarray(value, dtype=float)[rows]
    p = curves[rows, col]
    predicted = float(np.sum(unit * p))
    if predicted <= 0:
        return {"mean": 1.0, "parameter_sd": 0.0, "redemption_sd": 0.0, "upper": 1.0}
    ratios = (boots[:, rows, col].astype(float) @ unit) / predicted
    redemption_sd = float(np.sqrt(np.sum(unit**2 * p * (1.0 - p)))) / predicted
    mean, sd = float(ratios.mean()), float(ratios.std(ddof=1)) if len(ratios) > 1 else 0.0
    z = float(norm.ppf(1.0 - risk))
    return {
        "mean": mean,
        "parameter_sd": sd,
        "redemption_sd": redemption_sd,
        "upper": mean + z * float(np.hypot(sd, redemption_sd)),
    }


def form_curves(
    model: StructuralResponse,
    frame: pd.DataFrame,
    features: pd.DataFrame,
    levels: np.ndarray,
    halves: tuple[tuple[float, ...], ...] = ALTERNATIVE_HALVES,
) -> np.ndarray:
    """forms x rows x levels: the candidates' curves under each response form in `halves`, fitted on
    the same logged offers `frame` with the fitted `model`'s baseline calibration (plug-in fits, to be
    compared with the model's own plug-in curves, not with the bagged ones)."""
    out = np.empty((len(halves), len(features), len(levels)), dtype=np.float32)
    level, bought, propensity = frame["level"], frame["bought"], frame["propensity"]
    for i, h in enumerate(halves):
        form = clone(model).set_params(halves=tuple(h))
        form.calibration_, form.base_columns_ = model.calibration_, model.base_columns_
        out[i] = form.refit(frame, level, bought, propensity).predict_curve(features, levels)
    return out


def form_cost_ratio(
    choice: np.ndarray, plugin: np.ndarray, forms: np.ndarray, levels: np.ndarray, value: np.ndarray
) -> float:
    """The largest ratio, over the response forms `forms` (forms x rows x levels), of the plan's
    expected discount cost under the form to its cost under the model's plug-in curves `plugin`;
    floored at 1 (a form that prices the plan lower does not loosen the promise)."""
    rows = np.flatnonzero(choice >= 0)
    if rows.size == 0 or len(forms) == 0:
        return 1.0
    col = choice[rows]
    unit = np.asarray(levels, dtype=float)[col] * np.asarray(value, dtype=float)[rows]
    base = float(np.sum(unit * plugin[rows, col]))
    if base <= 0:
        return 1.0
    return max(1.0, float(np.max(forms[:, rows, col].astype(float) @ unit)) / base)
