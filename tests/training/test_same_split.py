"""The promotion gate's "same split" includes erasures: a model trained after a customer was erased
saw other data than one trained before it, on the same data directory and cutoff."""

from __future__ import annotations

from mlflow.tracking import MlflowClient

from serving.events import EventStore, NewEvent
from tests.training.conftest import tiny_config
from training.jobs import run_training
from training.registry import _split_key, register


def test_an_erasure_between_two_runs_makes_their_splits_differ(
    store, tiny_dir, tmp_path, monkeypatch, model_name
):
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{tmp_path / 'events.db'}")
    EventStore(f"sqlite:///{tmp_path / 'events.db'}").connect()  # an empty store: nothing erased yet
    config = tiny_config(tiny_dir, "popularity", experiment="same-split")
    before = register(run_training(config), model_name=model_name)
    again = register(run_training(config), model_name=model_name)
    events = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    events.add_events([NewEvent("C0003", "purchase", "P0002")])
    events.erase("C0003")
    events.close()
    after = register(run_training(config), model_name=model_name)
    client = MlflowClient()
    assert _split_key(before, client) == _split_key(again, client)
    assert _split_key(before, client) != _split_key(after, client)
