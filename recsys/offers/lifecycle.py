"""Per-customer lifecycle metrics: RFM, trend vs the customer's own baseline, churn risk, CLV, deal
proneness and the best time to send an offer.

Everything is a pandas groupby over the canonical interaction table (customer_id, timestamp, value,
discount, basket_id): one pass per metric family, no Python loop over customers.

Why a trend against the customer's *own* baseline: a household that shops twice a week and now shops
once is at risk even though it still visits more often than most; a global frequency threshold would
call it loyal. The trend segments are therefore defined by the ratio recent rate / baseline rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit

SEGMENTS: tuple[str, ...] = ("new", "lapsed", "dropping sharply", "dropping", "stable", "growing")
WEEKDAYS: tuple[str, ...] = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True)
class LifecycleParams:
    """Windows and thresholds of the lifecycle segments (weeks, ratios of recent to baseline rate).

    recent window: the last `recent_weeks` before `as_of`; baseline: the `baseline_weeks` before that.
    A customer is 'new' with less than `new_weeks` of history, 'lapsed' after `lapsed_weeks` without
    a visit; otherwise the ratio of weekly visit rates (smoothed by `prior_visits`) decides: <= `sharp_drop` 'dropping sharply',
    <= `drop` 'dropping', >= `growth` 'growing', else 'stable'. Halving visits (ratio 0.5) is 'dropping'.
    """

    recent_weeks: int = 4
    baseline_weeks: int = 22
    new_weeks: int = 8
    lapsed_weeks: int = 8
    sharp_drop: float = 0.4
    drop: float = 0.75
    growth: float = 1.33
    #: Pseudo-visits added to both sides of the ratio: with ~1 visit a week, 4 weeks hold only ~4
    #: visits, and Poisson noise alone would call many steady customers 'dropping sharply'.
    prior_visits: float = 1.0
    #: Churn = no visit within this many weeks after as_of (the horizon of churn_risk).
    churn_horizon_weeks: int = 4
    #: Per-horizon discount factor in the CLV sum (about 10% a year for 4-week horizons).
    clv_discount: float = 0.99
    #: Cap on the expected number of future horizons in the CLV (about 3 years for 4-week horizons).
    clv_max_horizons: float = 39.0


def _visits(interactions: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per basket before `as_of`: customer, time, spend, discount, spend bought on discount."""
    inter = interactions[interactions["timestamp"] < as_of]
    on_deal = inter["value"].where(inter["discount"] > 0, 0.0)
    frame = pd.DataFrame(
        {
            "customer_id": inter["customer_id"].to_numpy(),
            "basket_id": inter["basket_id"].to_numpy(),
            "timestamp": inter["timestamp"].to_numpy(),
            "value": inter["value"].to_numpy(dtype=float),
            "discount": inter["discount"].to_numpy(dtype=float),
            "on_deal": on_deal.to_numpy(dtype=float),
        }
    )
    return (
        frame.groupby(["customer_id", "basket_id"], sort=False)
        .agg(
            timestamp=("timestamp", "min"),
            value=("value", "sum"),
            discount=("discount", "sum"),
            on_deal=("on_deal", "sum"),
        )
        .reset_index()
    )


def _mode(values: pd.Series, keys: pd.Series) -> pd.Series:
    """Most frequent value per key (ties -> smallest value), vectorised via value_counts."""
    counts = pd.DataFrame({"k": keys.to_numpy(), "v": values.to_numpy()}).value_counts().reset_index()
    counts = counts.sort_values(["k", "count", "v"], ascending=[True, False, True])
    return counts.drop_duplicates("k").set_index("k")["v"]


