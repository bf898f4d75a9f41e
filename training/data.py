"""Prepare (if needed), load and split the data a config names, and describe it for MLflow.

The dataset digest from the data directory's manifest and the split cutoff are what the promotion
gate compares: two runs are only comparable on the same digest and cutoff.

Customers erased through the service (`POST /v1/customers/erase`) are dropped from every table before
anything is split or fitted: the service's event store keeps an erasure key per erased customer, and
`prepare` reads those keys from the store at RECSYS_EVENTS_URL (the service's default SQLite file when
unset). Only the number of dropped customers is reported, never who they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.erasure import drop_erased
from recsys.data.io import MANIFEST, read_manifest, read_tables
from recsys.data.splits import Split, temporal_split, week_cutoff
from recsys.defaults import DEFAULT_EVENTS_URL
from training.config import DataConfig, SplitConfig


@dataclass(frozen=True)
class PreparedData:
    dataset: Dataset
    split: Split
    data_dir: Path
    manifest: dict[str, Any]
    erased_customers: int = 0  # customers dropped because they were erased through the service

    @property
    def digest(self) -> str:
        return str(self.manifest.get("digest", "unknown"))

    @property
    def cutoff(self) -> str:
        return self.split.cutoff.isoformat() if self.split.cutoff is not None else "none"


def ensure_data_dir(data: DataConfig) -> Path:
    """The prepared data directory, building it from the named source the first time."""
    out = Path(data.dir)
    if (out / MANIFEST).exists():
        return out
    if data.source == "completejourney":
        from recsys.data.progress import Progress
        from recsys.prepare import COMPLETEJOURNEY_STEPS, prepare_completejourney

        prepare_completejourney(out, Progress(COMPLETEJOURNEY_STEPS))
    elif data.source == "synthetic":
        from lab.synthetic import generate, write_synthetic

        spec = data.synthetic
        generated = generate(
            n_customers=spec.customers, n_products=spec.products, weeks=spec.weeks, seed=spec.seed
        )
        write_synthetic(generated, out)
    else:
        source = Path(data.source)
        if (source / MANIFEST).exists():
            return source
        from recsys.data.io import import_dir

        import_dir(source, out)
    return out


def resolve_cutoff(dataset: Dataset, split: SplitConfig) -> pd.Timestamp:
    if split.cutoff is not None:
        return pd.Timestamp(split.cutoff)
    assert split.test_weeks is not None
    return week_cutoff(dataset, split.test_weeks)


def events_url(env: dict[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return env.get("RECSYS_EVENTS_URL") or DEFAULT_EVENTS_URL


def read_erasure_keys(url: str) -> set[str]:
    """Every erasure key in the event store at `url`; none if the database or its table does not exist.

    A store that exists but cannot be reached is an error: training must not quietly run on data that
    still holds erased customers.
    """
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or not Path(database).exists():
            return set()
    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("erasures"):
                return set()
            return {str(k) for k in conn.execute(text("SELECT id_hash FROM erasures")).scalars()}
    except OperationalError as exc:
        if parsed.database and f'database "{parsed.database}" does not exist' in str(exc.orig):
            return set()
        raise RuntimeError(
            f"cannot read erasures from the event store {parsed.render_as_string(hide_password=True)}: "
            f"{exc.orig}"
        ) from exc
    finally:
        engine.dispose()


#: Columns of the event store's consent/profile overrides (what POST /v1/customers/consent records).
OVERRIDE_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "consent_personalisation",
    "consent_marketing",
    "diet_exclusions",
    "diet_preferences",
)


def read_customer_overrides(url: str) -> pd.DataFrame:
    """The consent and diet each customer last told the service (its `customer_overrides` table); an
    empty frame when the database or the table does not exist. An unreachable store is an error, as
    for erasures: a plan must not go to customers who withdrew their consent."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    empty = pd.DataFrame({c: pd.Series(dtype=object) for c in OVERRIDE_COLUMNS})
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if not database or database == ":memory:" or not Path(database).exists():
            return empty
    engine = create_engine(parsed)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("customer_overrides"):
                return empty
            rows = conn.execute(text(f"SELECT {', '.join(OVERRIDE_COLUMNS)} FROM customer_overrides")).all()
    except OperationalError as exc:
        if parsed.database and f'database "{parsed.database}" does not exist' in str(exc.orig):
            return empty
        raise RuntimeError(
            f"cannot read consent overrides from the event store "
            f"{parsed.render_as_string(hide_password=True)}: {exc.orig}"
        ) from exc
    finally:
        engine.dispose()
    return pd.DataFrame([tuple(r) for r in rows], columns=list(OVERRIDE_COLUMNS)) if rows else empty


