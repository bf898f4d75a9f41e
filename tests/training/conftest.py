"""Fixtures for training tests: a tiny data dir, a SQLite MLflow store and a PostgreSQL one.

Runs that several tests read (popularity, buy-again, ...) are trained once per session into the
SQLite store. The PostgreSQL fixture creates a fresh database per test session on 127.0.0.1:5432
and drops it afterwards. It never skips: if PostgreSQL is down the tests fail (CI starts it).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import mlflow
import pytest

from tests.training.factory import write_tiny

PG_SERVER = os.environ.get("RECSYS_TEST_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")


def tiny_config(data_dir: Path, model: str = "buy_again", params: dict | None = None, **extra):
    from training.config import parse_config

    raw = {
        "name": f"tiny-{model}",
        "experiment": extra.pop("experiment", "tiny"),
        "data": {"source": str(data_dir), "dir": str(data_dir), "split": {"test_weeks": 2}},
        "model": {"name": model, "params": params or {}},
        "k": [5, 10],
        "constraints": {"probe_profiles": ["vegan", "gluten_free", "vegetarian,nuts"], "probe_users": 20},
        **extra,
    }
    return parse_config(raw, "<test>")


def _env(mp: pytest.MonkeyPatch, uri: str, artifacts: Path) -> str:
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLFLOW_ARTIFACT_ROOT", artifacts.as_uri())
    mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mp.delenv("OPTUNA_STORAGE", raising=False)
    while mlflow.active_run():
        mlflow.end_run()
    return uri


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tiny") / "data")


@pytest.fixture(scope="session")
def sqlite_session(tmp_path_factory):
    """One SQLite store per session (creating MLflow's tables costs seconds); tests use own names."""
    root = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        yield _env(mp, f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts")


@pytest.fixture
def store(sqlite_session, monkeypatch) -> str:
    return _env(monkeypatch, sqlite_session, Path(sqlite_session[len("sqlite:///") :]).parent / "mlartifacts")


@pytest.fixture(scope="session")
def runs(sqlite_session, tiny_dir, tmp_path_factory) -> dict[str, str]:
    """Finished runs on the tiny data, trained once: name -> run id (+ 'native_out' dir)."""
    from training.config import SplitConfig
    from training.jobs import run_training

    out = tmp_path_factory.mktemp("native")
    other_split = tiny_config(tiny_dir, "buy_again")
    other_split = other_split.model_copy(
        update={"data": other_split.data.model_copy(update={"split": SplitConfig(test_weeks=3)})}
    )
    return {
        "buy_again": run_training(tiny_config(tiny_dir, "buy_again"), out=out / "buy_again"),
        "popularity": run_training(tiny_config(tiny_dir, "popularity")),
        "popularity_2d": run_training(tiny_config(tiny_dir, "popularity", {"window_days": 2.0})),
        "buy_again_3w": run_training(other_split),
        "native_out": str(out / "buy_again"),
    }


@pytest.fixture(scope="session")
def pg_database():
    """A fresh PostgreSQL database for this session; dropped at the end."""
    import sqlalchemy

    name = f"mlflow_test_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(f"{PG_SERVER}/test", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_SERVER}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(
                sqlalchemy.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def pg_store(monkeypatch, pg_database, tmp_path_factory) -> str:
    return _env(monkeypatch, pg_database, tmp_path_factory.mktemp("pg-artifacts"))


@pytest.fixture
def model_name() -> str:
    return f"test-recommender-{uuid.uuid4().hex[:6]}"
