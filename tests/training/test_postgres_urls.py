"""PostgreSQL URLs work as the README and docs write them: plain `postgresql://` (SQLAlchemy 2.1 maps
it to psycopg 3) and `postgresql+psycopg2://`, for the MLflow store, the Optuna storage and the event
store, against the real server on 127.0.0.1:5432."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy

pytestmark = pytest.mark.postgres

HOST = "postgres@127.0.0.1:5432"
FORMS = ("postgresql://{host}/{db}", "postgresql+psycopg2://{host}/{db}", "postgresql+psycopg://{host}/{db}")


@pytest.fixture(scope="module")
def database():
    name = f"ux_urls_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(f"postgresql://{HOST}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        with admin.connect() as conn:
            conn.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n "
                    "AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.mark.parametrize("form", FORMS)
def test_optuna_storage_and_event_store_accept_the_url(form, database):
    from serving.events import EventStore
    from training.tune import make_storage

    url = form.format(host=HOST, db=database)
    storage = make_storage(url)
    assert storage.get_all_studies() == []
    store = EventStore(url)
    store.ping()


def test_mlflow_tracking_uri_postgresql_as_written(database, monkeypatch):
    """`MLFLOW_TRACKING_URI=postgresql://...` (docs/training.md) creates and reads an experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"postgresql://{HOST}/{database}")
    exp = client.create_experiment("urls")
    assert client.get_experiment(exp).name == "urls"
