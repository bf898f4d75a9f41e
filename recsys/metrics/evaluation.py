"""`evaluate`: the one offline evaluation used by the benchmark, tests, MLflow logging and Optuna.

Protocol (documented in README):
- truth = each user's DISTINCT test products (binary);
- users = those with at least one test purchase AND at least one training purchase, so a
  non-personalised and a personalised model are always scored on exactly the same users;
- track "all": every test product counts and already-bought products may be recommended (in
  grocery most purchases are re-buys);
- track "new": truth keeps only products the user never bought in train (users left with none are
  skipped) and EVERY model is asked with exclude_seen=True: a re-buy can never be a hit on this
  track, so letting models spend slots on them would only measure how much they repeat.
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.metrics.beyond_accuracy import (
    catalog_coverage,
    intra_list_diversity,
    novelty,
    popularity_bias,
)
from recsys.metrics.ranking import RANKING_METRICS

Track = Literal["all", "new"]


def evaluation_users(train: Dataset, test: Dataset, track: Track = "all") -> tuple[np.ndarray, sp.csr_matrix]:
    """(user indices, truth rows aligned with them) for a track."""
    if track not in ("all", "new"):
        raise ValueError(f"unknown track {track!r}; use 'all' or 'new'")
    if train.users != test.users or train.items != test.items:
        raise ValueError("train and test must share id maps (split one Dataset)")
    seen = train.user_item_matrix("binary")
    truth = test.user_item_matrix("binary")
    if track == "new":
        truth = (truth - truth.multiply(seen)).tocsr()
        truth.eliminate_zeros()
    has_truth = np.diff(truth.indptr) > 0
    has_train = np.diff(seen.indptr) > 0
    users = np.flatnonzero(has_truth & has_train)
    return users, truth[users].tocsr()


def item_categories(dataset: Dataset) -> np.ndarray:
    """Integer category code per item (category, else department); -1 when unknown."""
    items = dataset.items_table
    cat = items["category"].astype(object).where(items["category"].notna(), items["department"])
    codes, _ = pd.factorize(cat)
    return codes.astype(np.int64)


def evaluate(
    model,
    train: Dataset,
    test: Dataset,
    k: int = 10,
    track: Track = "all",
    batch_size: int = 256,
    beyond_accuracy: bool = True,
) -> dict[str, float]:
    """Metrics@k of a fitted model: precision, recall, ndcg, map, mrr, hit_rate (+ coverage, novelty,
    diversity, popularity_bias), n_users and seconds spent recommending."""
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    users, truth = evaluation_users(train, test, track)
    start = time.perf_counter()
    recs = np.full((len(users), k), -1, dtype=np.int64)
    for lo in range(0, len(users), batch_size):
        items, _ = model.recommend_idx(users[lo : lo + batch_size], k, exclude_seen=(track == "new"))
        recs[lo : lo + batch_size] = items
    out: dict[str, float] = {name: fn(recs, truth, k) for name, fn in RANKING_METRICS.items()}
    if beyond_accuracy:
        item_users = np.diff(train.user_item_matrix("binary").tocsc().indptr)
        n_train_users = int((np.diff(train.user_item_matrix("binary").indptr) > 0).sum())
        out["coverage"] = catalog_coverage(recs, train.n_items)
        out["novelty"] = novelty(recs, item_users, n_train_users)
        out["diversity"] = intra_list_diversity(recs, item_categories(train))
        out["popularity_bias"] = popularity_bias(recs, item_users, n_train_users)
    out["n_users"] = float(len(users))
    out["recommend_seconds"] = time.perf_counter() - start
    return out
