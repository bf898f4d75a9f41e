"""Evaluate a fitted model the way every run reports it: each track, each k, plus list diagnostics.

All accuracy figures come from `recsys.metrics.evaluation.evaluate` (the same code as the benchmark
and the tests); this module only loops over tracks/k, names the results for MLflow and gathers the
aggregates the plots need (never per-customer rows).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.metrics.evaluation import evaluate, evaluation_users
from training.tracking import metric_key

#: Activity buckets by number of training baskets: the figures that tell whether light shoppers
#: (most of a loyalty base) are served as well as the regulars.
ACTIVITY_BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("1-4_baskets", 1, 5),
    ("5-19_baskets", 5, 20),
    ("20-49_baskets", 20, 50),
    ("50-plus_baskets", 50, np.inf),
)
NON_METRIC_KEYS = ("n_users", "recommend_seconds")


class CachedRecommender:
    """Computes each user's top-`max_k` list once per `exclude_seen` mode and serves prefixes.

    `evaluate` asks the model for every k, track and segment; with a 90k-item catalog scoring is
    what costs, and the top-k of a top-max_k list is its prefix, so one pass per track suffices.
    Only `recommend_idx` without a mask is cached (that is all `evaluate` uses).
    """

    def __init__(self, model, max_k: int):
        self.model = model
        self.max_k = max_k
        self._lists: dict[bool, np.ndarray] = {}
        self._done: dict[bool, np.ndarray] = {}

    def __getattr__(self, name: str):
        return getattr(self.model, name)

    def recommend_idx(self, user_idx, k: int, allowed=None, exclude_seen: bool = False, scores=None):
        user_idx = np.asarray(user_idx, dtype=np.int64)
        if allowed is not None or scores is not None or k > self.max_k or (user_idx < 0).any():
            return self.model.recommend_idx(
                user_idx, k, allowed=allowed, exclude_seen=exclude_seen, scores=scores
            )
        n_users = len(self.model.users_)
        if exclude_seen not in self._lists:
            self._lists[exclude_seen] = np.full((n_users, self.max_k), -1, dtype=np.int64)
            self._done[exclude_seen] = np.zeros(n_users, dtype=bool)
        lists, done = self._lists[exclude_seen], self._done[exclude_seen]
        missing = np.unique(user_idx[~done[user_idx]])
        for lo in range(0, len(missing), 256):
            batch = missing[lo : lo + 256]
            items, _ = self.model.recommend_idx(batch, self.max_k, exclude_seen=exclude_seen)
            lists[batch] = items
            done[batch] = True
        items = lists[user_idx, :k]
        return items, np.where(items >= 0, -np.arange(k, dtype=np.float32), -np.inf)


@dataclass
class EvaluationResult:
    metrics: dict[str, float]
    curves: dict[tuple[str, str], dict[int, float]]  # (metric, track) -> {k: value}
    segments: dict[str, dict[str, float]]  # bucket -> {metric key: value}
    seconds: float
    lists: dict[str, np.ndarray] = field(default_factory=dict)  # diagnostic aggregates per list


def evaluate_tracks(
    model,
    train: Dataset,
    test: Dataset,
    ks: list[int],
    tracks: list[str],
    metrics: list[str] | None = None,
) -> tuple[dict[str, float], dict[tuple[str, str], dict[int, float]]]:
    """Flat metric dict ('ndcg_at_10__all') and metric@k curves for every track and k."""
    flat: dict[str, float] = {}
    curves: dict[tuple[str, str], dict[int, float]] = {}
    for track in tracks:
        for k in sorted(set(ks)):
            result = evaluate(model, train, test, k=k, track=track)
            for name, value in result.items():
                if name in NON_METRIC_KEYS:
                    flat[f"{name}__{track}"] = float(value)
                    continue
                if metrics and name not in metrics:
                    continue
                flat[metric_key(name, k, track)] = float(value)
                curves.setdefault((name, track), {})[k] = float(value)
    return flat, curves


def activity_buckets(train: Dataset) -> pd.Series:
    """Bucket label per user index (users with no training basket are absent)."""
    baskets = train.interactions.groupby("user_idx")["basket_id"].nunique()
    labels = pd.Series(index=baskets.index, dtype=object)
    for label, low, high in ACTIVITY_BUCKETS:
        labels[(baskets >= low) & (baskets < high)] = label
    return labels


def segment_metrics(model, train: Dataset, test: Dataset, k: int, tracks: list[str]) -> dict:
    """ndcg/recall/hit_rate@k per activity bucket and track."""
    labels = activity_buckets(train)
    out: dict[str, dict[str, float]] = {}
    for label, _, _ in ACTIVITY_BUCKETS:
        users = labels.index[labels == label].to_numpy()
        if len(users) == 0:
            continue
        sub = test.with_interactions(test.interactions[test.interactions["user_idx"].isin(users)])
        figures: dict[str, float] = {}
        for track in tracks:
            if len(evaluation_users(train, sub, track)[0]) == 0:
                continue
            res = evaluate(model, train, sub, k=k, track=track, beyond_accuracy=False)
            for name in ("ndcg", "recall", "hit_rate", "n_users"):
                if name in res:
                    figures[metric_key(name, k, track)] = float(res[name])
        if figures:
            out[label] = figures
    return out


def list_diagnostics(model, train: Dataset, test: Dataset, k: int) -> dict[str, np.ndarray]:
    """Aggregates for the popularity-bias and CO2e plots: item popularity (share of train users) of
    recommended vs. actually bought items, and mean CO2e/kg per list vs. per test purchase set."""
    users, truth = evaluation_users(train, test, "all")
    if len(users) == 0:
        return {}
    recs, _ = model.recommend_idx(users, k)
    seen = train.user_item_matrix("binary")
    n_train_users = max(int((np.diff(seen.indptr) > 0).sum()), 1)
    share = np.asarray(seen.sum(axis=0)).ravel() / n_train_users
    valid = recs >= 0
    out = {
        "rec_popularity": share[recs[valid]],
        "truth_popularity": share[truth.indices],
    }
    items = train.items_table
    co2_col = pd.to_numeric(items["co2e_per_kg"], errors="coerce") if "co2e_per_kg" in items else None
    if co2_col is not None and co2_col.notna().any():
        co2 = co2_col.to_numpy(dtype=np.float64)
        rec_co2 = np.where(valid, co2[np.where(valid, recs, 0)], np.nan)
        truth_rows = np.split(co2[truth.indices], truth.indptr[1:-1])
        with warnings.catch_warnings():  # lists without any CO2e figure give NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            out["rec_co2e"] = np.nanmean(rec_co2, axis=1)
            out["truth_co2e"] = np.array(
                [np.nanmean(r) if np.isfinite(r).any() else np.nan for r in truth_rows]
            )
    return out


def full_evaluation(
    model, train: Dataset, test: Dataset, ks: list[int], tracks: list[str], metrics: list[str] | None
) -> EvaluationResult:
    start = time.perf_counter()
    model = CachedRecommender(model, max(ks))
    flat, curves = evaluate_tracks(model, train, test, ks, tracks, metrics)
    k_seg = 10 if 10 in ks else max(ks)
    segments = segment_metrics(model, train, test, k_seg, tracks)
    lists = list_diagnostics(model, train, test, max(ks))
    return EvaluationResult(flat, curves, segments, time.perf_counter() - start, lists)
