"""The README's main command end to end on tiny data: runs with params, metrics and plots, and a
registered @champion, all read back through the MLflow client."""

from __future__ import annotations

import yaml
from mlflow.tracking import MlflowClient

from cli.main import main
from tests.training.conftest import tiny_config


def test_pipeline_ends_with_a_champion(store, tiny_dir, tmp_path, model_name, capsys):
    config = tmp_path / "default.yaml"
    config.write_text(yaml.safe_dump(tiny_config(tiny_dir, experiment="pipeline").model_dump(mode="json")))
    code = main(["pipeline", "--data", str(tiny_dir), "--config", str(config), "--model", model_name])
    assert code == 0, capsys.readouterr()
    assert "PROMOTED" in capsys.readouterr().out
    client = MlflowClient()
    champion = client.get_model_version_by_alias(model_name, "champion")
    run = client.get_run(champion.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["ndcg_at_10__all"] > 0
    assert run.data.params["model.name"] == "buy_again"
    assert {a.path for a in client.list_artifacts(champion.run_id, "plots")} >= {"plots/metric_at_k.png"}
    # Re-running trains an identical model: the gate keeps the champion and the pipeline still succeeds.
    assert main(["pipeline", "--data", str(tiny_dir), "--config", str(config), "--model", model_name]) == 0
    assert client.get_model_version_by_alias(model_name, "champion").version == champion.version
