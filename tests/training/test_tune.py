"""Optuna tuning: nested runs under a parent, pruning, defaults vs best, and two worker processes
sharing one study through the database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.training.conftest import tiny_config
from training.registry import RegistryError, register
from training.tracking import ensure_experiment, setup_tracking
from training.tune import make_storage, tune

ROOT = Path(__file__).resolve().parents[2]
SPACE = {
    "half_life_days": {"type": "float", "low": 3.0, "high": 200.0, "log": True},
    "cycle_weight": {"type": "float", "low": 0.0, "high": 2.0},
}


def _config(tiny_dir, experiment: str):
    tuning = {"validation_weeks": 2, "space": SPACE, "pruner_startup_trials": 1, "prune_user_fraction": 0.5}
    return tiny_config(tiny_dir, "buy_again", tuning=tuning, experiment=experiment)


def test_trials_are_nested_runs_and_defaults_are_compared(store, tiny_dir):
    result = tune(_config(tiny_dir, "tune-one"), 5, study_name="one")
    assert result.n_trials == 5 and result.default_validation is not None
    assert result.best_validation >= result.default_validation
    assert result.default_test is not None and result.best_test is not None
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["improvement_validation"] >= 0
    assert "best.half_life_days" in parent.data.params
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == 5
    assert {c.info.status for c in children} == {"FINISHED"}  # pruned trials are tagged, not KILLED
    assert {c.data.tags["pruned"] for c in children} <= {"true", "false"}
    pruned = sum(c.data.tags["pruned"] == "true" for c in children)
    assert pruned == result.n_pruned
    for child in children:  # validation scores never share a name with training runs' test scores
        assert "ndcg_at_10__all" not in child.data.metrics
        assert child.data.tags["pruned"] == "true" or "val_ndcg_at_10__all" in child.data.metrics
    assert "tuning.md" in {a.path for a in client.list_artifacts(result.parent_run_id)}
    # the parent holds the best params' model, evaluated on the test split: it can be registered
    assert parent.data.metrics["ndcg_at_10__all"] == pytest.approx(result.best_test)
    version = register(result.parent_run_id, model_name=f"tuned-{uuid.uuid4().hex[:6]}")
    assert version.tags["run_id"] == result.parent_run_id
    trial = children[0].info.run_id
    with pytest.raises(RegistryError, match="register its parent run"):
        register(trial, model_name="never")


def test_tune_without_holdout_cannot_be_registered_and_zero_trials_is_refused(store, tiny_dir):
    config = _config(tiny_dir, "tune-noholdout")
    with pytest.raises(ValueError, match="at least 1"):
        tune(config, 0, study_name="zero")
    result = tune(config, 1, study_name="noholdout", holdout=False)
    with pytest.raises(RegistryError, match="--no-holdout"):
        register(result.parent_run_id, model_name="never")


def test_train_config_param_overrides_the_config(store, tiny_dir, tmp_path):
    from cli.main import main

    path = tmp_path / "c.yaml"
    config = tiny_config(tiny_dir, "popularity", {"window_days": 7.0}, experiment="override")
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["train", "--config", str(path), "--param", "window_days=3"]) == 0
    runs = MlflowClient().search_runs([ensure_experiment("override")])
    assert runs[0].data.params["model.window_days"] == "3"


def _workers(config_path: Path, storage: str, study: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "cli", "tune", "--config", str(config_path), "--trials", "2"]
    procs = [
        subprocess.Popen(
            [*cmd, "--study", study, "--storage", storage, "--seed", str(seed), "--no-holdout"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (1, 2)
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, out


def _check_shared(storage: str, study: str) -> None:
    trials = optuna.load_study(study_name=study, storage=make_storage(storage)).get_trials()
    workers = {t.user_attrs.get("worker") for t in trials}
    assert len(trials) == 4 and len(workers) == 2, [(t.number, t.user_attrs) for t in trials]


def _run_two_workers(tmp_path, tiny_dir, uri: str, storage: str, experiment: str) -> None:
    config_path = tmp_path / "tune.yaml"
    config_path.write_text(yaml.safe_dump(_config(tiny_dir, experiment).model_dump(mode="json")))
    setup_tracking()
    ensure_experiment(experiment)  # the team's store exists before workers join
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    _workers(config_path, storage, "shared", env)
    _check_shared(storage, "shared")


def test_two_worker_processes_share_a_sqlite_study(store, tiny_dir, tmp_path):
    _run_two_workers(tmp_path, tiny_dir, store, f"sqlite:///{tmp_path / 'optuna.db'}", "tune-sqlite")


@pytest.mark.postgres
def test_two_worker_processes_share_a_postgres_study(pg_store, tiny_dir, tmp_path):
    _run_two_workers(tmp_path, tiny_dir, pg_store, pg_store, "tune-pg")
