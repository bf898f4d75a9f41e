"""Attribution and analysis on a hand-made experiment whose every number can be checked by hand."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from recsys.experiments.analysis import analyse, attribute
from recsys.experiments.config import Experiment

EXP = Experiment.model_validate(
    {
        "name": "t",
        "surface": "products",
        "variants": [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}],
        "primary_metric": "spend",
        "secondary_metrics": ["conversion", "clicks"],
        "start": "2026-12-01T00:00:00Z",
        "stop": "2026-12-08T00:00:00Z",
        "attribution_window_days": 2,
        "pre_period_days": 7,
    }
)
T0 = pd.Timestamp("2026-12-02", tz="UTC")


def _exposure(cust: str, variant: str, rec: str, day: float = 0.0, violations: int = 0) -> dict:
    return {
        "variant": variant,
        "customer_id": cust,
        "recommendation_id": rec,
        "items": 5,
        "offer_cost": 0.0,
        "diet_violations": violations,
        "created_at": T0 + pd.Timedelta(days=day),
    }


def _event(cust: str, kind: str, day: float, rec: str | None = None, item: str = "x") -> dict:
    return {
        "customer_id": cust,
        "event_type": kind,
        "item_id": item,
        "quantity": 1.0,
        "recommendation_id": rec,
        "created_at": T0 + pd.Timedelta(days=day),
    }


def test_attribution_by_recommendation_id_and_window() -> None:
    exposures = pd.DataFrame(
        [_exposure("c1", "a", "r1"), _exposure("c1", "a", "r2", day=1), _exposure("c2", "b", "r3")]
    )
    events = pd.DataFrame(
        [
            _event("c1", "view", 0.1, rec="r1"),  # click on a recommendation
            _event("c1", "view", 0.2),  # a view without rec id is not a click
            _event("c1", "purchase", 2.5),  # inside [first, last + 2 days]
            _event("c1", "purchase", 3.5),  # after the window
            _event("c2", "purchase", 9.0, rec="r3"),  # quotes the rec id: counts whenever
            _event("c2", "purchase", -3.0),  # pre-period
            _event("c3", "purchase", 0.5),  # never exposed
        ]
    )
    purchases = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c2"],
            "timestamp": [T0 + pd.Timedelta(hours=5), T0 - pd.Timedelta(days=1), T0 + pd.Timedelta(days=30)],
            "value": [10.0, 7.0, 99.0],
            "discount": [1.0, 0.0, 0.0],
        }
    )
    out = attribute(EXP, exposures, events, purchases, prices=pd.Series({"x": 2.0})).set_index("customer_id")
    assert list(out.index) == ["c1", "c2"]
    c1, c2 = out.loc["c1"], out.loc["c2"]
    assert (c1.exposures, c1.clicks, c1.purchases, c1.spend, c1.discount_cost) == (2, 1, 2, 12.0, 1.0)
    assert (c2.purchases, c2.spend, c2.pre_spend, c2.conversion) == (1, 2.0, 9.0, 1.0)
    assert c1.margin == pytest.approx(0.3 * 12.0 - 1.0)


def test_analysis_finds_a_planted_effect_and_checks_srm_and_guardrails() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    variant = np.where(rng.random(n) < 0.5, "a", "b")
    pre = rng.gamma(2.0, 20.0, n)
    spend = pre * rng.gamma(10, 0.1, n) * np.where(variant == "b", 1.2, 1.0)
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "variant": variant,
            "first_exposure": T0 + pd.to_timedelta(rng.integers(0, 5, n), unit="D") - pd.Timedelta(days=1),
            "exposures": 1,
            "offers": 5,
            "offer_cost": 0.0,
            "diet_violations": 0,
            "pre_spend": pre,
            "spend": spend,
            "conversion": (spend > 0).astype(float),
            "clicks": rng.integers(0, 3, n).astype(float),
            "redemption": 0.0,
            "discount_cost": 0.0,
        }
    )
    result = analyse(EXP, customers, now=datetime(2026, 12, 6, tzinfo=UTC))
    spend_b = result.effects.set_index("metric").loc["spend"]
    assert spend_b.lift_cuped_lower < 0.2 < spend_b.lift_cuped_upper
    assert spend_b.lift_cuped_upper - spend_b.lift_cuped_lower < spend_b.lift_upper - spend_b.lift_lower
    assert result.srm_pvalue > 0.001 and result.looks == 5
    assert result.sequential.significant.item() and result.decision.startswith("significant")
    assert result.guardrails.ok.all()

    skewed = pd.concat([customers, customers[customers.variant == "a"].head(400)])
    assert analyse(EXP, skewed, now=datetime(2026, 12, 6, tzinfo=UTC)).decision.startswith(
        "STOP: sample ratio"
    )
    broken = customers.assign(diet_violations=(customers.index == 3).astype(int))
    assert "diet_violations" in analyse(EXP, broken, now=datetime(2026, 12, 6, tzinfo=UTC)).decision
