"""The discount planner: which product groups to discount for whom, at which level, within a budget.

`fit` once per campaign run, then `plan` for a budget. The steps, each in its own module:
lifecycle metrics and churn tiers (`lifecycle`), spend history per group (`groups`), the eligible
candidates (`candidates`, `eligibility`), the response model fitted on the offer log or the prior
(`response`, `offer_log`, `baseline`), the budget margin (`budget_margin`), each option's profit and
cost (`economics`), the budgeted allocation (`optimize`), exploration (`explore`) and the reasons
(`explain`). `plan_on_curves` plans the same candidates on any response curves, for comparisons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from recsys.offers import budget_margin
from recsys.offers.baseline import (
    organic_baseline_frame,
    point_in_time_baseline,
    prior_features,
    structural_features,
)
from recsys.offers.budget_margin import (
    BUDGET_RISK,
    CAMPAIGN_CHECKS,
    FIXED_COST_FACTOR,
    PROMISE_ROUNDS,
    PROMISE_TOLERANCE,
    bootstrap_curves,
    cost_checks,
    form_cost_ratio,
    form_curves,
    plan_cost_bound,
    promise_factor,
)
from recsys.offers.candidates import candidate_table
from recsys.offers.economics import Options, price_options
from recsys.offers.eligibility import OfferRules
from recsys.offers.explain import no_offer_reason, offer_table
from recsys.offers.explore import explored_plan
from recsys.offers.groups import group_history, organic_interactions
from recsys.offers.lifecycle import DEFAULT_TIERS, TierRule, churn_tier, lifecycle_metrics
from recsys.offers.offer_log import logged_offer_frame
from recsys.offers.optimize import Allocation, allocate, refill
from recsys.offers.response import LEVELS, PriorResponse, StructuralResponse


class DiscountPlanner(BaseEstimator):
    """Fit once per campaign run, then `plan` for a budget (scikit-learn conventions: `__init__`
    stores the parameters, `fit` validates them and learns the attributes ending in `_`).

    levels: the discount ladder (fraction off, 0 first). n_groups: candidate groups per customer.
    max_per_customer: offers per customer at most. margin: the retailer's margin rate, one number or
    a mapping product group -> rate. window_weeks: how long an offer is valid.
    lookback_weeks: history behind every baseline, deal share and visit trend and behind the
    candidates' spend history. min_history_weeks: history a logged offer's customer must have had for
    the offer to train the response model (at most lookback_weeks): shorter histories give baselines
    less reliable than the candidates', which see the whole lookback.
    tiers: churn-risk tier rules (default DEFAULT_TIERS). rules: the retailer's eligibility rules
    (`recsys.offers.eligibility.OfferRules`); None: marketing consent and diet only, for simulations.
    response: an unfitted StructuralResponse to fit on the offer log, or a PriorResponse; None: the
    default StructuralResponse when the log holds offers with levels and propensities, else the prior.
    explore, explore_seed: share of a plan's offers sent at a random level the tier allows (0% = a
    no-discount control), logged with its propensity, so a campaign's outcomes can train the next fit.
    campaign_cost_check: how offers of past campaigns enter the budget margin ('max', 'instead',
    'off'; `recsys.offers.budget_margin.promise_factor`).
    budget_risk: the budget promise, P(true cost > budget) at most this from the model's own
    uncertainty (`recsys.offers.budget_margin`); each `plan` states whether its evidence supports it
    (`budget_promise_`).
    """

    def __init__(
        self,
        levels: tuple[float, ...] = tuple(LEVELS),
        n_groups: int = 8,
        max_per_customer: int = 3,
        margin: float | dict[str, float] = 0.3,
        window_weeks: float = 1.0,
        lookback_weeks: int = 26,
        min_history_weeks: float = 12.0,
        tiers: dict[str, TierRule] | None = None,
        rules: OfferRules | None = None,
        response: StructuralResponse | PriorResponse | None = None,
        explore: float = 0.0,
        explore_seed: int = 0,
        campaign_cost_check: str = "max",
        budget_risk: float = BUDGET_RISK,
    ):
        self.levels = levels
        self.n_groups = n_groups
        self.max_per_customer = max_per_customer
        self.margin = margin
        self.window_weeks = window_weeks
        self.lookback_weeks = lookback_weeks
        self.min_history_weeks = min_history_weeks
        self.tiers = tiers
        self.rules = rules
        self.response = response
        self.explore = explore
        self.explore_seed = explore_seed
        self.campaign_cost_check = campaign_cost_check
        self.budget_risk = budget_risk

    # ---- fit --------------------------------------------------------------------------------------
    def fit(
        self, tables: dict[str, pd.DataFrame], as_of: str | pd.Timestamp | None = None
    ) -> DiscountPlanner:
        """Learn everything a plan needs from the canonical tables, as of `as_of` (default: the day
        after the last purchase; later history is ignored)."""
        self._check_params()
        inter = tables["interactions"]
        if inter.empty:
            raise ValueError("no interactions: nothing to base discounts on")
        self.as_of_ = (
            pd.Timestamp(as_of)
            if as_of is not None
            else inter["timestamp"].max().normalize() + pd.Timedelta(days=1)
        )
        inter = inter[inter["timestamp"] < self.as_of_]
        if inter.empty:
            raise ValueError(f"no interactions before --as-of {self.as_of_.date()}")
        tables = {**tables, "interactions": inter}
        self.tiers_ = DEFAULT_TIERS if self.tiers is None else self.tiers
        self.lifecycle_ = lifecycle_metrics(inter, self.as_of_)
        self.lifecycle_["tier"] = churn_tier(self.lifecycle_)
        self.history_ = group_history(inter, tables["products"], self.as_of_, self.lookback_weeks)
        self.response_ = self._fit_response(tables)
        self.candidates_ = candidate_table(
            self.history_, self.lifecycle_, tables, self.rules, self.n_groups, self.margin
        )
        self.features_ = self._candidate_features(tables)
        self.curves_ = self.response_.predict_curve(self.features_, np.asarray(self.levels))
        self.customer_codes_ = pd.factorize(self.candidates_["customer_id"])[0]
        self.cost_checks_ = None
        self.bootstrap_curves_ = None
        self.plugin_curves_, self.form_curves_ = self.curves_, None
        if isinstance(self.response_, StructuralResponse):
            self.cost_checks_ = cost_checks(
                self.response_,
                self.training_frame_,
                self.history_,
                self.margin,
                self.baseline_frame_,
                self.campaign_cost_check,
            )
            self.bootstrap_curves_ = bootstrap_curves(
                self.response_,
                self.training_frame_,
                self.features_,
                np.asarray(self.levels, dtype=float),
                self.baseline_frame_,
            )
            self.form_curves_ = form_curves(
                self.response_, self.training_frame_, self.features_, np.asarray(self.levels, dtype=float)
            )
            # plan on the mean over the refits (bagging), not the plug-in fit: the heights are convex
            # in the parameters, so the plug-in understates the uplift where the model is least sure
            # (the most deal-prone customers, whose offers a plan buys first)
            self.curves_ = self.bootstrap_curves_.mean(axis=0, dtype=float)
        # what the plan would spend with no budget: a budget's share of it sizes the cost check
        self.free_cost_ = self.plan_on_curves(self.curves_, 1e12).cost
        self._price(1e12)
        return self

    def _price(self, budget: float, cap: int | None = None) -> None:
        """The budget promise for `budget` (`cost_factor_`, `cost_ratio_`, `cost_bound_`,
        `budget_promise_`) and the options priced with it (`options_`): the held-out check's factor,
        raised to the bound on the plan's own cost (`plan_cost_bound`) widened by the costliest other
        response form (`form_cost_ratio`), and re-planned until that bound holds. Without enough
        held-out evidence the check's factor is scaled up by its caution, and the plan's bound by the
        larger of the caution and the form ratio."""
        self.cost_bound_ = None
        if self.cost_checks_ is None:  # no logged levels to measure the margin on
            self.cost_factor_, self.cost_ratio_ = FIXED_COST_FACTOR, None
        else:
            share = min(1.0, budget / self.free_cost_) if self.free_cost_ > 0 else 1.0
            self.cost_factor_, self.cost_ratio_ = promise_factor(self.cost_checks_, share, self.budget_risk)
        self.options_ = price_options(
            self.curves_, self.candidates_, self.levels, self.tiers_, self.cost_factor_
        )
        if self.bootstrap_curves_ is not None:
            value, levels = self.candidates_["value"].to_numpy(), np.asarray(self.levels, dtype=float)
            caution = self.cost_ratio_["caution"]
            for _ in range(PROMISE_ROUNDS):
                alloc = self._allocate(self.options_, budget, cap)
                self.cost_bound_ = plan_cost_bound(
                    alloc.choice, self.curves_, self.bootstrap_curves_, levels, value, self.budget_risk
                )
                form = form_cost_ratio(alloc.choice, self.plugin_curves_, self.form_curves_, levels, value)
                # the small base's caution and the other forms stand for the same doubt (the shape of
                # the curves where a tight plan spends), so the larger of the two widens the bound
                self.cost_bound_.update(form_ratio=form, widening=max(form, caution))
                needed = self.cost_bound_["upper"] * self.cost_bound_["widening"]
                if needed <= self.cost_factor_ * (1.0 + PROMISE_TOLERANCE):
                    break
                self.cost_factor_ = needed
                self.options_ = price_options(
                    self.curves_, self.candidates_, self.levels, self.tiers_, self.cost_factor_
                )
        ratio = self.cost_ratio_ or {}
        supported = bool(ratio.get("supported", False))
        self.budget_promise_ = {
            "risk": float(self.budget_risk),
            "supported": supported,
            "cost_factor": float(self.cost_factor_),
            "evidence_offers": int(ratio.get("evidence", 0)),
            "plan_cost_bound": None if self.cost_bound_ is None else dict(self.cost_bound_),
            "statement": (
                f"P(true discount cost > budget) <= {self.budget_risk:.0%} by the model's own uncertainty "
                f"({ratio.get('evidence', 0):,} held-out offers, {len(self.bootstrap_curves_)} bootstrap refits, "
                f"{len(self.form_curves_)} other response forms)"
                if supported
                else "no promise: the cost check rests on "
                f"{ratio.get('evidence', 0):,} offers (fewer than the {budget_margin.MIN_COST_CHECK_OFFERS:,} a promise needs); the plan "
                "spends only the part of the budget its evidence covers"
            ),
        }

    def _check_params(self) -> None:
        lookback = self.lookback_weeks
        if isinstance(lookback, bool) or not isinstance(lookback, int | np.integer) or lookback < 1:
            raise ValueError(f"lookback_weeks must be a whole number of weeks >= 1, got {lookback!r}")
        if (
            self.min_history_weeks > lookback
        ):  # no logged offer could train the model: say so, no silent prior
            raise ValueError(
                f"min_history_weeks ({self.min_history_weeks:g}) exceeds lookback_weeks ({lookback}): "
                "no logged offer could have that much history in view"
            )
        if self.campaign_cost_check not in CAMPAIGN_CHECKS:
            raise ValueError(
                f"campaign_cost_check must be one of {CAMPAIGN_CHECKS}, got {self.campaign_cost_check!r}"
            )
        if not 0.0 < self.budget_risk < 0.5:
            raise ValueError(f"budget_risk must be a probability in (0, 0.5), got {self.budget_risk}")
        if not 0.0 <= self.explore <= 1.0:
            raise ValueError(f"explore must be a share in [0, 1], got {self.explore}")
        if self.max_per_customer < 1 or self.n_groups < 1:
            raise ValueError("max_per_customer and n_groups must be >= 1")

    def _fit_response(self, tables: dict[str, pd.DataFrame]) -> StructuralResponse | PriorResponse:
        """The response model: fitted on the logged offers (training_frame_), its baseline calibrated
        on organic pseudo-decisions (baseline_frame_); the prior when no offer has a level."""
        self.training_frame_ = None
        self.baseline_frame_ = None
        if isinstance(self.response, PriorResponse):
            return self.response
        frame = logged_offer_frame(tables, self.as_of_, self.min_history_weeks, self.lookback_weeks)
        if frame is None or frame["bought"].nunique() < 2:
            if self.response is not None:
                raise ValueError("no logged offers with discount levels and propensities to fit on")
            return PriorResponse()
        self.training_frame_ = frame
        model = clone(self.response) if self.response is not None else StructuralResponse(levels=self.levels)
        # no-discount pseudo-decisions from any history of 2+ weeks (the candidates include short
        # histories too), with the visit-trend prior of the training offers
        self.baseline_frame_ = organic_baseline_frame(
            tables["interactions"],
            tables["products"],
            tables.get("offers"),
            self.as_of_,
            lookback_weeks=self.lookback_weeks,
            shape_prior=frame.attrs.get("shape_prior"),
        )
        return model.fit(
            frame, frame["level"], frame["bought"], frame["propensity"], baseline=self.baseline_frame_
        )

    def _candidate_features(self, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """The response model's inputs for every candidate as of the decision time."""
        cand = self.candidates_
        if not isinstance(self.response_, StructuralResponse):
            return prior_features(self.history_, self.lifecycle_, cand, self.window_weeks)
        base = point_in_time_baseline(
            organic_interactions(tables["interactions"], tables.get("offers")),
            tables["products"],
            cand["customer_id"].to_numpy(),
            cand["product_group"].to_numpy(),
            np.full(len(cand), self.as_of_.to_datetime64()),
            lookback_weeks=self.lookback_weeks,
            shape_prior=self.training_frame_.attrs.get("shape_prior"),  # equal histories, equal baselines
        )
        return structural_features(base, self.window_weeks)

    # ---- plans ------------------------------------------------------------------------------------
    def _allocate(self, options: Options, budget: float, cap: int | None) -> Allocation:
        """The Lagrangian allocation, then a refill pass that spends what it left of the budget."""
        args = (options.profit, options.cost, self.customer_codes_, budget, cap, options.allowed)
        return refill(*args, allocate(*args))

    def plan(self, budget: float, max_per_customer: int | None = None) -> pd.DataFrame:
        """A campaign's offers (`recsys.offers.explain.offer_table`): planned cost <= budget. The
        allocation and its shadow price are kept as `allocation_` and `lam_` (reasons use them)."""
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        cap = self.max_per_customer if max_per_customer is None else max_per_customer
        self._price(budget, cap)
        if self.explore == 0.0:
            alloc = self._allocate(self.options_, budget, cap)
            propensity, explored = np.where(alloc.choice >= 0, 1.0, np.nan), None
        else:
            alloc, propensity, explored = explored_plan(
                lambda b: self._allocate(self.options_, b, cap),
                self.options_.profit,
                self.options_.cost,
                self.options_.tier_levels,  # 0% (a no-discount control) always included
                budget,
                self.explore,
                self.explore_seed,
            )
        self.lam_ = alloc.lam
        self.allocation_ = alloc
        return offer_table(
            self.candidates_, alloc.choice, self.curves_, self.options_, self.levels, propensity, explored
        )

    def plan_on_curves(
        self,
        curves: np.ndarray,
        budget: float,
        cost_factor: float = 1.0,
        max_per_customer: int | None = None,
    ) -> Allocation:
        """The allocation the planner would make on the same candidates, tiers and caps if the
        response curves (candidates x levels) were `curves` and the budget margin `cost_factor`;
        no exploration, and the fitted planner is left as it was."""
        curves = np.asarray(curves, dtype=float)
        if curves.shape != self.curves_.shape:
            raise ValueError(f"curves must be candidates x levels {self.curves_.shape}, got {curves.shape}")
        if budget < 0:
            raise ValueError(f"budget must be >= 0, got {budget}")
        options = price_options(curves, self.candidates_, self.levels, self.tiers_, cost_factor)
        return self._allocate(
            options, budget, self.max_per_customer if max_per_customer is None else max_per_customer
        )

    # ---- explanations -----------------------------------------------------------------------------
    def no_offer_reasons(self, plan: pd.DataFrame) -> pd.Series:
        """customer_id -> why `plan` (the last `plan` call's result) has no offer for them, for every
        candidate customer it leaves out (customers with no candidate are not listed)."""
        codes, ids = pd.factorize(self.candidates_["customer_id"])
        left_out = ~pd.Index(ids).isin(plan["customer_id"].unique())
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(ids) + 1))
        o, lam = self.options_, getattr(self, "lam_", 0.0)
        reasons = {}
        for c in np.flatnonzero(left_out):
            rows = order[bounds[c] : bounds[c + 1]]
            reasons[str(ids[c])] = no_offer_reason(
                self.candidates_.iloc[rows],
                self.curves_[rows],
                o.profit[rows],
                o.cost[rows],
                o.allowed[rows],
                np.asarray(self.levels, dtype=float),
                self.tiers_,
                lam,
            )
        return pd.Series(reasons, dtype=object, name="reason")
