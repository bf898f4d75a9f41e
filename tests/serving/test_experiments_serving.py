"""An A/B test end to end over HTTP: configured, served (tagged answers, a variant model next to the
champion, committed exposures), attributed (feedback quoting the recommendation id) and reported by
`recsys experiment report`; erasure removes the exposures."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import create_engine, select
from starlette.testclient import TestClient

from recsys.experiments.assignment import assign
from recsys.experiments.config import load_experiment
from serving.experiments import exposures
from tests.serving.conftest import AUTH, BREAD_BUYERS, MEAT_BUYERS, NO_CONSENT, VEGAN, service_env
from tests.serving.test_discounts import offers_world  # noqa: F401, F811  (a fixture)

CUSTOMERS = [*BREAD_BUYERS, *MEAT_BUYERS, VEGAN]


def _config(directory: Path, model2: Path) -> Path:
    start = datetime.now(UTC) - timedelta(days=1)
    text = f"""
name: prod-test
surface: products
variants:
  - {{name: control, share: 0.34}}
  - {{name: greener, share: 0.33, serving: {{co2_weight: 2.0, mode: mixed}}}}
  - {{name: other, share: 0.33, model: "{model2}"}}
primary_metric: conversion
secondary_metrics: [spend, clicks, add_to_cart]
guardrails: {{latency_p95_ms: 60000}}
start: {start.isoformat()}
stop: {(start + timedelta(days=7)).isoformat()}
"""
    directory.mkdir(exist_ok=True)
    (directory / "prod.yaml").write_text(text)
    recipes = text.replace("name: prod-test", "name: recipes-test").replace(
        "surface: products", "surface: recipes"
    )
    (directory / "recipes.yaml").write_text(recipes)  # the 'other' variant's model answers recipes too
    return directory / "prod.yaml"


@pytest.fixture
def ab_client(asgi_app, monkeypatch, world, tmp_path):
    path = _config(tmp_path / "ab", world["model2"])
    service_env(monkeypatch, world, tmp_path, RECSYS_EXPERIMENTS_DIR=str(tmp_path / "ab"))
    with TestClient(asgi_app, raise_server_exceptions=False) as c:
        yield c, load_experiment(path)


def _rows(url: str) -> pd.DataFrame:
    engine = create_engine(url)
    with engine.connect() as conn:
        frame = pd.read_sql(select(exposures), conn)
    engine.dispose()
    return frame


def test_experiment_served_attributed_and_reported(ab_client, world, tmp_path):
    import os

    from cli.main import main

    client, exp = ab_client
    url = os.environ["RECSYS_EVENTS_URL"]
    answers = {}
    for c in CUSTOMERS:
        r = client.post("/v1/products", json={"customer_id": c, "k": 4})
        assert r.status_code == 200, r.text
        answers[c] = r.json()
        assert answers[c]["experiment"] == {"experiment": "prod-test", "variant": assign(exp, c, True)}
    # no consent: never in the experiment
    assert client.post("/v1/products", json={"customer_id": NO_CONSENT}).json().get("experiment") is None
    variants = {a["experiment"]["variant"] for a in answers.values()}
    assert len(variants) >= 2
    versions = {a["experiment"]["variant"]: a["model_version"] for a in answers.values()}
    if "other" in versions and "control" in versions:
        assert versions["other"] != versions["control"]  # the variant's own model answered

    for c in BREAD_BUYERS[:4]:
        r = client.post("/v1/recipes", json={"customer_id": c, "k": 2})
        assert r.status_code == 200, r.text
        assert r.json()["experiment"]["experiment"] == "recipes-test"

    rows = _rows(url)
    assert (rows.surface == "recipes").sum() == 4 and (
        rows[rows.surface == "recipes"].diet_violations == 0
    ).all()
    rows = rows[rows.surface == "products"]
    assert len(rows) == len(CUSTOMERS) and set(rows.recommendation_id) == {
        a["recommendation_id"] for a in answers.values()
    }
    assert rows.diet_violations.sum() == 0 and (rows["items"] > 0).all()
    not_vegan = {"p_beef", "p_pork", "p_chicken", "p_butter", "p_milk", "p_salmon", "p_mystery"}
    assert not {i["item_id"] for i in answers[VEGAN]["items"]} & not_vegan

    # outcomes: a click and a purchase quoting the recommendation id
    buyer = BREAD_BUYERS[0]
    rec = answers[buyer]["recommendation_id"]
    item = answers[buyer]["items"][0]["item_id"]
    events = [
        {"customer_id": buyer, "event_type": "view", "item_id": item, "recommendation_id": rec},
        {"customer_id": buyer, "event_type": "purchase", "item_id": item, "recommendation_id": rec},
    ]
    assert client.post("/v1/feedback", json={"events": events}, headers=AUTH).json()["stored"] == 2

    out = tmp_path / "report"
    args = ["experiment", "report", "prod-test", "--dir", str(tmp_path / "ab"), "--events", url]
    args += ["--data", str(world["data"]), "--out", str(out), "--no-track"]
    assert main(args) == 0
    text = (out / "report.md").read_text()
    assert "Decision:" in text and "Sample ratio mismatch" in text and (out / "lift_conversion.png").exists()
    variants_csv = pd.read_csv(out / "variants.csv").set_index("variant")
    assert variants_csv["customers"].sum() == len(CUSTOMERS)
    assert main(["experiment", "report", "nope", "--dir", str(tmp_path / "ab"), "--no-track"]) == 2

    # erasure takes the exposures with it
    assert client.post("/v1/customers/erase", json={"customer_id": buyer}, headers=AUTH).status_code == 200
    assert buyer not in set(_rows(url).customer_id)


def test_a_reload_loads_the_variant_models_again(asgi_app, monkeypatch, world, tmp_path):
    """A variant's model retrained in place answers after the next reload (the champion's)."""
    from recsys.data.dataset import Dataset
    from recsys.models.model_dir import save_model_dir
    from recsys.models.popularity import Popularity

    variant = tmp_path / "variant"
    shutil.copytree(world["model2"], variant)
    exp = load_experiment(_config(tmp_path / "ab", variant))
    service_env(monkeypatch, world, tmp_path, RECSYS_EXPERIMENTS_DIR=str(tmp_path / "ab"))
    shopper = next(c for c in CUSTOMERS if assign(exp, c, True) == "other")
    with TestClient(asgi_app) as client:
        ask = lambda: client.post("/v1/products", json={"customer_id": shopper, "k": 4}).json()  # noqa: E731
        before = ask()["model_version"]
        dataset = Dataset.load(world["data"])
        save_model_dir(Popularity().fit(dataset), dataset.items_table, variant)
        assert ask()["model_version"] == before  # nothing changes until a reload
        r = client.post("/v1/admin/reload", json={}, headers=AUTH)
        assert r.status_code == 200, r.text
        after = ask()
        assert after["experiment"]["variant"] == "other" and after["model_version"] != before
        assert after["model_version"].startswith("variant-") and after["items"]


def test_discount_holdout_gets_no_offers_and_is_logged(asgi_app, monkeypatch, offers_world, tmp_path):  # noqa: F811
    start = datetime.now(UTC) - timedelta(days=1)
    (tmp_path / "ab").mkdir()
    (tmp_path / "ab" / "d.yaml").write_text(
        f"""