def lifecycle_metrics(
    interactions: pd.DataFrame,
    as_of: str | pd.Timestamp | None = None,
    params: LifecycleParams | None = None,
    churn: str = "auto",
) -> pd.DataFrame:
    """One row per customer with history before `as_of` (default: the day after the last event).

    Columns: first_visit, last_visit, recency_days, tenure_weeks, visits (in recent+baseline window),
    frequency (visits per week over that window), monetary (spend in it), weekly_spend,
    avg_order_value, recent_rate, baseline_rate, visit_ratio (recent/baseline rate), visit_change
    (visit_ratio - 1), segment, deal_proneness (share of spend on lines with a discount),
    discount_share (discount / (spend + discount)), churn_risk (P(no visit in the next
    `churn_horizon_weeks`)), churn_method, clv (discounted expected future spend), preferred_hour,
    preferred_weekday, best_send_time.

    churn: 'model' fits a logistic model on the window one horizon earlier (labels are observed, so
    it is calibrated on this customer base); 'heuristic' uses the Poisson rule in `heuristic_churn`;
    'auto' uses the model when there is enough history and both labels occur, else the heuristic.
    """
    params = params or LifecycleParams()
    if as_of is None:
        as_of = interactions["timestamp"].max().normalize() + pd.Timedelta(days=1)
    as_of = pd.Timestamp(as_of)
    metrics = _base_metrics(interactions, as_of, params)
    method = "heuristic"
    risk = heuristic_churn(metrics, params)
    if churn in ("auto", "model"):
        model = fit_churn_model(interactions, as_of, params)
        if model is not None:
            risk, method = model.predict(metrics), "model"
        elif churn == "model":
            raise ValueError("not enough history before as_of to fit a churn model")
    elif churn != "heuristic":
        raise ValueError(f"churn must be 'auto', 'model' or 'heuristic', got {churn!r}")
    metrics["churn_risk"] = risk
    metrics["churn_method"] = method
    metrics["clv"] = customer_lifetime_value(metrics, params)
    return metrics


def _base_metrics(interactions: pd.DataFrame, as_of: pd.Timestamp, params: LifecycleParams) -> pd.DataFrame:
    """Everything but churn risk and CLV (those need the base metrics of an earlier window too)."""
    visits = _visits(interactions, as_of)
    week = pd.Timedelta(weeks=1)
    recent_start = as_of - params.recent_weeks * week
    base_start = recent_start - params.baseline_weeks * week
    window = visits[visits["timestamp"] >= base_start]
    by = visits.groupby("customer_id", sort=True)
    out = pd.DataFrame({"first_visit": by["timestamp"].min(), "last_visit": by["timestamp"].max()})
    out["recency_days"] = (as_of - out["last_visit"]).dt.total_seconds() / 86400.0
    out["tenure_weeks"] = (as_of - out["first_visit"]).dt.total_seconds() / (7 * 86400.0)

    in_recent = window["timestamp"] >= recent_start
    wby = window.groupby("customer_id")
    out["visits"] = wby.size().reindex(out.index, fill_value=0)
    out["monetary"] = wby["value"].sum().reindex(out.index, fill_value=0.0)
    recent_visits = window[in_recent].groupby("customer_id").size().reindex(out.index, fill_value=0)
    base_visits = window[~in_recent].groupby("customer_id").size().reindex(out.index, fill_value=0)
    # Weeks each customer could have shopped in each window (a customer who joined late has a
    # shorter baseline; dividing by the full window would make every newcomer look like 'growing').
    base_weeks = (
        (recent_start - out["first_visit"].clip(lower=base_start)).dt.total_seconds() / 604800.0
    ).clip(lower=0.0)
    window_weeks = (params.recent_weeks + base_weeks).clip(lower=1.0)
    out["frequency"] = out["visits"] / window_weeks
    out["weekly_spend"] = out["monetary"] / window_weeks
    out["avg_order_value"] = (out["monetary"] / out["visits"].where(out["visits"] > 0)).fillna(0.0)
    out["recent_rate"] = recent_visits / params.recent_weeks
    out["baseline_rate"] = base_visits / base_weeks.where(base_weeks >= 1.0)
    expected = out["baseline_rate"] * params.recent_weeks
    out["visit_ratio"] = ((recent_visits + params.prior_visits) / (expected + params.prior_visits)).fillna(
        1.0
    )
    out["visit_change"] = out["visit_ratio"] - 1.0
    out["segment"] = _segments(out, params)

    all_by = visits.groupby("customer_id")
    spend = all_by["value"].sum()
    out["deal_proneness"] = (all_by["on_deal"].sum() / spend.where(spend > 0)).fillna(0.0)
    out["discount_share"] = (
        all_by["discount"].sum() / (spend + all_by["discount"].sum()).where(spend > 0)
    ).fillna(0.0)
    hour = _mode(visits["timestamp"].dt.hour, visits["customer_id"])
    day = _mode(visits["timestamp"].dt.day_of_week, visits["customer_id"])
    out["preferred_hour"] = hour.reindex(out.index).astype(int)
    out["preferred_weekday"] = day.reindex(out.index).map(dict(enumerate(WEEKDAYS)))
    out["best_send_time"] = best_send_time(out["preferred_weekday"], out["preferred_hour"])
    out.index.name = "customer_id"
    return out