def apply_customer_overrides(customers: pd.DataFrame, overrides: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """The customers table with each override replacing the customer's consent and diet (the service's
    precedence: what the customer told the app last wins, a missing diet included), and how many
    customers it changed. Overrides of ids the table does not hold are ignored."""
    if overrides.empty:
        return customers, 0
    over = overrides.assign(customer_id=overrides["customer_id"].astype(str)).drop_duplicates(
        "customer_id", keep="last"
    )
    over = over.set_index("customer_id")
    ids = customers["customer_id"].astype(str)
    hit = ids.isin(over.index).to_numpy()
    if not hit.any():
        return customers, 0
    out = customers.copy()
    for column in OVERRIDE_COLUMNS[1:]:
        values = ids[hit].map(over[column])
        if column.startswith("consent_"):
            values = values.astype(bool)
        if column not in out:
            out[column] = pd.Series([None] * len(out), dtype=object)
        out[column] = out[column].astype(object)
        out.loc[hit, column] = values.to_numpy(dtype=object)
        if column.startswith("consent_"):
            out[column] = out[column].astype(bool)
    return out, int(hit.sum())


def load_without_erased(data_dir: Path, url: str | None = None) -> tuple[Dataset, int]:
    """The data directory's dataset minus every customer erased in the event store, and their count."""
    tables, dropped = drop_erased(read_tables(data_dir), read_erasure_keys(url or events_url()))
    return Dataset.from_tables(tables), dropped


def prepare(data: DataConfig) -> PreparedData:
    data_dir = ensure_data_dir(data)
    dataset, erased = load_without_erased(data_dir)
    split = temporal_split(dataset, resolve_cutoff(dataset, data.split), data.split.until)
    if len(split.train.interactions) == 0 or len(split.test.interactions) == 0:
        raise ValueError(
            f"split at {split.cutoff} leaves {len(split.train.interactions)} train and "
            f"{len(split.test.interactions)} test interactions; choose another cutoff"
        )
    return PreparedData(dataset, split, data_dir, read_manifest(data_dir), erased)


def validation_split(train: Dataset, weeks: int) -> Split:
    """Carve a validation period out of the training data so tuning never looks at the test weeks."""
    return temporal_split(train, week_cutoff(train, weeks))


def subsample_users(test: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """The test interactions of a random share of test users (cheap first look for pruning)."""
    users = test.interactions["user_idx"].unique()
    if fraction >= 1.0 or len(users) < 2:
        return test
    rng = pd.Series(users).sample(frac=fraction, random_state=seed)
    keep = test.interactions["user_idx"].isin(rng.to_numpy())
    return test.with_interactions(test.interactions[keep])


def schema_summary(dataset: Dataset) -> dict[str, Any]:
    """Column names, dtypes and row counts (never rows): what MLflow may know about the data."""
    frames = {
        "interactions": dataset.interactions,
        "products": dataset.items_table,
        "customers": dataset.users_table,
    }
    return {
        name: {"rows": len(df), "columns": {c: str(t) for c, t in df.dtypes.items()}}
        for name, df in frames.items()
    }
