"""The README's main command end to end on tiny data: runs with params, metrics and plots, a
registered @champion and the discount planner's @champion plan, all read back through the MLflow client."""

from __future__ import annotations

import os

import yaml
from mlflow.tracking import MlflowClient

from cli.main import main
from serving.events import EventStore
from tests.training.conftest import tiny_config


def test_pipeline_ends_with_a_champion(store, tiny_dir, tmp_path, model_name, capsys, monkeypatch):
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{tmp_path / 'events.db'}")
    EventStore(os.environ["RECSYS_EVENTS_URL"]).connect()  # an empty store: nothing erased yet
    config = tmp_path / "default.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_dir, experiment="pipeline").model_dump(mode="json")))
    planner = f"{model_name}-planner"
    base = ["pipeline", "--data", str(tiny_dir), "--config", str(config), "--model", model_name]
    code = main([*base, "--planner", planner])
    assert code == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "PROMOTED" in out and f"registered {planner} v1 as @champion" in out
    client = MlflowClient()
    champion = client.get_model_version_by_alias(model_name, "champion")
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["ndcg_at_10__all"] > 0
    assert run.data.params["model.name"] == "buy_again"
    assert {a.path for a in client.list_artifacts(champion.run_id, "plots")} >= {"plots/metric_at_k.png"}
    # Re-running trains an identical model: the gate keeps the champion and the pipeline still succeeds.
    plan = client.get_model_version_by_alias(planner, "champion")
    assert client.get_run(plan.run_id).data.tags["dataset_digest"] == run.data.tags["dataset_digest"]
    assert main([*base, "--planner", planner]) == 0
    assert client.get_model_version_by_alias(model_name, "champion").version == champion.version
    assert str(client.get_model_version_by_alias(planner, "champion").version) == "2"  # each run plans anew
