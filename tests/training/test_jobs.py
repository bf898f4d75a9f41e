"""A tracked training run on tiny data, read back through MlflowClient (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from recsys.data.io import read_manifest
from recsys.diet.constraints import ConstraintEngine
from tests.training.conftest import tiny_config
from training.jobs import run_training, train_from_flags
from training.registry import promote, register

PLOTS = {
    "plots/metric_at_k.png",
    "plots/popularity_bias.png",
    "plots/co2e_of_lists.png",
    "plots/segments.png",
}


def _check_run(run_id: str, data_dir) -> None:
    client = MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["model.name"] == "buy_again"
    assert params["model.half_life_days"]  # flattened from get_params(), also the defaults
    assert params["data.digest"] == read_manifest(data_dir)["digest"] == tags["dataset_digest"]
    assert tags["split_cutoff"] and tags["git_commit"]
    for key in ("ndcg_at_10__all", "ndcg_at_10__new", "recall_at_5__all", "coverage_at_10__new"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["ndcg_at_10__all"] > metrics["ndcg_at_10__new"]  # re-buys dominate
    timing_metrics = {"fit_seconds", "eval_seconds"}  # logged; their values are not asserted
    assert timing_metrics <= set(metrics)
    assert any(k.startswith("segment.") for k in metrics)
    assert run.inputs.dataset_inputs[0].dataset.digest == params["data.digest"]
    artifacts = {a.path for d in ("", "plots", "native_model") for a in client.list_artifacts(run_id, d)}
    assert artifacts >= PLOTS
    assert {"config.yaml", "native_model/model.json", "native_model/arrays.npz"} <= artifacts
    assert all(p.endswith(".png") for p in artifacts if p.startswith("plots/"))


def _check_pyfunc(run_id: str, data_dir) -> None:
    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    assert "user_id" in str(model.metadata.signature.inputs)  # from the predict type hints
    out = model.predict(
        [
            {"user_id": "C0001", "k": 5},
            {"user_id": "C0002", "k": 7, "diet": "vegan"},
            {"user_id": "never-seen", "k": 3, "diet": "gluten_free"},
        ]
    )
    assert [len(r.items) for r in out] == [5, 7, 3]
    assert out[0].scores == sorted(out[0].scores, reverse=True)
    products = pd.read_parquet(data_dir / "products.parquet")
    engine = ConstraintEngine(products)
    ids = products["product_id"].astype(str).tolist()
    for response, diet in ((out[1], "vegan"), (out[2], "gluten_free")):
        allowed = np.asarray(engine.allowed(diet))
        assert all(allowed[ids.index(i)] for i in response.items)


def test_run_is_read_back_from_sqlite(store, runs, tiny_dir):
    _check_run(runs["buy_again"], tiny_dir)
    _check_pyfunc(runs["buy_again"], tiny_dir)
    assert (Path(runs["native_out"]) / "model.json").exists()  # --out gets the native model too


def test_flag_form_is_tracked_the_same_way(store, tiny_dir, tmp_path):
    run_id = train_from_flags(tiny_dir, "2024-02-12", "popularity", {"window_days": 14.0}, tmp_path / "m")
    run = MlflowClient().get_run(run_id)
    assert run.data.params["model.window_days"] == "14.0"
    assert run.data.tags["split_cutoff"].startswith("2024-02-12")
    assert run.data.metrics["ndcg_at_10__all"] > 0
    assert (tmp_path / "m" / "arrays.npz").exists()


def test_default_store_is_sqlite_in_project(monkeypatch):
    from recsys.defaults import PROJECT_DIR
    from training.tracking import artifact_root, tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ARTIFACT_ROOT", raising=False)
    assert tracking_uri() == f"sqlite:///{PROJECT_DIR / 'mlflow.db'}"
    assert artifact_root() == (PROJECT_DIR / "mlartifacts").as_uri()


@pytest.mark.postgres
def test_run_registry_and_promotion_on_postgres(pg_store, tiny_dir, model_name):
    run_id = run_training(tiny_config(tiny_dir, experiment="tiny-pg"))
    assert mlflow.get_tracking_uri().startswith("postgresql")
    _check_run(run_id, tiny_dir)
    _check_pyfunc(run_id, tiny_dir)
    register(run_id, model_name=model_name)
    assert promote(model_name).promoted
    champion = MlflowClient().get_model_version_by_alias(model_name, "champion")
    assert champion.run_id == run_id
    served = mlflow.pyfunc.load_model(f"models:/{model_name}@champion")
    assert len(served.predict([{"user_id": "C0003", "k": 4, "diet": "vegan"}])[0].items) == 4
