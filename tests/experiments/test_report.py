"""The report: Markdown, a plot per metric, and an MLflow run holding aggregates only."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from recsys.experiments.analysis import analyse
from recsys.experiments.config import Experiment

EXP = Experiment.model_validate(
    {
        "name": "holdout-t",
        "surface": "discounts",
        "variants": [{"name": "holdout", "share": 0.2, "discount": "none"}, {"name": "plan", "share": 0.8}],
        "control": "holdout",
        "primary_metric": "margin",
        "secondary_metrics": ["spend", "redemption"],
        "start": "2026-12-01T00:00:00Z",
        "stop": "2026-12-15T00:00:00Z",
    }
)


def _customers(n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    plan = rng.random(n) < 0.8
    pre = rng.gamma(2.0, 20.0, n)
    spend = pre * rng.gamma(10, 0.1, n) + np.where(plan, 5.0, 0.0)
    cost = np.where(plan, 1.0, 0.0)
    return pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "variant": np.where(plan, "plan", "holdout"),
            "first_exposure": pd.Timestamp("2026-12-02", tz="UTC"),
            "exposures": 1,
            "offers": np.where(plan, 2, 0),
            "offer_cost": cost,
            "diet_violations": 0,
            "pre_spend": pre,
            "spend": spend,
            "conversion": 1.0,
            "redemption": plan.astype(float),
            "discount_cost": cost,
            "margin": 0.3 * spend - cost,
        }
    )


def test_report_files_and_mlflow_run(tmp_path, monkeypatch):
    import mlflow

    from training.experiments import log_report, write_report

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = analyse(EXP, _customers(), now=datetime(2026, 12, 10, tzinfo=UTC))
    margin = result.effects.set_index("metric").loc["margin"]
    assert margin.difference_lower < 0.3 * 5.0 - 1.0 < margin.difference_upper  # true incremental margin 0.5
    files = write_report(result, tmp_path / "out")
    assert {p.name for p in files} >= {
        "report.md",
        "lift_margin.png",
        "lift_spend.png",
        "lift_redemption.png",
    }
    assert "incremental margin" in (tmp_path / "out" / "report.md").read_text()
    plan_row = result.variants.set_index("variant").loc["plan"]
    assert plan_row.redemption_per_offer == 0.5 and plan_row.discount_cost_per_offer == 0.5

    run_id = log_report(result, files)
    run = mlflow.get_run(run_id)
    assert (
        run.data.metrics["customers.plan"] == (result.variants.set_index("variant").loc["plan", "customers"])
    )
    assert "lift_cuped.margin.plan" in run.data.metrics
    assert not any(k.startswith("c1") or "c1" in v for k, v in run.data.params.items())  # no customer ids
