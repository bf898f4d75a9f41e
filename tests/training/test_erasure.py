"""Training honours erasures made through the service: erased customers never reach a split or a fit."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from recsys.data.io import write_tables
from serving.events import EventStore, NewEvent
from tests.training.factory import make_tables
from training.config import DataConfig, SplitConfig
from training.data import DEFAULT_EVENTS_URL, events_url, prepare, read_erasure_keys

ERASED = "C0003"
PG_SERVER = "postgresql+psycopg2://postgres@127.0.0.1:5432"


def _tables() -> dict[str, pd.DataFrame]:
    tables = make_tables(n_customers=12, n_products=30, weeks=6)
    ids = list(tables["customers"]["customer_id"])
    tables["offers"] = pd.DataFrame(
        {
            "offer_id": [f"O{i}" for i in range(len(ids))],
            "customer_id": ids,
            "product_group": "CAT1",
            "discount_level": 0.1,
            "sent_at": pd.Timestamp("2024-01-03"),
            "channel": "email",
            "redeemed_at": pd.NaT,
        }
    )
    tables["household_members"] = pd.DataFrame(
        {"customer_id": [ERASED, ERASED, "C0004"], "member_id": ["a", "b", "a"], "diet_exclusions": "nuts"}
    )
    return tables


@pytest.fixture
def data_dir(tmp_path) -> Path:
    out = tmp_path / "data"
    write_tables(_tables(), out, {"source": "erasure-test"})
    return out


def _config(data_dir: Path) -> DataConfig:
    return DataConfig(source=str(data_dir), dir=str(data_dir), split=SplitConfig(test_weeks=2))


def _erase(url: str, *customer_ids: str) -> None:
    store = EventStore(url)
    try:
        store.add_events([NewEvent("C0005", "purchase", "P0001")])  # a customer who stays
        for customer_id in customer_ids:
            store.add_events([NewEvent(customer_id, "purchase", "P0002")])
            store.erase(customer_id)
    finally:
        store.close()


def _check_erased(prepared, baseline) -> None:
    data = prepared.dataset
    assert prepared.erased_customers == 1
    assert ERASED not in data.users
    assert ERASED not in set(data.users_table["customer_id"])
    assert data.n_users == baseline.dataset.n_users - 1
    assert ERASED not in set(data.offers["customer_id"])
    assert len(data.offers) == len(baseline.dataset.offers) - 1
    # no erased rows anywhere in the splits
    for part in (prepared.split.train, prepared.split.test):
        assert ERASED not in set(part.users.to_external(part.interactions["user_idx"]))
    # every other customer keeps exactly their rows
    base = baseline.dataset
    before = pd.Series(base.users.to_external(base.interactions["user_idx"])).value_counts()
    after = pd.Series(data.users.to_external(data.interactions["user_idx"])).value_counts()
    assert int(before[ERASED]) > 0
    pd.testing.assert_series_equal(after.sort_index(), before.drop(ERASED).sort_index())
    assert len(data.interactions) == len(base.interactions) - int(before[ERASED])
    assert prepared.digest == baseline.digest and prepared.cutoff == baseline.cutoff


def test_prepare_drops_a_customer_erased_through_the_event_store(data_dir, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{tmp_path / 'none.db'}")
    baseline = prepare(_config(data_dir))
    assert baseline.erased_customers == 0
    _erase(url, ERASED)
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    _check_erased(prepare(_config(data_dir)), baseline)


def test_no_store_means_nothing_erased(data_dir, tmp_path, monkeypatch):
    missing = tmp_path / "missing" / "events.db"
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{missing}")
    prepared = prepare(_config(data_dir))
    assert prepared.erased_customers == 0
    assert prepared.dataset.n_users == 12 and ERASED in prepared.dataset.users
    assert not missing.exists()  # reading erasures never creates a database

    other = tmp_path / "other.db"  # a database without the erasures table
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE something (x INTEGER)")
    assert read_erasure_keys(f"sqlite:///{other}") == set()


def test_erasure_of_someone_not_in_the_data_changes_nothing(data_dir, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    _erase(url, "somebody-else")
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    assert len(read_erasure_keys(url)) == 1
    prepared = prepare(_config(data_dir))
    assert prepared.erased_customers == 0 and prepared.dataset.n_users == 12


def test_events_url_defaults_to_the_services_store():
    from serving.config import Settings

    assert DEFAULT_EVENTS_URL == Settings.events_url == Settings.from_env({}).events_url
    assert events_url({}) == DEFAULT_EVENTS_URL
    assert events_url({"RECSYS_EVENTS_URL": "sqlite:///x.db"}) == "sqlite:///x.db"


def test_unreachable_store_is_an_error():
    with pytest.raises(RuntimeError, match="cannot read erasures"):
        read_erasure_keys("postgresql+psycopg2://postgres@127.0.0.1:1/nothing")


def test_prepare_reads_erasures_from_postgres(data_dir, tmp_path, monkeypatch):
    name = f"recsys_erasure_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"{PG_SERVER}/{name}")  # does not exist yet: nothing erased
    baseline = prepare(_config(data_dir))
    assert baseline.erased_customers == 0
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        _erase(f"{PG_SERVER}/{name}", ERASED)
        _check_erased(prepare(_config(data_dir)), baseline)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_training_run_logs_only_the_count(data_dir, tmp_path, monkeypatch, store):
    import mlflow

    from tests.training.conftest import tiny_config
    from training.jobs import run_training

    url = f"sqlite:///{tmp_path / 'events.db'}"
    _erase(url, ERASED)
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    run_id = run_training(tiny_config(data_dir, "popularity", experiment="erasure"))
    params = mlflow.get_run(run_id).data.params
    assert params["data.erased_customers"] == "1"
    assert params["data.users"] == "11"
    assert not any(ERASED in value for value in params.values())
