"""Promotion gate: first challenger becomes champion, a worse one is refused with the reason, a better
one is promoted, a diet-violating one is refused, and a crashing job leaves its run FAILED."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from cli.main import main
from recsys.models.buy_again import BuyAgain
from tests.training.conftest import tiny_config
from training.jobs import run_training
from training.registry import CHAMPION, RegistryError, promote, register


def _alias(name: str, alias: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except Exception:
        return None


def test_champion_refusal_and_promotion(store, runs, model_name, capsys):
    name = model_name
    register(runs["popularity"], model_name=name)
    decision = promote(name)
    assert decision.promoted and "no @champion" in decision.reason
    assert decision.violations == 0 and decision.probe_lists > 0
    assert _alias(name, CHAMPION) == "1"

    register(runs["popularity_2d"], model_name=name)
    assert main(["promote", "--model", name]) == 1  # refused -> non-zero exit
    err = capsys.readouterr()
    assert "REFUSED" in err.out and "does not beat" in err.err
    assert _alias(name, CHAMPION) == "1"
    refused = MlflowClient().get_model_version(name, "2")
    assert refused.tags["promotion.decision"] == "refused"
    assert float(refused.tags["promotion.challenger_value"]) < float(refused.tags["promotion.champion_value"])

    register(runs["buy_again"], model_name=name)
    decision = promote(name)
    assert decision.promoted and decision.same_split
    assert decision.challenger_value > decision.champion_value
    assert _alias(name, CHAMPION) == "3" and _alias(name, "previous-champion") == "1"
    log = MlflowClient().search_runs(
        [MlflowClient().get_experiment_by_name(f"{name}-promotions").experiment_id],
        order_by=["attributes.start_time ASC"],
    )
    assert [r.data.tags["decision"] for r in log] == ["promoted", "refused", "promoted"]
    assert log[1].data.metrics["challenger_value"] < log[1].data.metrics["champion_value"]


def test_other_split_is_reevaluated_on_the_challengers_split(store, runs, model_name):
    register(runs["popularity"], model_name=model_name)
    assert promote(model_name).promoted
    register(runs["buy_again_3w"], model_name=model_name)
    decision = promote(model_name)
    assert decision.same_split is False and decision.promoted
    assert "re-evaluated" in decision.reason


def test_diet_violations_refuse_promotion(store, runs, model_name, monkeypatch):
    name = model_name
    register(runs["buy_again"], model_name=name)
    # A selection path that forgets the diet mask must never become champion.
    import numpy as np

    from recsys.ranking.selection import ProductSelector

    monkeypatch.setattr(ProductSelector, "mask", lambda self, q, s: np.ones(self.n_items, dtype=bool))
    monkeypatch.setattr(ProductSelector, "forbidden", lambda self, profile: np.empty(0, dtype=np.int64))
    decision = promote(name)
    assert not decision.promoted and decision.violations > 0
    assert "constraint checks failed" in decision.reason and decision.examples
    assert _alias(name, CHAMPION) is None


def test_crashing_job_leaves_run_failed_and_moves_no_alias(store, runs, tiny_dir, model_name, monkeypatch):
    name = model_name
    register(runs["popularity"], model_name=name)
    assert promote(name).promoted

    def boom(self, dataset):
        raise RuntimeError("fit exploded")

    monkeypatch.setattr(BuyAgain, "_fit", boom)
    with pytest.raises(RuntimeError, match="fit exploded"):
        run_training(tiny_config(tiny_dir, "buy_again", experiment="crash"))
    client = MlflowClient()
    runs = client.search_runs(
        [client.get_experiment_by_name("crash").experiment_id], order_by=["attributes.start_time DESC"]
    )
    assert runs[0].info.status == "FAILED"
    with pytest.raises(RegistryError, match="FAILED"):
        register(runs[0].info.run_id, model_name=name)
    assert _alias(name, CHAMPION) == "1" and _alias(name, "challenger") == "1"
    assert len(client.search_model_versions(f"name='{name}'")) == 1
