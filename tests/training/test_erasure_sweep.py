"""The erasure sweep: erase a customer through the event store, run every batch command, and look for
the id in every artifact and output (model dirs, CSVs, plan dirs, MLflow params/metrics/tags/artifacts).
A customer who withdrew marketing consent through the service gets no offer anywhere either."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from cli.main import main
from serving.events import CustomerRecord, EventStore, NewEvent
from tests.training.conftest import _env, tiny_config

ENCODINGS = ("utf-8", "utf-16-le", "utf-32-le")


def _occurs(path: Path, needle: str) -> bool:
    """Whether `needle` is in the file: as text in any common encoding, or as a value of a table/array."""
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
        return any(frame[c].astype(str).str.contains(needle, regex=False).any() for c in frame.columns)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as arrays:
            return any(
                needle in "".join(map(str, a.ravel())) for a in arrays.values() if a.dtype.kind in "USO"
            )
    data = path.read_bytes()
    return any(needle.encode(enc) in data for enc in ENCODINGS)


def _files_with(root: Path, needle: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and _occurs(p, needle)]


def _mlflow_mentions(needle: str) -> list[str]:
    client = MlflowClient()
    found = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], max_results=1000):
            blob = json.dumps([run.data.params, run.data.metrics, run.data.tags, run.info.run_name])
            if needle in blob:
                found.append(run.info.run_id)
    return found


UNTIL = "2024-03-10"


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Its own MLflow store: the sweep looks through every run and artifact, and other tests' runs
    on data with the same synthetic ids must not count as this customer's."""
    from lab.synthetic import generate, write_synthetic

    _env(monkeypatch, f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "mlartifacts")

    data = tmp_path / "data"
    write_synthetic(generate(n_customers=120, n_products=150, weeks=12, seed=1), data)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "users.txt").write_text("\n".join(f"C{u:03d}" for u in range(120)) + "\n")
    offers_cfg = tmp_path / "offers.yaml"
    offers_cfg.write_text(f"budget: 100000\ndata:\n  source: {data}\n  dir: {data}\n")
    url = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    EventStore(url).connect()
    return data, out, offers_cfg, url


def test_an_erased_customer_is_in_no_artifact_or_output(world, tmp_path, model_name):
    data, out, offers_cfg, url = world
    # before: the plan names customers; pick one to erase and one who withdraws marketing consent
    assert (
        main(["offers", "--config", str(offers_cfg), "--no-track", "--out", str(tmp_path / "base.csv")]) == 0
    )
    offered = pd.read_csv(tmp_path / "base.csv", dtype=str)["customer_id"].value_counts().index
    erased, withdrawn = str(offered[0]), str(offered[1])
    engaged = pd.read_parquet(data / "engagement.parquet")["customer_id"]
    assert (engaged == erased).any()  # the data holds their engagement: it must reach no output either
    assert (
        main(
            [
                "recommend",
                "--model",
                str(_fit(data, out / "before")),
                "--users",
                str(tmp_path / "users.txt"),
                "--out",
                str(tmp_path / "before.csv"),
            ]
        )
        == 0
    )
    assert erased in set(pd.read_csv(tmp_path / "before.csv", dtype=str)["user_id"])

    store = EventStore(url)
    try:
        store.add_events([NewEvent(erased, "purchase", "P0001")])
        store.erase(erased)
        store.upsert_customer(CustomerRecord(withdrawn, True, False))
    finally:
        store.close()
    (out / "before").rename(tmp_path / "before-model")  # made before the erasure: not part of the sweep
    assert _files_with(tmp_path / "before-model", erased)  # the sweep does find the id where it is

    config = out / "cfg.yaml"
    config.write_text(yaml.safe_dump(tiny_config(data, experiment="sweep").model_dump(mode="json")))
    until = UNTIL
    commands = [
        [
            "train",
            "--data",
            str(data),
            "--until",
            until,
            "--model",
            "buy_again",
            "--out",
            str(out / "untracked"),
            "--no-track",
        ],
        [
            "train",
            "--data",
            str(data),
            "--until",
            until,
            "--model",
            "popularity",
            "--out",
            str(out / "flags"),
        ],
        ["train", "--config", str(config), "--out", str(out / "config")],
        [
            "recommend",
            "--model",
            str(out / "untracked"),
            "--users",
            str(tmp_path / "users.txt"),
            "--out",
            str(out / "recs.csv"),
        ],
        [
            "recipes",
            "--model",
            str(out / "untracked"),
            "--users",
            str(tmp_path / "users.txt"),
            "--data",
            str(data),
            "--out",
            str(out / "recipes.csv"),
        ],
        [
            "offers",
            "--config",
            str(offers_cfg),
            "--model",
            f"{model_name}-planner",
            "--out",
            str(out / "plan.csv"),
            "--plan-dir",
            str(out / "plan"),
        ],
        [
            "pipeline",
            "--data",
            str(data),
            "--config",
            str(config),
            "--model",
            model_name,
            "--offers-config",
            str(offers_cfg),
            "--planner",
            f"{model_name}-planner2",
        ],
    ]
    for command in commands:
        assert main(command) == 0, command

    assert _files_with(out, erased) == []
    artifacts = Path(MlflowClient().tracking_uri[len("sqlite:///") :]).parent / "mlartifacts"
    assert _files_with(artifacts, erased) == []
    assert _mlflow_mentions(erased) == []
    # the customers the lists were asked for, minus the erased one, all got an answer
    assert set(pd.read_csv(out / "recs.csv", dtype=str)["user_id"]) == {f"C{u:03d}" for u in range(120)} - {
        erased
    }
    # marketing consent withdrawn through the service: no offer in any plan
    for plan in (out / "plan.csv", out / "plan" / "plan.parquet"):
        frame = pd.read_parquet(plan) if plan.suffix == ".parquet" else pd.read_csv(plan, dtype=str)
        assert withdrawn not in set(frame["customer_id"].astype(str)) and len(frame)


def _fit(data: Path, out: Path) -> Path:
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "--until",
                UNTIL,
                "--model",
                "buy_again",
                "--out",
                str(out),
                "--no-track",
            ]
        )
        == 0
    )
    return out
