"""A model directory: the native model (model.json + arrays.npz) plus the product table it was
trained with, so batch commands can build diet masks without the original data directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.models.base import Recommender

ITEMS_FILE = "items.parquet"


def save_model_dir(
    model: Recommender, items_table: pd.DataFrame, out: Path, interactions: pd.DataFrame | None = None
) -> Path:
    """`interactions`: the training lines; their baskets give the basket co-occurrence saved beside
    the model (recsys.ranking.basket), so every door completes baskets from the same matrix."""
    out = model.save(Path(out))
    items_table.to_parquet(out / ITEMS_FILE, index=False)
    if interactions is not None and "basket_id" in interactions:
        from recsys.ranking.basket import BasketCompleter

        BasketCompleter.from_interactions(interactions, len(model.items_)).save(out)
    return out


def load_items_table(model_dir: Path, data_dir: Path | None = None):
    """(items table, Dataset or None): from `data_dir` when given, else the model dir's copy."""
    if data_dir is not None:
        from recsys.data.dataset import Dataset

        dataset = Dataset.load(Path(data_dir))
        return dataset.items_table, dataset
    path = Path(model_dir) / ITEMS_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; pass --data DIR (the data the model was trained on)")
    return pd.read_parquet(path), None