name: disc-test
surface: discounts
variants:
  - {{name: holdout, share: 0.4, discount: none}}
  - {{name: plan, share: 0.3}}
  - {{name: alt, share: 0.3, discount_plan: "{tmp_path / "plan-b"}"}}
primary_metric: margin
start: {start.isoformat()}
stop: {(start + timedelta(days=14)).isoformat()}
"""
    )
    exp = load_experiment(tmp_path / "ab" / "d.yaml")
    root = offers_world["root"]
    shutil.copytree(root / "plan", tmp_path / "plan-b")  # the same plan under another version
    service_env(
        monkeypatch,
        {"model": root / "model", "data": root / "data"},
        tmp_path,
        RECSYS_OFFERS_DIR=str(root / "plan"),
        RECSYS_EXPERIMENTS_DIR=str(tmp_path / "ab"),
    )
    plan = offers_world["artifact"].plan
    planned = plan.groupby("customer_id").size()
    # planned customers first, then other consenting ones (a cautious small-base plan holds few)
    customers = offers_world["tables"]["customers"]
    consenting = customers.loc[
        customers["consent_personalisation"].astype(bool) & customers["consent_marketing"].astype(bool),
        "customer_id",
    ].astype(str)
    asked = list(dict.fromkeys([*planned.index.astype(str), *consenting]))[:40]
    with TestClient(asgi_app, raise_server_exceptions=False) as client:
        seen = {}
        for cid in asked:
            answer = client.post("/v1/discounts", json={"customer_id": cid, "k": 10}).json()
            variant = answer["experiment"]["variant"]
            assert variant == assign(exp, cid, True)
            if variant == "holdout":
                assert answer["discounts"] == [] and "holdout" in answer["reason"]
            else:
                assert len(answer["discounts"]) == planned.get(cid, 0)
                assert answer["model_version"].startswith("plan-b" if variant == "alt" else "plan-")
            seen[cid] = (variant, sum(d["expected_cost"] for d in answer["discounts"]))
    import os

    rows = _rows(os.environ["RECSYS_EVENTS_URL"]).set_index("customer_id")
    assert {v for v, _ in seen.values()} == {"holdout", "plan", "alt"}
    for cid, (variant, cost) in seen.items():
        assert rows.loc[cid, "variant"] == variant and rows.loc[cid, "offer_cost"] == pytest.approx(cost)


@pytest.mark.postgres
def test_exposures_and_observations_on_postgres(world):
    """The exposure log and the report's reader over a real PostgreSQL connection."""
    import uuid

    import sqlalchemy as sa

    from recsys.ranking.selection import Shopper
    from serving.config import Settings
    from serving.events import EventStore, NewEvent
    from serving.experiments import Experiments, Exposure, observations

    admin = sa.create_engine(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT"
    )
    name = f"recsys_exp_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    store = EventStore(url)
    try:
        directory = world["root"] / f"ab-{name}"
        _config(directory, world["model2"])
        exps = Experiments(
            Settings(model_dir=world["model"], data_dir=world["data"]), store.engine, directory
        )
        arm = exps.arm("products", Shopper("b1", True, 0))
        assert arm is not None and arm.experiment.name == "prod-test"
        exps.log(arm, Exposure("b1", "rec-1", "v1", items=3))
        store.add_events([NewEvent("b1", "purchase", "p_bread", recommendation_id="rec-1")])
        shown, events = observations(url, "prod-test")
        assert list(shown.recommendation_id) == ["rec-1"] and list(events.item_id) == ["p_bread"]
        assert exps.forget("b1") == 1
    finally:
        store.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
