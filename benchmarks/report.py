"""What every benchmark writes: one current `results/<name>.md` + `.csv`, and an MLflow run.

The files hold the current headline run only (the README quotes them); variants and history runs are
MLflow runs in the experiment `benchmark-<name>`, compared in the MLflow UI rather than kept as files.
"""

from __future__ import annotations

import math
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from training.markdown import markdown_table

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

__all__ = ["RESULTS", "ROOT", "log_run", "machine_note", "markdown_table", "write_results"]


def machine_note() -> str:
    """Load average and core count at the time of the run (figures are only comparable within a run)."""
    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return f"{os.cpu_count()} cores, load average {load}"


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def write_results(name: str, md: str, table: pd.DataFrame, headline: bool = True) -> None:
    """Print the markdown; a headline run also replaces results/<name>.md and .csv."""
    print(md)
    if not headline:
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.md").write_text(md if md.endswith("\n") else md + "\n")
    table.to_csv(RESULTS / f"{name}.csv", index=False)


def log_run(
    name: str,
    params: Mapping[str, object],
    metrics: Mapping[str, float],
    artifacts: list[Path] | None = None,
    tracking_uri: str | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> str | None:
    """One MLflow run in experiment `benchmark-<name>` (aggregate figures only); returns its run id.
    `tables` (file name -> frame) are logged as CSV artifacts of the run, not kept as result files.

    MLflow being unavailable must not lose a benchmark's printed result, so failures are reported and
    swallowed.
    """
    try:
        import mlflow

        from recsys.defaults import DEFAULT_TRACKING_URI

        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(f"benchmark-{name}")
        with mlflow.start_run() as run:
            mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
            mlflow.log_params({"git_commit": git_commit(), "machine": machine_note()})
            finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
            if finite:
                mlflow.log_metrics(finite)
            for path in artifacts or []:
                if Path(path).exists():
                    mlflow.log_artifact(str(path))
            for file_name, frame in (tables or {}).items():
                mlflow.log_text(frame.to_csv(index=False), file_name)
            return run.info.run_id
    except Exception as exc:  # noqa: BLE001 - reporting must not fail the benchmark
        print(f"warning: benchmark run not logged to MLflow: {exc}")
        return None
