"""The event store on SQLite (a tmp file) and on a real PostgreSQL (a fresh database, dropped after)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from recsys.data.erasure import erasure_key, legacy_key
from serving.events import CustomerRecord, EventStore, NewEvent

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def sqlite_store(tmp_path) -> Iterator[EventStore]:
    store = EventStore(f"sqlite:///{tmp_path / 'events.db'}")
    yield store
    store.close()


@pytest.fixture
def pg_store() -> Iterator[EventStore]:
    """A throw-away database per test: the suite never touches a shared one."""
    name = f"recsys_events_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    store = EventStore(f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def check_store(store: EventStore) -> None:
    assert store.ping()
    assert store.states([]) == {}
    empty = store.states(["c1"])["c1"]
    assert empty.record is None and not empty.erased and empty.fresh_items == ()

    n = store.add_events(
        [
            NewEvent("c1", "purchase", "p1", 2.0, recommendation_id="r1"),
            NewEvent("c1", "view", "p2"),
            NewEvent("c1", "add_to_cart", "p3"),
            NewEvent("c1", "offer_redeemed", None, offer_id="o1", product_group="DAIRY"),
            NewEvent("c2", "purchase", "p9"),
        ]
    )
    assert n == 5 and store.count_events() == 5 and store.count_events("c1") == 4
    # acknowledged = committed: a second, independent engine sees the rows
    other = EventStore(store.url)
    try:
        assert other.count_events("c1") == 4
    finally:
        other.close()

    store.upsert_customer(CustomerRecord("c1", True, False, "vegan", "sugar:0.5"))
    store.upsert_customer(CustomerRecord("c1", True, True, "vegan,nuts", None))  # upsert replaces
    states = store.states(["c1", "c2", "c3"])
    c1 = states["c1"]
    assert c1.record == CustomerRecord("c1", True, True, "vegan,nuts", None)
    assert c1.fresh_items == ("p1", "p3") and c1.viewed == ("p2",)
    assert states["c2"].fresh_items == ("p9",) and states["c2"].record is None
    assert states["c3"].fresh_items == ()

    assert store.delete_events("c2") == 1 and store.count_events("c2") == 0

    n_events, had_profile = store.erase("c1")
    assert (n_events, had_profile) == (4, True)
    after = store.states(["c1"])["c1"]
    assert after.erased and after.record is None and after.fresh_items == ()
    assert store.erase("c1") == (0, False)  # idempotent
    with store.engine.connect() as conn:  # the tombstone keeps a hash, never the id
        stored = conn.execute(sa.text("SELECT id_hash FROM erasures")).scalars().all()
    assert stored == [store.id_hash("c1")] and "c1" not in stored
    assert store.id_hash("c1") == erasure_key("c1", store.secret) != legacy_key("c1")


def test_sqlite_event_store(sqlite_store):
    check_store(sqlite_store)


@pytest.mark.postgres
def test_postgres_event_store(pg_store):
    assert pg_store.engine.dialect.name == "postgresql"
    check_store(pg_store)


@pytest.mark.postgres
def test_service_on_postgres(asgi_app, monkeypatch, world, tmp_path, pg_store):
    """The same end-to-end path (consent, fold-in, erasure) with RECSYS_EVENTS_URL on PostgreSQL."""
    from starlette.testclient import TestClient

    from tests.serving.conftest import AUTH, service_env

    service_env(monkeypatch, world, tmp_path, RECSYS_EVENTS_URL=pg_store.url)
    with TestClient(asgi_app) as c:
        body = {"customer_id": "m4", "k": 20, "mode": "buy_again"}
        assert "p_jam" not in [i["item_id"] for i in c.post("/v1/products", json=body).json()["items"]]
        r = c.post(
            "/v1/feedback",
            json={"events": [{"customer_id": "m4", "event_type": "purchase", "item_id": "p_jam"}]},
            headers=AUTH,
        )
        assert r.json()["stored"] == 1 and pg_store.count_events("m4") == 1
        assert "p_jam" in [i["item_id"] for i in c.post("/v1/products", json=body).json()["items"]]
        assert c.post("/v1/customers/erase", json={"customer_id": "m4"}, headers=AUTH).status_code == 200
        assert pg_store.count_events("m4") == 0
        assert c.post("/v1/products", json=body).json()["items"] == []