def best_send_time(weekday: pd.Series, hour: pd.Series, lead_hours: int = 2) -> pd.Series:
    """'Sat 08:00': `lead_hours` before the customer's usual shopping hour on their usual day, so the
    offer is fresh when they make their list (hour wraps within the day; no midnight sends)."""
    send = (hour.to_numpy(dtype=int) - lead_hours).clip(min=7)
    text = [f"{d} {h:02d}:00" for d, h in zip(weekday.astype(str), send, strict=True)]
    return pd.Series(text, index=weekday.index, dtype=object)


def _segments(m: pd.DataFrame, p: LifecycleParams) -> pd.Series:
    conditions = [
        m["tenure_weeks"] < p.new_weeks,
        m["recency_days"] > 7 * p.lapsed_weeks,
        m["visit_ratio"] <= p.sharp_drop,
        m["visit_ratio"] <= p.drop,
        m["visit_ratio"] >= p.growth,
    ]
    choices = ["new", "lapsed", "dropping sharply", "dropping", "growing"]
    return pd.Series(np.select(conditions, choices, default="stable"), index=m.index)


def heuristic_churn(metrics: pd.DataFrame, params: LifecycleParams) -> pd.Series:
    """P(no visit in the next horizon) if visits were Poisson at the customer's current rate.

    The current rate blends the recent and baseline weekly rates (recent weighted by the share of the
    window it covers, at least 1/2, so a drop shows up quickly), and is damped by
    exp(-recency / 4 expected gaps): a long silence compared with the usual gap means the customer
    probably left. Used when there is too little history to fit the model.
    """
    base = metrics["baseline_rate"].fillna(metrics["recent_rate"])
    rate = 0.5 * metrics["recent_rate"] + 0.5 * base
    gap_days = 7.0 / base.clip(lower=1e-3)
    rate = rate * np.exp(-metrics["recency_days"] / (4.0 * gap_days))
    return np.exp(-rate * params.churn_horizon_weeks).clip(0.0, 1.0)


CHURN_FEATURES: tuple[str, ...] = (
    "log_recency",
    "log_frequency",
    "log_recent_rate",
    "log_ratio",
    "log_tenure",
    "log_aov",
)


def churn_features(metrics: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [
            np.log1p(metrics["recency_days"]),
            np.log1p(metrics["frequency"]),
            np.log1p(metrics["recent_rate"]),
            np.log(metrics["visit_ratio"].clip(0.05, 20.0)),
            np.log1p(metrics["tenure_weeks"]),
            np.log1p(metrics["avg_order_value"]),
        ]
    )


@dataclass
class ChurnModel:
    """Logistic regression of 'no visit in the next horizon' on log RFM/trend features."""

    coef_: np.ndarray
    intercept_: float
    mean_: np.ndarray
    scale_: np.ndarray

    def predict(self, metrics: pd.DataFrame) -> pd.Series:
        z = (churn_features(metrics) - self.mean_) / self.scale_
        return pd.Series(expit(z @ self.coef_ + self.intercept_), index=metrics.index)


def churn_labels(interactions: pd.DataFrame, start: pd.Timestamp, weeks: int) -> pd.Index:
    """Customers with at least one purchase in [start, start + weeks)."""
    ts = interactions["timestamp"]
    active = interactions.loc[(ts >= start) & (ts < start + pd.Timedelta(weeks=weeks)), "customer_id"]
    return pd.Index(active.unique())


