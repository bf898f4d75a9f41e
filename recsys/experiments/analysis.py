"""From exposures and outcomes to a decision: attribution per customer, then effects per variant.

Attribution (`attribute`): a customer's window runs from their first exposure to their last exposure
plus the experiment's attribution window. Outcomes count when they quote one of the customer's
recommendation ids (whenever they happen) or belong to the customer inside the window. Outcomes are
feedback events (view = click on a recommendation, add_to_cart, purchase, offer_redeemed) and the
data import's purchase lines (value, discount), so purchases made at the till count too. The CUPED
covariate is the customer's spend in the `pre_period_days` before their first exposure.

Analysis (`analyse`): per variant the exposed customers and metric means; against the control the
absolute difference and relative lift (delta method) with and without CUPED, the group-sequential
test of the primary metric over the daily looks so far, the sample-ratio-mismatch check and the
guardrails. Intent-to-treat: everyone assigned and exposed counts, whatever they did next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from recsys.experiments.config import Experiment
from recsys.experiments.stats import Moments, difference, relative_lift, sequential_test, srm_pvalue

METRICS = ("conversion", "spend", "add_to_cart", "clicks", "redemption", "discount_cost", "margin")
EXPOSURE_COLUMNS = (
    "variant",
    "customer_id",
    "recommendation_id",
    "items",
    "offer_cost",
    "diet_violations",
    "created_at",
)
EVENT_COLUMNS = ("customer_id", "event_type", "item_id", "quantity", "recommendation_id", "created_at")
PURCHASE_COLUMNS = ("customer_id", "timestamp", "value", "discount")
#: Fewer customers in an arm than this: means are shown, CIs and tests are not (normal approximations
#: need tens of customers; a 0/5 conversion would otherwise read as "significant").
MIN_PER_ARM = 30


EFFECT_COLUMNS = (
    "difference",
    "difference_lower",
    "difference_upper",
    "lift",
    "lift_lower",
    "lift_upper",
    "lift_cuped",
    "lift_cuped_lower",
    "lift_cuped_upper",
    "p_value",
    "p_value_cuped",
    "z_cuped",
)


def _utc(s: pd.Series) -> pd.Series:
    s = pd.to_datetime(s)
    return s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")


def _require(frame: pd.DataFrame, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)}")


def attribute(
    exp: Experiment,
    exposures: pd.DataFrame,
    events: pd.DataFrame,
    purchases: pd.DataFrame | None = None,
    prices: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per exposed customer: variant, first exposure, pre-period spend and every metric.

    `prices` (item id -> unit price) values purchase events; without it they count for conversion
    only. A customer seen under two variants (a changed config) is dropped: their outcome is not
    attributable to either.
    """
    _require(exposures, EXPOSURE_COLUMNS, "exposures")
    _require(events, EVENT_COLUMNS, "events")
    exp_rows = exposures.assign(created_at=_utc(exposures["created_at"]))
    per = exp_rows.groupby("customer_id").agg(
        variant=("variant", "first"),
        variants=("variant", "nunique"),
        first_exposure=("created_at", "min"),
        last_exposure=("created_at", "max"),
        exposures=("recommendation_id", "size"),
        offers=("items", "sum"),
        offer_cost=("offer_cost", "sum"),
        diet_violations=("diet_violations", "sum"),
    )
    per = per[per.variants == 1].drop(columns="variants")
    window = pd.Timedelta(days=exp.attribution_window_days)
    per["window_end"] = per["last_exposure"] + window
    pre = pd.Timedelta(days=exp.pre_period_days)

    rec_owner = exp_rows.drop_duplicates("recommendation_id").set_index("recommendation_id")["customer_id"]
    ev = events.assign(created_at=_utc(events["created_at"]))
    ev = ev[ev.customer_id.isin(per.index) | ev.recommendation_id.isin(rec_owner.index)]
    ev = ev.assign(quoted=ev.recommendation_id.isin(rec_owner.index))
    ev = ev.assign(customer_id=ev.recommendation_id.map(rec_owner).fillna(ev.customer_id))
    ev = ev.join(per[["first_exposure", "window_end"]], on="customer_id", how="inner")
    in_window = (ev.created_at >= ev.first_exposure) & (ev.created_at <= ev.window_end)
    price = ev.item_id.map(prices) if prices is not None else pd.Series(0.0, index=ev.index)
    ev = ev.assign(value=ev.quantity.astype(float) * price.fillna(0.0).astype(float))
    attributed = ev[in_window | ev.quoted]
    before = ev[(ev.created_at < ev.first_exposure) & (ev.created_at >= ev.first_exposure - pre)]

    def count(kind: str, frame: pd.DataFrame = attributed, quoted_only: bool = False) -> pd.Series:
        rows = frame[(frame.event_type == kind) & (frame.quoted if quoted_only else True)]
        return rows.groupby("customer_id").size()

    buys = attributed[attributed.event_type == "purchase"]
    out = per.copy()
    out["clicks"] = count("view", quoted_only=True)
    out["add_to_cart"] = count("add_to_cart")
    out["redemption"] = count("offer_redeemed")
    out["purchases"] = buys.groupby("customer_id").size()
    out["spend"] = buys.groupby("customer_id").value.sum()
    out["pre_spend"] = before[before.event_type == "purchase"].groupby("customer_id").value.sum()
    out["discount_cost"] = 0.0
    if purchases is not None and len(purchases):
        _require(purchases, PURCHASE_COLUMNS, "purchases")
        p = purchases[purchases.customer_id.isin(per.index)]
        p = p.assign(timestamp=_utc(p["timestamp"])).join(
            per[["first_exposure", "window_end"]], on="customer_id"
        )
        inside = p[(p.timestamp >= p.first_exposure) & (p.timestamp <= p.window_end)]
        prior = p[(p.timestamp < p.first_exposure) & (p.timestamp >= p.first_exposure - pre)]
        g = inside.groupby("customer_id")
        out["purchases"] = out["purchases"].fillna(0) + g.size().reindex(out.index).fillna(0)
        out["spend"] = out["spend"].fillna(0) + g.value.sum().reindex(out.index).fillna(0)
        out["discount_cost"] = g.discount.sum().reindex(out.index).fillna(0)
        out["pre_spend"] = out["pre_spend"].fillna(0) + prior.groupby("customer_id").value.sum().reindex(
            out.index
        ).fillna(0)
    out = out.fillna(
        {c: 0.0 for c in ("clicks", "add_to_cart", "redemption", "purchases", "spend", "pre_spend")}
    )
    out["conversion"] = (out["purchases"] > 0).astype(float)
    out["margin"] = exp.gross_margin * out["spend"] - out["discount_cost"]
    return out.drop(columns=["window_end"]).reset_index()


