"""Train several configs on one dataset into ONE experiment and print them side by side.

All runs land in the same MLflow experiment and carry a shared `compare_group` tag, so the UI's
compare view shows exactly the table printed here.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

from mlflow.tracking import MlflowClient

from training.config import ExperimentConfig, load_config
from training.data import PreparedData, prepare
from training.jobs import run_training

DEFAULT_EXPERIMENT = "grocery-recsys-compare"
DEFAULT_COLUMNS = (
    "ndcg_at_10__all",
    "ndcg_at_10__new",
    "recall_at_10__all",
    "hit_rate_at_10__all",
    "coverage_at_10__all",
    "popularity_bias_at_10__all",
    "fit_seconds",
)


def compare_configs(
    configs: list[ExperimentConfig], experiment: str = DEFAULT_EXPERIMENT
) -> tuple[str, list[dict]]:
    """(group id, one row per config with its run id and metrics)."""
    group = uuid.uuid4().hex[:8]
    cache: dict[str, PreparedData] = {}
    rows = []
    for n, config in enumerate(configs, 1):
        print(
            f"== config {n}/{len(configs)}: {config.name} ({config.model.name})", file=sys.stderr, flush=True
        )
        key = config.data.model_dump_json()
        if key not in cache:
            cache[key] = prepare(config.data)
        run_id = run_training(config, experiment=experiment, tags={"compare_group": group}, data=cache[key])
        metrics = MlflowClient().get_run(run_id).data.metrics
        rows.append({"config": config.name, "model": config.model.name, "run_id": run_id, **metrics})
    return group, rows


def format_table(rows: list[dict], columns: tuple[str, ...] = DEFAULT_COLUMNS) -> str:
    head = ["config", "model", *columns, "run_id"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row["config"]), str(row["model"])]
        cells += [f"{row[c]:.4f}" if isinstance(row.get(c), float) else "n/a" for c in columns]
        cells.append(row["run_id"])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(paths: list[str | Path], experiment: str = DEFAULT_EXPERIMENT) -> str:
    group, rows = compare_configs([load_config(p) for p in paths], experiment)
    table = format_table(rows)
    return f"{table}\n\nexperiment {experiment!r}, tag compare_group = {group}"
