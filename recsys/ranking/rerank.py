"""Re-ranking a model's scores for CO2e, soft diet preferences and category diversity.

All re-rankers share one mechanism: take the top `pool` ALLOWED candidates (recsys.ranking.topk, so
masks apply first), compute an adjusted score over the candidates, and take the top-k of that through
the same top_k. Re-ranking can therefore only reorder compliant items; it can never let a forbidden
one in, and k is honoured whenever k allowed items exist.

    adjusted = z(score) - co2_weight * z(co2e_per_kg) - penalty - diversity * (rank within category)

z() standardises over each user's candidates, so the weight means "standard deviations of relevance
per standard deviation of CO2e" whatever the model's score scale. Unknown CO2e gets the catalog's
median CO2e: neutral, neither pushed up nor down. The diversity term is MMR-style greedy selection
by category in closed form: greedily picking the best `adjusted - diversity * (items already picked
from this category)` picks each category's items in their own order, so the j-th item of a category
pays diversity * j, and one top-k over those values is the greedy list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.ranking.topk import top_k

DEFAULT_POOL = 200


def neutral_co2e(co2e: np.ndarray | pd.Series) -> np.ndarray:
    """CO2e per item with unknown (NaN) values replaced by the median of the known ones (0 if none)."""
    values = np.asarray(co2e, dtype=np.float64)
    known = values[np.isfinite(values)]
    fill = float(np.median(known)) if known.size else 0.0
    return np.where(np.isfinite(values), values, fill)


def _zscore(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row-wise z-scores over `valid` entries; rows with no spread get 0."""
    v = np.where(valid, values, 0.0)
    n = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = v.sum(axis=1, keepdims=True) / n
    var = (np.where(valid, values - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / n
    std = np.sqrt(var)
    return np.where(std > 1e-12, (values - mean) / np.where(std > 1e-12, std, 1.0), 0.0)


def _rank_within_group(adjusted: np.ndarray, groups: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """0 for each row's best candidate of a group, 1 for the second, ... (by `adjusted`)."""
    n_rows, n_cols = adjusted.shape
    order = np.argsort(-np.where(valid, adjusted, -np.inf), axis=1, kind="stable")
    sorted_groups = np.take_along_axis(groups, order, axis=1)
    frame = pd.DataFrame({"row": np.repeat(np.arange(n_rows), n_cols), "group": sorted_groups.ravel()})
    ranks_sorted = frame.groupby(["row", "group"], sort=False).cumcount().to_numpy().reshape(n_rows, n_cols)
    ranks = np.empty_like(ranks_sorted)
    np.put_along_axis(ranks, order, ranks_sorted, axis=1)
    return ranks


def rerank(
    scores: np.ndarray,
    k: int,
    allowed: np.ndarray | None = None,
    *,
    co2e: np.ndarray | None = None,
    co2_weight: float = 0.0,
    penalty: np.ndarray | None = None,
    categories: np.ndarray | None = None,
    diversity: float = 0.0,
    pool: int = DEFAULT_POOL,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k items and adjusted scores per row of a (n_users, n_items) score matrix.

    `co2e` is per item (NaN = unknown, use `neutral_co2e` semantics); `penalty` is per item or per
    (user, item) in z units (soft preferences: a penalty of 1 costs one standard deviation of
    relevance); `categories` holds an integer or string category per item. With every weight at 0
    and no penalty this IS top_k(scores, k, allowed), bit for bit.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if co2_weight < 0 or diversity < 0:
        raise ValueError(f"co2_weight and diversity must be >= 0, got {co2_weight} and {diversity}")
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float32))
    if co2_weight == 0 and diversity == 0 and penalty is None:
        return top_k(scores, k, allowed)
    cand, cand_scores = top_k(scores, max(pool, k), allowed)
    valid = cand >= 0
    safe = np.where(valid, cand, 0)
    adjusted = _zscore(cand_scores.astype(np.float64), valid)
    if co2_weight:
        if co2e is None:
            raise ValueError("co2_weight > 0 needs the items' co2e_per_kg")
        c = neutral_co2e(co2e)[safe]
        adjusted -= co2_weight * _zscore(c, valid)
    if penalty is not None:
        pen = np.asarray(penalty, dtype=np.float64)
        adjusted -= pen[safe] if pen.ndim == 1 else np.take_along_axis(np.atleast_2d(pen), safe, axis=1)
    if diversity:
        if categories is None:
            raise ValueError("diversity > 0 needs the items' categories")
        codes = pd.factorize(np.asarray(categories, dtype=object), use_na_sentinel=False)[0]
        adjusted -= diversity * _rank_within_group(adjusted, codes[safe], valid)
    local, top_scores = top_k(adjusted, k, valid)
    items = np.where(local >= 0, np.take_along_axis(cand, np.maximum(local, 0), axis=1), -1)
    return items, top_scores


@dataclass(frozen=True)
class Co2eSummary:
    """Mean CO2e per kg of a list's items with a known value, and how many were unknown."""

    mean: float
    n_known: int
    n_unknown: int


def co2e_summary(items: np.ndarray | list[int], co2e: np.ndarray | pd.Series) -> Co2eSummary:
    """Summary over item indices (-1 padding ignored); unknown values are counted, not averaged."""
    idx = np.asarray(items, dtype=np.int64).ravel()
    idx = idx[idx >= 0]
    values = np.asarray(co2e, dtype=np.float64)[idx]
    known = np.isfinite(values)
    mean = float(values[known].mean()) if known.any() else float("nan")
    return Co2eSummary(mean, int(known.sum()), int((~known).sum()))


def list_co2e(items: np.ndarray | list[int], co2e: np.ndarray | pd.Series) -> float:
    """Mean kg CO2e per kg over the list's items with a known value (NaN if none is known)."""
    return co2e_summary(items, co2e).mean
