"""Compliant substitutes: the gluten-free bread for the wheat bread in a gluten-free basket.

Candidates are the compliant items of the same category (never the item itself); items of the same
type come first, then the rest of the category, each tier ordered by closeness in the model's item
space (`Recommender.similar_items`: factors where the model has them, purchase co-occurrence
otherwise) with popularity breaking ties. We stop at the category on purpose: a "substitute" from
another category (crackers for bread) is a different product, not a swap.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from recsys.ranking.topk import top_k

TIER_SAME_TYPE = 2.0
TIER_SAME_CATEGORY = 1.0
REASONS = {TIER_SAME_TYPE: "same type", TIER_SAME_CATEGORY: "same category"}


def _text(items_table: pd.DataFrame, column: str) -> np.ndarray:
    if column not in items_table:
        return np.full(len(items_table), "", dtype=object)
    col = items_table[column]
    return col.astype(object).where(col.notna(), "").astype(str).str.strip().str.upper().to_numpy()


def substitute_tiers(items_table: pd.DataFrame, item_idx: int) -> np.ndarray:
    """Per item: TIER_SAME_TYPE, TIER_SAME_CATEGORY or 0 relative to `item_idx` (itself 0)."""
    cats, types = _text(items_table, "category"), _text(items_table, "type")
    tier = np.zeros(len(items_table), dtype=np.float64)
    cat, typ = cats[item_idx], types[item_idx]
    if cat:
        same_cat = cats == cat
        tier[same_cat] = TIER_SAME_CATEGORY
        if typ:
            tier[same_cat & (types == typ)] = TIER_SAME_TYPE
    elif typ:  # no category known: the type is the only neighbourhood we can trust
        tier[types == typ] = TIER_SAME_TYPE
    tier[item_idx] = 0.0
    return tier


def _similarity(model: Any, item_idx: int, candidates: np.ndarray) -> np.ndarray:
    """Similarity of each candidate to the item through the model (0 elsewhere / without a model)."""
    sim = np.zeros(len(candidates), dtype=np.float64)
    n = int(candidates.sum())
    if model is None or n == 0 or not hasattr(model, "similar_items"):
        return sim
    item_id = model.items_.to_external([item_idx])[0]
    frame = model.similar_items([item_id], k=n, allowed=candidates)
    idx = model.items_.to_internal(frame["similar_item_id"].astype(str))
    sim[idx] = frame["score"].to_numpy(dtype=np.float64)
    return sim


def _unit_rank(values: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Values mapped to [0, 0.99] by rank among the `among` entries (order kept, scale dropped)."""
    out = np.zeros(len(values), dtype=np.float64)
    idx = np.flatnonzero(among)
    if idx.size:
        ranks = pd.Series(values[idx]).rank(method="average").to_numpy()
        out[idx] = 0.99 * (ranks - 1) / max(idx.size - 1, 1)
    return out


def substitute_idx(
    item_idx: int,
    allowed: np.ndarray,
    items_table: pd.DataFrame,
    k: int = 5,
    model: Any = None,
    popularity: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(item indices, scores, reasons) of up to k compliant substitutes for `item_idx`.

    `allowed` is the request's mask (diet & stock & filters); `items_table` row i is item i and, when a
    model is given, its item index space must be the same. The item itself is never returned.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    n_items = len(items_table)
    if not 0 <= item_idx < n_items:
        raise IndexError(f"item index {item_idx} out of range 0..{n_items - 1}")
    tier = substitute_tiers(items_table, item_idx)
    candidates = np.asarray(allowed, dtype=bool) & (tier > 0)
    candidates[item_idx] = False
    if popularity is None and model is not None and hasattr(model, "item_popularity_"):
        popularity = np.asarray(model.item_popularity_, dtype=np.float64)
    pop = np.zeros(n_items) if popularity is None else np.asarray(popularity, dtype=np.float64)
    closeness = _similarity(model, item_idx, candidates) + 1e-6 * _unit_rank(pop, candidates)
    scores = tier + _unit_rank(closeness, candidates)
    items, top = top_k(scores[None, :], k, candidates)
    ok = items[0] >= 0
    items, top = items[0][ok], top[0][ok]
    return items, top, [REASONS[tier[i]] for i in items]
