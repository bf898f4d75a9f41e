"""Faults degrade the service, never break it: a store that is down or dropped, a corrupt model, a
reload request that points outside the model root, a worker restart after a reload."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from lab.corrupt import corrupt_copy
from serving.events import EventStore, events
from tests.serving.conftest import AUTH, PRODUCTS, service_env

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
CLOSED_PORT_URL = "postgresql+psycopg2://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
#: products with 'no' for every diet attribute: all a fail-closed (strictest) diet may show
STRICT_SAFE = {p[0] for p in PRODUCTS if all(v == "no" for v in p[4:9])} - {"p_butter", "p_milk"}
FEEDBACK = {
    "events": [{"customer_id": "m4", "event_type": "purchase", "item_id": "p_jam", "event_id": "e-1"}]
}


def _products(c: TestClient, **body) -> dict:
    r = c.post("/v1/products", json={"customer_id": "b1", "k": 15, **body})
    assert r.status_code == 200, r.text
    return r.json()


def test_store_down_reads_degrade_and_writes_answer_503(asgi_app, monkeypatch, world, tmp_path):
    service_env(monkeypatch, world, tmp_path, RECSYS_EVENTS_URL=CLOSED_PORT_URL)
    with TestClient(asgi_app) as c:  # starts without its store
        body = _products(c)
        assert body["degraded"] and not body["personalised"]
        assert {i["item_id"] for i in body["items"]} <= STRICT_SAFE  # stored allergies unknown: strictest
        vegan = _products(c, diet=["vegan"])  # a diet named by the request is used as given
        assert vegan["degraded"] and "p_bread" in {i["item_id"] for i in vegan["items"]}
        r = c.post("/v1/recipes", json={"customer_id": "b1", "k": 3})
        assert r.status_code == 200 and r.json()["degraded"]
        for path, payload in [
            ("/v1/feedback", FEEDBACK),
            ("/v1/customers/consent", {"customer_id": "b1", "consent_personalisation": False}),
            ("/v1/customers/erase", {"customer_id": "b1"}),
        ]:
            r = c.post(path, json=payload, headers=AUTH)
            assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1, (path, r.text)
        ready = c.get("/v1/health/ready").json()
        assert ready["status"] == "degraded" and ready["event_store"] != "ok"


@pytest.fixture
def pg_db() -> str:
    name = f"recsys_resil_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _recreate(name: str) -> None:
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


@pytest.mark.postgres
def test_dropped_and_recreated_database_is_migrated_again(asgi_app, monkeypatch, world, tmp_path, pg_db):
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{pg_db}"
    service_env(monkeypatch, world, tmp_path, RECSYS_EVENTS_URL=url, RECSYS_STORE_RETRY_AFTER="0")
    with TestClient(asgi_app) as c:
        before = _products(c, customer_id="m4")
        assert before["personalised"] and before["degraded"] is None
        _recreate(pg_db)
        # the first call after the drop fails (last known state, marked), the next one reconnects
        after = _products(c, customer_id="m4")
        assert after["items"] == before["items"] or after["degraded"]
        r = c.post("/v1/feedback", json=FEEDBACK, headers=AUTH)
        if r.status_code == 503:
            r = c.post("/v1/feedback", json=FEEDBACK, headers=AUTH)
        assert r.status_code == 200 and r.json()["stored"] == 1
        assert c.get("/v1/health/ready").json()["event_store"] == "ok"
    store = EventStore(url)
    assert store.count_events("m4") == 1
    store.close()


def test_a_retried_feedback_event_is_stored_once(client):
    first = client.post("/v1/feedback", json=FEEDBACK, headers=AUTH)
    again = client.post("/v1/feedback", json=FEEDBACK, headers=AUTH)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    import os

    store = EventStore(os.environ["RECSYS_EVENTS_URL"])
    assert store.count_events("m4") == 1
    store.close()


def test_a_store_from_before_event_ids_is_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    legacy = sa.MetaData()
    sa.Table(  # the first release's events table: no event_id, no schema_version
        "events",
        legacy,
        *[sa.Column(c.name, c.type, primary_key=c.primary_key) for c in events.c if c.name != "event_id"],
    )
    engine = sa.create_engine(url)
    legacy.create_all(engine)
    engine.dispose()
    store = EventStore(url)
    assert store.connect() == 2
    assert "event_id" in {c["name"] for c in sa.inspect(store.engine).get_columns("events")}
    assert store.connect() == 2  # idempotent
    store.close()


def _version(c: TestClient) -> str:
    return c.get("/v1/health/live").json()["model_version"]


def test_corrupt_models_and_bad_paths_are_refused_and_the_old_model_keeps_serving(client, world):
    before = _version(client)
    root = Path(world["model"]).parent
    for name in ("seen_index_out_of_range", "truncated_arrays"):
        bad = corrupt_copy(world["model"], root / f"bad-{name}", name)
        r = client.post("/v1/admin/reload", json={"model_dir": str(bad)}, headers=AUTH)
        assert r.status_code == 422 and before in r.json()["error"], r.text
    for path, status in [("../../../../etc", 400), ("/etc/passwd", 400), ("missing", 404)]:
        r = client.post("/v1/admin/reload", json={"model_dir": path}, headers=AUTH)
        assert r.status_code == status, (path, r.text)
    r = client.post("/v1/admin/reload", json={"version": "../x"}, headers=AUTH)
    assert r.status_code == 400
    assert _version(client) == before and _products(client)["items"]


def test_the_reloaded_model_survives_a_restart(asgi_app, monkeypatch, world, tmp_path):
    service_env(monkeypatch, world, tmp_path)
    with TestClient(asgi_app) as c:
        first = _version(c)
        r = c.post("/v1/admin/reload", json={"model_dir": "model2"}, headers=AUTH)  # relative to the root
        assert r.status_code == 200 and r.json()["model_version"] != first
        reloaded = r.json()["model_version"]
    with TestClient(asgi_app) as c:  # a new worker process reads the active-model file at start
        assert _version(c) == reloaded


def test_a_registry_version_that_does_not_exist_is_a_404(client, monkeypatch):
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    class EmptyRegistry:
        def __init__(self, **_: object) -> None:
            pass

        def get_model_version(self, name: str, ref: str) -> None:
            raise MlflowException(f"no {ref} of {name}", error_code=RESOURCE_DOES_NOT_EXIST)

        get_model_version_by_alias = get_model_version

    monkeypatch.setattr(mlflow, "MlflowClient", EmptyRegistry)
    before = _version(client)
    for ref in ("7", "challenger"):
        r = client.post("/v1/admin/reload", json={"version": ref}, headers=AUTH)
        assert r.status_code == 404 and repr(ref) in r.json()["error"], r.text
    assert _version(client) == before
