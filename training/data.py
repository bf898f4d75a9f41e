"""Prepare (if needed), load and split the data a config names, and describe it for MLflow.

The dataset digest from the data directory's manifest and the split cutoff are what the promotion
gate compares: two runs are only comparable on the same digest and cutoff.

Customers erased through the service (`POST /v1/customers/erase`) are dropped from every table before
anything is split or fitted: the service's event store keeps an erasure key per erased customer, and
`prepare` reads those keys through training/privacy.py (the one reader every batch job uses, failing
closed). Only the number of dropped customers is reported, never who they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.io import MANIFEST, read_manifest, read_tables
from recsys.data.splits import Split, temporal_split, week_cutoff
from training.config import DataConfig, SplitConfig
from training.privacy import Privacy, read_privacy


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
    if data.source == "completejourney" and data.engine == "spark":
        from training.spark.prepare import prepare_completejourney_spark

        prepare_completejourney_spark(out)
    elif data.source == "completejourney":
        from recsys.data.progress import Progress
        from recsys.prepare import COMPLETEJOURNEY_STEPS, prepare_completejourney

        prepare_completejourney(out, Progress(COMPLETEJOURNEY_STEPS))
    elif data.source == "synthetic":
        from lab.synthetic import write_synthetic_parts

        spec = data.synthetic
        write_synthetic_parts(out, spec.customers, spec.products, spec.weeks, spec.seed)
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


def load_without_erased(
    data_dir: Path,
    url: str | None = None,
    privacy: Privacy | None = None,
    before: pd.Timestamp | None = None,
    in_memory: bool = True,
    skip: tuple[str, ...] = (),
) -> tuple[Dataset, int]:
    """The data directory's dataset minus every customer erased in the event store, and their count
    (training/privacy.py: an unreadable configured store stops here); with `before`, only the lines
    strictly before it (a training set, read without its test weeks); `in_memory=False` leaves the
    lines on disk (an out-of-core Dataset: erased customers are dropped by the id map); `skip`
    leaves out tables the caller does not use (a national program's offer log is millions of rows)."""
    privacy = privacy or read_privacy(url)
    tables, dropped = privacy.drop_erased(read_tables(data_dir, skip=("interactions", *skip)))
    return Dataset.from_tables(tables, lines=data_dir, before=before, in_memory=in_memory), dropped


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
