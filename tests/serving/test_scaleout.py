"""Serving that scales out: customer state by key from the store, a bounded cache, invalidated on
every replica. The two-replica test runs two `recsys serve` processes on one PostgreSQL store with
Redis pub/sub between them (no mocks)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from serving.events import CustomerRecord, EventStore, NewEvent
from serving.publish import publish
from serving.state_cache import RedisBus, StateCache
from tests.serving.conftest import API_KEY, AUTH, NO_CONSENT, VEGAN

PG_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def pg_url() -> str:
    name = f"recsys_scaleout_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_cache_is_bounded_and_a_drop_mid_read_keeps_the_read_uncached():
    cache: StateCache[int] = StateCache(2)
    cache.put({"a": 1, "b": 2}, cache.generation())
    cache.put({"c": 3}, cache.generation())
    assert cache.get_many(["a", "b", "c"]) == {"b": 2, "c": 3} and len(cache) == 2  # a left first
    generation = cache.generation()  # a read starts ...
    cache.drop(["c"])  # ... a write lands meanwhile ...
    cache.put({"c": 30}, generation)  # ... so what the read saw is not cached
    assert cache.get_many(["c"]) == {}


def test_published_state_is_read_by_key_and_erased_customers_are_never_published(world, tmp_path):
    store = EventStore(f"sqlite:///{tmp_path / 'e.db'}")
    store.connect()
    store.erase("b3")  # erased before the data is published
    done = publish(store, world["data"])
    states = store.states(["b1", "b3", VEGAN, NO_CONSENT, "nobody"])
    assert states["b1"].base == CustomerRecord("b1", True, True, None, None)
    assert states["b1"].lifecycle is not None and states["b1"].recent_items
    assert states[VEGAN].base.diet_exclusions == "vegan"
    assert states[NO_CONSENT].base.consent_personalisation is False
    assert states["b3"].base is None and states["b3"].erased and done.erased_left_out == 1
    assert states["nobody"].base is None
    assert store.published() == done.digest
    store.erase("b1")  # erasure deletes the published state too
    assert store.states(["b1"])["b1"].base is None
    store.close()


@pytest.mark.postgres
def test_redis_bus_drops_a_changed_customer_in_another_process_store(world, pg_url):
    channel = f"recsys-test:{uuid.uuid4().hex}"
    a = EventStore(pg_url, bus=RedisBus(REDIS_URL, channel))
    b = EventStore(pg_url, bus=RedisBus(REDIS_URL, channel))
    try:
        publish(a, world["data"])
        assert b.states(["b1"])["b1"].fresh_items == ()
        assert b.cached_states(["b1"]) is not None  # cached: the next read costs no query
        a.add_events([NewEvent("b1", "purchase", "p_salmon")])
        for _ in range(50):  # the message crosses Redis asynchronously
            if b.cached_states(["b1"]) is None:
                break
            time.sleep(0.02)
        assert b.states(["b1"])["b1"].fresh_items == ("p_salmon",)
    finally:
        a.close()
        b.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(base: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/v1/health/ready", timeout=1).status_code == 200:
                return
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.5)
    raise AssertionError(f"{base} not ready: {log.read_text()[-3000:]}")


def _buy_again(base: str, customer_id: str) -> dict:
    body = {"customer_id": customer_id, "k": 10, "mode": "buy_again"}
    r = httpx.post(f"{base}/v1/products", json=body, headers=AUTH, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@contextlib.contextmanager
def _replicas(tmp_path: Path, world: dict[str, Path], env: dict[str, str], names=("a", "b")):
    """`recsys serve` processes on free ports, ready; their base URLs. Killed (group) on exit."""
    procs, logs, bases = [], [], []
    try:
        for name in names:
            port = _free_port()
            cmd = [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
            cmd += ["--model-dir", str(world["model"]), "--data-dir", str(world["data"])]
            log = tmp_path / f"serve-{name}.log"
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True
                )
            )
            bases.append(f"http://127.0.0.1:{port}")
        for base, proc, log in zip(bases, procs, logs, strict=True):
            _wait_ready(base, proc, log)
        yield bases
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


def _base_env(**extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "RECSYS_API_KEYS": API_KEY,
        "RECSYS_ACCESS_LOG": "false",
        "RECSYS_WARM_UP": "false",
        "RECSYS_OFFERS_URI": "none",
        "OPENBLAS_NUM_THREADS": "1",
        **extra,
    }


@pytest.mark.postgres
def test_two_replicas_one_store_a_purchase_on_one_is_folded_into_the_others_next_answer(
    tmp_path, world, pg_url
):
    env = _base_env(
        RECSYS_EVENTS_URL=pg_url,
        RECSYS_CACHE_BUS_URL=REDIS_URL,
        RECSYS_CACHE_CHANNEL=f"recsys-test:{uuid.uuid4().hex}",
    )
    with _replicas(tmp_path, world, env) as (first, second):
        before = _buy_again(second, "b2")  # the second replica now holds b2's state in its cache
        assert _buy_again(second, "b2")["items"] == before["items"]
        assert before["personalised"] and "p_salmon" not in [i["item_id"] for i in before["items"]]
        event = {"customer_id": "b2", "item_id": "p_salmon", "event_type": "purchase"}
        r = httpx.post(f"{first}/v1/feedback", json={"events": [event]}, headers=AUTH, timeout=30)
        assert r.status_code == 200 and r.json()["stored"] == 1
        after = _buy_again(second, "b2")  # the second replica's next answer
        items = {i["item_id"]: i["reason"] for i in after["items"]}
        assert items.get("p_salmon") == "you just bought this", after
        r = httpx.post(f"{first}/v1/customers/erase", json={"customer_id": "b2"}, headers=AUTH, timeout=30)
        assert r.status_code == 200
        gone = _buy_again(second, "b2")
        assert gone["items"] == [] and not gone["personalised"], gone


def _version(base: str) -> str:
    return httpx.get(f"{base}/v1/health/live", timeout=10).json()["model_version"]


def _follows(base: str, version: str, seconds: float = 30.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if _version(base) == version:
            return True
        time.sleep(0.2)
    return False


def test_a_reload_on_one_replica_is_followed_by_the_other(tmp_path, world):
    """Replicas (or workers) sharing RECSYS_ACTIVE_MODEL_FILE serve one model: a reload made on one
    is made on the other within a poll."""
    env = _base_env(
        RECSYS_EVENTS_URL=f"sqlite:///{tmp_path / 'events.db'}",
        RECSYS_MODEL_ROOT=str(world["model"].parent),
        RECSYS_ACTIVE_MODEL_FILE=str(tmp_path / "active-model.json"),
        RECSYS_ACTIVE_MODEL_POLL="0.3",
    )
    with _replicas(tmp_path, world, env) as (first, second):
        start = _version(second)
        r = httpx.post(f"{first}/v1/admin/reload", json={"model_dir": "model2"}, headers=AUTH, timeout=60)
        assert r.status_code == 200, r.text
        new = r.json()["model_version"]
        assert new != start and _version(first) == new
        assert _follows(second, new), (tmp_path / "serve-b.log").read_text()[-2000:]
        # back to the configured default: followed too
        r = httpx.post(f"{first}/v1/admin/reload", json={}, headers=AUTH, timeout=60)
        assert r.status_code == 200 and _follows(second, start)


def test_a_record_made_under_another_configuration_is_ignored(tmp_path, world):
    from serving.config import Settings
    from serving.reload import ModelSource, active_source, record_active

    common = {"active_model_file": tmp_path / "active.json", "model_root": world["model"].parent}
    first = Settings(model_dir=world["model"], **common)
    reload_id = record_active(first, ModelSource(model_dir=world["model2"]))
    assert active_source(first) == (ModelSource(model_dir=world["model2"]), reload_id)
    # the operator configures another default model: the old reload no longer overrides it
    other = Settings(model_dir=world["model2"], **common)
    assert active_source(other) == (ModelSource(), None)
    (tmp_path / "active.json").write_text("{not json")
    assert active_source(first) == (ModelSource(), None)