@dataclass
class Analysis:
    """Everything a report shows (aggregates only: no customer ids)."""

    experiment: Experiment
    variants: pd.DataFrame
    effects: pd.DataFrame
    srm_pvalue: float
    guardrails: pd.DataFrame
    looks: int
    sequential: pd.DataFrame
    decision: str
    notes: list[str] = field(default_factory=list)


def analyse(
    exp: Experiment,
    customers: pd.DataFrame,
    now: datetime,
    exposures: pd.DataFrame | None = None,
    latency_p95_ms: float | None = None,
) -> Analysis:
    """Effects of every variant against the control, from `attribute`'s per-customer table."""
    names = [v.name for v in exp.variants]
    control = exp.control_variant
    metrics = [exp.primary_metric, *[m for m in exp.secondary_metrics if m != exp.primary_metric]]
    counts = customers.groupby("variant").size().reindex(names, fill_value=0)
    srm = (
        srm_pvalue(counts.to_numpy(), np.array([v.share for v in exp.variants]))
        if counts.sum()
        else float("nan")
    )

    rows = []
    for name in names:
        part = customers[customers.variant == name]
        offers = part["offers"].sum() if len(part) else 0
        rows.append(
            {
                "variant": name,
                "share": exp.variant(name).share,
                "customers": len(part),
                "exposures": int(part["exposures"].sum()) if len(part) else 0,
                **{m: float(part[m].mean()) if len(part) else float("nan") for m in metrics},
                "redemption_per_offer": float(part["redemption"].sum() / offers) if offers else float("nan"),
                "discount_cost_per_offer": float(part["discount_cost"].sum() / offers)
                if offers
                else float("nan"),
            }
        )
    variants = pd.DataFrame(rows)

    def moments(name: str, metric: str, frame: pd.DataFrame = customers) -> Moments:
        part = frame[frame.variant == name]
        return Moments.of(part[metric].to_numpy(float), part["pre_spend"].to_numpy(float))

    effects = []
    for name in names:
        if name == control:
            continue
        for metric in metrics:
            c, t = moments(control, metric), moments(name, metric)
            if min(c.n, t.n) < MIN_PER_ARM:
                effects.append(
                    {"variant": name, "metric": metric, "control": float(c.mean), "treatment": float(t.mean)}
                )
                continue
            lift = relative_lift(c, t, exp.alpha)
            cl = relative_lift(c, t, exp.alpha, cuped=True)
            cd = difference(c, t, exp.alpha, cuped=True)
            effects.append(
                {
                    "variant": name,
                    "metric": metric,
                    "control": float(c.mean),
                    "treatment": float(t.mean),
                    "difference": float(cd.estimate),
                    "difference_lower": float(cd.lower),
                    "difference_upper": float(cd.upper),
                    "lift": float(lift.estimate),
                    "lift_lower": float(lift.lower),
                    "lift_upper": float(lift.upper),
                    "lift_cuped": float(cl.estimate),
                    "lift_cuped_lower": float(cl.lower),
                    "lift_cuped_upper": float(cl.upper),
                    "p_value": float(lift.p_value),
                    "p_value_cuped": float(cl.p_value),
                    "z_cuped": float(cd.z),
                }
            )
    effects = pd.DataFrame(effects)
    for col in EFFECT_COLUMNS:
        if col not in effects:
            effects[col] = float("nan")

    # daily looks at the primary metric: customers first exposed before the end of each day
    planned = exp.days()
    start = (
        pd.Timestamp(exp.start).tz_localize("UTC") if exp.start.tzinfo is None else pd.Timestamp(exp.start)
    )
    now_ts = pd.Timestamp(now).tz_localize("UTC") if pd.Timestamp(now).tzinfo is None else pd.Timestamp(now)
    looks = int(np.clip(np.ceil((now_ts - start) / pd.Timedelta(days=1)), 1, planned))
    seq_rows = []
    for name in names:
        if name == control:
            continue
        z = []
        for d in range(1, looks + 1):
            seen = customers[customers.first_exposure < start + pd.Timedelta(days=d)]
            c, t = moments(control, exp.primary_metric, seen), moments(name, exp.primary_metric, seen)
            enough = min(c.n, t.n) >= MIN_PER_ARM
            z.append(float(difference(c, t, exp.alpha, cuped=True).z) if enough else 0.0)
        seq = sequential_test(np.nan_to_num(np.array(z)), planned, exp.alpha)
        seq_rows.append(
            {
                "variant": name,
                "look": looks,
                "of": planned,
                "z_cuped": z[-1],
                "boundary": float(seq.boundaries[-1]),
                "first_crossing_day": int(seq.first_crossing) + 1 if seq.significant else None,
                "significant": bool(seq.significant),
            }
        )
    sequential = pd.DataFrame(seq_rows)

    guard = []
    violations = int(customers["diet_violations"].sum()) if "diet_violations" in customers else 0
    guard.append(
        {"guardrail": "diet_violations", "value": float(violations), "limit": "0", "ok": violations == 0}
    )
    if exp.guardrails.latency_p95_ms is not None:
        ok = latency_p95_ms is not None and latency_p95_ms <= exp.guardrails.latency_p95_ms
        value = float("nan") if latency_p95_ms is None else latency_p95_ms
        guard.append(
            {
                "guardrail": "latency_p95_ms",
                "value": value,
                "limit": f"<= {exp.guardrails.latency_p95_ms:g}",
                "ok": ok,
            }
        )
    for metric in exp.guardrails.metrics:
        for row in effects[effects.metric == metric].itertuples() if len(effects) else ():
            ok = not (row.lift_cuped_upper < 0)  # NaN (too few customers) is not a breach
            guard.append(
                {
                    "guardrail": f"{metric} ({row.variant})",
                    "value": row.lift_cuped,
                    "limit": "no significant drop",
                    "ok": ok,
                }
            )
    guardrails = pd.DataFrame(guard)
    decision = _decide(exp, sequential, guardrails, srm, looks, planned)
    return Analysis(exp, variants, effects, srm, guardrails, looks, sequential, decision)


def _decide(
    exp: Experiment, seq: pd.DataFrame, guard: pd.DataFrame, srm: float, looks: int, planned: int
) -> str:
    if not np.isnan(srm) and srm < 0.001:
        return f"STOP: sample ratio mismatch (p = {srm:.2g}); the assignment or logging is broken"
    if len(guard) and not guard["ok"].all():
        broken = ", ".join(guard.loc[~guard["ok"], "guardrail"])
        return f"STOP: guardrail broken ({broken})"
    winners = seq[seq.significant] if len(seq) else seq
    if len(winners):
        return f"significant on {exp.primary_metric} at look {looks}/{planned}: {', '.join(winners.variant)}"
    if looks >= planned:
        return f"no significant difference on {exp.primary_metric} after {planned} looks"
    return f"continue: look {looks} of {planned}, no boundary crossed on {exp.primary_metric}"
