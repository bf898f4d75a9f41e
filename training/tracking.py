"""Where runs go and what every run records, so that each run can be reproduced from MLflow alone.

Default store: a SQLite file in the project folder (the registry needs a database backend; a bare
`mlruns/` directory cannot hold aliases), artifacts beside it in `mlartifacts/`.
`MLFLOW_TRACKING_URI` overrides both (PostgreSQL for teams).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from recsys.defaults import DEFAULT_TRACKING_URI, PROJECT_DIR

MAX_PARAM_LENGTH = 6000

#: Run tags the promotion gate relies on: two runs are comparable only if both match.
TAG_DIGEST = "dataset_digest"
TAG_CUTOFF = "split_cutoff"
TAG_DATA_DIR = "data_dir"
TAG_UNTIL = "split_until"
TAG_MODEL = "model_name"
TAG_CONFIG = "config_name"
TAG_GIT = "git_commit"
TAG_PROMOTION_METRIC = "promotion_metric"
TAG_KIND = "run_kind"


def default_tracking_uri() -> str:
    return DEFAULT_TRACKING_URI


def artifact_root(uri: str | None = None) -> str | None:
    """Where new experiments keep artifacts: `MLFLOW_ARTIFACT_ROOT`, else `mlartifacts/` beside a
    SQLite file, else the project's `mlartifacts/` (database stores); a tracking server decides itself.
    """
    if os.environ.get("MLFLOW_ARTIFACT_ROOT"):
        return os.environ["MLFLOW_ARTIFACT_ROOT"].rstrip("/")
    uri = uri or tracking_uri()
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    db = sqlite_path(uri)
    if db is not None:
        return (db.parent / "mlartifacts").resolve().as_uri()
    return (PROJECT_DIR / "mlartifacts").resolve().as_uri()


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (query string dropped), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def with_sqlite_timeout(uri: str, seconds: int = 60) -> str:
    """Several processes (tuning workers) write to one SQLite file: wait for its lock instead of
    failing with "database is locked" after sqlite3's default 5 s."""
    if sqlite_path(uri) is None or "timeout=" in uri:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}timeout={seconds}"


def setup_tracking() -> str:
    """Point MLflow at the configured store; returns the URI (printed by the commands)."""
    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(with_sqlite_timeout(uri))
    mlflow.set_registry_uri(with_sqlite_timeout(os.environ.get("MLFLOW_REGISTRY_URI") or uri))
    return uri


def ensure_experiment(name: str) -> str:
    """Experiment id by name, created with an artifact location that is not the working directory."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = artifact_root(mlflow.get_tracking_uri())
    location = f"{root}/{name}" if root else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another worker created it between our lookup and create.
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit(cwd: Path = PROJECT_DIR) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Nested mappings -> dotted keys ('model.factors'); lists become their repr (MLflow params are text)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), sub))
        return out
    text = value if isinstance(value, str) else repr(value) if isinstance(value, list | tuple) else value
    if isinstance(text, str) and len(text) > MAX_PARAM_LENGTH:
        text = text[: MAX_PARAM_LENGTH - 3] + "..."
    return {prefix: text}


def metric_key(metric: str, k: int | None, track: str) -> str:
    """ndcg, 10, all -> 'ndcg_at_10__all' (MLflow keys allow no '@')."""
    return f"{metric}_at_{k}__{track}" if k is not None else f"{metric}__{track}"


def run_url(run_id: str) -> str:
    run = MlflowClient().get_run(run_id)
    return f"experiment {run.info.experiment_id}, run {run_id}"