def fit_churn_model(
    interactions: pd.DataFrame, as_of: pd.Timestamp, params: LifecycleParams
) -> ChurnModel | None:
    """Fit on metrics as of `as_of - horizon` with labels from [as_of - horizon, as_of).

    Returns None when the earlier snapshot has too little history (shorter than the baseline window
    or one class missing): the heuristic is used then.
    """
    from sklearn.linear_model import LogisticRegression

    horizon = params.churn_horizon_weeks
    snap = as_of - pd.Timedelta(weeks=horizon)
    if interactions.empty or interactions["timestamp"].min() > snap - pd.Timedelta(
        weeks=params.recent_weeks + params.baseline_weeks // 2
    ):
        return None
    train = _base_metrics(interactions, snap, params)
    y = (~train.index.isin(churn_labels(interactions, snap, horizon))).astype(int)
    if len(train) < 50 or y.min() == y.max():
        return None
    x = churn_features(train)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    clf = LogisticRegression(C=1.0, max_iter=1000).fit((x - mean) / scale, y)
    return ChurnModel(clf.coef_[0], float(clf.intercept_[0]), mean, scale)


def validate_churn(
    interactions: pd.DataFrame, as_of: str | pd.Timestamp, params: LifecycleParams | None = None
) -> dict[str, float]:
    """Out-of-time check of the churn model: fit one horizon before `as_of - horizon`, predict the
    snapshot at `as_of - horizon`, score against what happened in [as_of - horizon, as_of).

    Returns AUC, Brier score, base rate and mean predicted risk (calibration-in-the-large), for the
    model and the heuristic.
    """
    from sklearn.metrics import brier_score_loss, roc_auc_score

    params = params or LifecycleParams()
    as_of = pd.Timestamp(as_of)
    snap = as_of - pd.Timedelta(weeks=params.churn_horizon_weeks)
    model = fit_churn_model(interactions, snap, params)
    test = _base_metrics(interactions, snap, params)
    y = (~test.index.isin(churn_labels(interactions, snap, params.churn_horizon_weeks))).astype(int)
    out: dict[str, float] = {"n": float(len(y)), "churn_rate": float(y.mean())}
    preds = {"heuristic": heuristic_churn(test, params)}
    if model is not None:
        preds["model"] = model.predict(test)
    for name, p in preds.items():
        out[f"{name}_auc"] = float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")
        out[f"{name}_brier"] = float(brier_score_loss(y, p))
        out[f"{name}_mean_risk"] = float(np.mean(p))
    return out


def customer_lifetime_value(metrics: pd.DataFrame, params: LifecycleParams) -> pd.Series:
    """Discounted expected spend over the customer's remaining lifetime.

    Survival per horizon r = (1 - churn_risk) * clv_discount; expected discounted number of future
    horizons = r / (1 - r), capped at `clv_max_horizons`; CLV = weekly_spend * horizon_weeks * that.
    A spend measure, not margin: multiply by a margin rate for profit.
    """
    r = (1.0 - metrics["churn_risk"].clip(0.0, 1.0)) * params.clv_discount
    horizons = (r / (1.0 - r)).clip(upper=params.clv_max_horizons)
    return metrics["weekly_spend"] * params.churn_horizon_weeks * horizons


# ---- churn-risk tiers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TierRule:
    """max_level: largest discount the tier may get; min_roi: profit must be >= min_roi x cost."""

    max_level: float
    min_roi: float = 0.0


#: Churn-risk tiers, a business rule on top of the economics: loyal low-risk customers only get small,
#: clearly profitable discounts; customers whose visits drop may get more, the sharpest drops and
#: lapsed customers the most.
DEFAULT_TIERS: dict[str, TierRule] = {
    "loyal": TierRule(max_level=0.10, min_roi=0.2),
    "watch": TierRule(max_level=0.20),
    "dropping": TierRule(max_level=0.25),
    "at risk": TierRule(max_level=0.30),
}


def churn_tier(lifecycle: pd.DataFrame, low_risk: float = 0.25) -> pd.Series:
    """'loyal' (stable/growing, churn risk < low_risk), 'watch' (other stable/growing and new),
    'dropping', 'at risk' (dropping sharply or lapsed)."""
    seg, risk = lifecycle["segment"], lifecycle["churn_risk"]
    tier = np.select(
        [
            seg.isin(["dropping sharply", "lapsed"]),
            seg.eq("dropping"),
            seg.isin(["stable", "growing"]) & (risk < low_risk),
        ],
        ["at risk", "dropping", "loyal"],
        default="watch",
    )
    return pd.Series(tier, index=lifecycle.index)
