"""Training honours erasures made through the service: erased customers never reach a split or a fit."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from recsys.data.erasure import legacy_key
from recsys.data.io import write_tables
from recsys.defaults import DEFAULT_EVENTS_URL
from serving.events import EventStore, NewEvent
from tests.training.factory import make_tables
from training.config import DataConfig, SplitConfig
from training.data import prepare
from training.privacy import StoreUnavailable, events_url, read_privacy

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
    EventStore(f"sqlite:///{tmp_path / 'empty.db'}").connect()
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    baseline = prepare(_config(data_dir))
    assert baseline.erased_customers == 0
    _erase(url, ERASED)
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    _check_erased(prepare(_config(data_dir)), baseline)


def test_a_configured_store_that_is_missing_stops_the_job(data_dir, tmp_path, monkeypatch):
    missing = tmp_path / "missing" / "events.db"
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"sqlite:///{missing}")
    with pytest.raises(StoreUnavailable, match="does not exist"):
        prepare(_config(data_dir))
    assert not missing.exists()  # reading erasures never creates a database

    other = tmp_path / "other.db"  # a database nobody wrote erasures to: nothing erased
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE something (x INTEGER)")
    privacy = read_privacy(f"sqlite:///{other}")
    assert privacy.keys == privacy.legacy == frozenset() and privacy.erased(["C0003"]) == set()


def test_another_secret_stops_the_job_and_legacy_rows_still_match(data_dir, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    _erase(url, ERASED)
    monkeypatch.setenv("RECSYS_ERASURE_SECRET", "x" * 40)
    with pytest.raises(StoreUnavailable, match="does not match"):
        read_privacy(url)
    monkeypatch.delenv("RECSYS_ERASURE_SECRET")
    # a store written before keyed hashes: its unkeyed rows still drop the customer
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE erasures (id_hash VARCHAR(64) PRIMARY KEY, erased_at TIMESTAMP)")
        conn.execute("INSERT INTO erasures VALUES (?, '2024-01-01')", (legacy_key(ERASED),))
    assert read_privacy(f"sqlite:///{old}").erased(["C0001", ERASED]) == {ERASED}
    # the service claims the store: the row moves to erasures_legacy and is re-keyed when known
    from serving.erasure_secret import rekey_legacy

    store = EventStore(f"sqlite:///{old}")
    try:
        assert not store.states([ERASED])[ERASED].erased
        assert read_privacy(f"sqlite:///{old}").erased([ERASED]) == {ERASED}
        assert rekey_legacy(store.engine, store.secret, ["C0001", ERASED]) == 1
        store._forget()
        assert store.states([ERASED])[ERASED].erased
        privacy = read_privacy(f"sqlite:///{old}")
        assert privacy.legacy == frozenset() and privacy.erased([ERASED]) == {ERASED}
    finally:
        store.close()


def test_erasure_of_someone_not_in_the_data_changes_nothing(data_dir, tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'events.db'}"
    _erase(url, "somebody-else")
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    assert len(read_privacy(url).keys) == 1
    prepared = prepare(_config(data_dir))
    assert prepared.erased_customers == 0 and prepared.dataset.n_users == 12


def test_events_url_defaults_to_the_services_store():
    from serving.config import Settings

    assert DEFAULT_EVENTS_URL == Settings.events_url == Settings.from_env({}).events_url
    assert events_url({}) == DEFAULT_EVENTS_URL
    assert events_url({"RECSYS_EVENTS_URL": "sqlite:///x.db"}) == "sqlite:///x.db"


def test_unreachable_store_is_an_error():
    with pytest.raises(StoreUnavailable, match="cannot read erasures"):
        read_privacy("postgresql+psycopg2://postgres@127.0.0.1:1/nothing")


def test_prepare_reads_erasures_from_postgres(data_dir, tmp_path, monkeypatch):
    name = f"recsys_erasure_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("RECSYS_EVENTS_URL", f"{PG_SERVER}/{name}")
    # a database that does not exist (a misspelt name) stops the job: it must not find 0 erasures
    with pytest.raises(StoreUnavailable, match="does not exist"):
        prepare(_config(data_dir))
    admin = sa.create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        EventStore(f"{PG_SERVER}/{name}").connect()
        baseline = prepare(_config(data_dir))
        assert baseline.erased_customers == 0
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


def test_cli_jobs_stop_with_one_line_on_a_misspelt_database(data_dir, tmp_path, monkeypatch, capsys):
    from cli.main import main

    monkeypatch.setenv("RECSYS_EVENTS_URL", f"{PG_SERVER}/recsys_no_such_database_{uuid.uuid4().hex[:6]}")
    (tmp_path / "users.txt").write_text("C0001\n")
    args = ["train", "--data", str(data_dir), "--until", "2024-01-29", "--model", "popularity", "--no-track"]
    assert main([*args, "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0] and "cannot read erasures" in err[0]
    assert not (tmp_path / "m").exists()


def test_unset_events_url_says_which_store_it_reads(monkeypatch, caplog):
    monkeypatch.delenv("RECSYS_EVENTS_URL", raising=False)
    with caplog.at_level("WARNING", logger="recsys.privacy"):
        read_privacy(env={})
    assert "RECSYS_EVENTS_URL is unset" in caplog.text and DEFAULT_EVENTS_URL.split("///")[1] in caplog.text


def test_batch_commands_leave_out_erased_and_depersonalise_withdrawn(tmp_path, monkeypatch):
    from cli.common import batch_customers, privacy_note
    from serving.events import CustomerRecord

    url = f"sqlite:///{tmp_path / 'events.db'}"
    _erase(url, ERASED)
    store = EventStore(url)
    try:
        store.upsert_customer(CustomerRecord("C0004", False, True))  # withdrew personalisation
        store.upsert_customer(CustomerRecord("C0006", True, False))  # withdrew marketing only
    finally:
        store.close()
    monkeypatch.setenv("RECSYS_EVENTS_URL", url)
    kept, erased, withdrawn = batch_customers(["C0003", "C0004", "C0005", "C0006"])
    assert (kept, erased, withdrawn) == (["C0004", "C0005", "C0006"], 1, {"C0004"})
    assert privacy_note(erased, withdrawn) == (
        " (1 erased customer(s) left out; 1 without personalisation consent got the non-personalised list)"
    )
