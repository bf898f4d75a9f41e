"""Popularity: the non-personalised baseline, global or within the customer's categories."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.models.base import Recommender


def item_category_codes(dataset: Dataset) -> np.ndarray:
    """Integer code per item: its category, else its department."""
    items = dataset.items_table
    cat = items["category"].astype(object).where(items["category"].notna(), items["department"])
    codes, _ = pd.factorize(cat)
    return codes.astype(np.int64)


def popularity_scores(recent_buyers: np.ndarray, all_buyers: np.ndarray) -> np.ndarray:
    """float32 buyers in the window, ties broken by all-time buyers, so the ranking is total and stable."""
    all_time = np.asarray(all_buyers, dtype=np.float32)
    return np.asarray(recent_buyers, dtype=np.float32) + all_time / (all_time.max() + 1.0)


def user_category_share(counts: sp.csr_matrix, codes: np.ndarray) -> np.ndarray:
    """(n_users, n_categories) float32: each customer's share of purchase lines per category."""
    n_cat = int(codes.max()) + 1 if len(codes) else 0
    onehot = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (np.arange(len(codes)), codes)),
        shape=(len(codes), n_cat),
    )
    user_cat = (counts @ onehot).toarray()
    totals = user_cat.sum(axis=1, keepdims=True)
    return np.divide(user_cat, totals, out=np.zeros_like(user_cat), where=totals > 0).astype(np.float32)


class Popularity(Recommender):
    """Items ranked by how many customers bought them (within the last `window_days` if given).

    by="global": the same list for everyone. by="category": popularity within a category times the
    customer's share of purchase lines in that category, so a customer who never buys pet food is not
    shown dog food. Unknown customers get the global list.
    """

    name = "popularity"

    def __init__(self, by: Literal["global", "category"] = "global", window_days: float | None = None):
        self.by = by
        self.window_days = window_days

    def _fit(self, dataset: Dataset) -> None:
        if self.by not in ("global", "category"):
            raise ValueError(f"by must be 'global' or 'category', got {self.by!r}")
        inter = dataset.interactions
        if self.window_days is not None and len(inter):
            start = inter["timestamp"].max() - pd.Timedelta(days=float(self.window_days))
            inter = inter[inter["timestamp"] >= start]
        recent = dataset.with_interactions(inter).user_item_matrix("binary")
        self.pop_ = popularity_scores(np.asarray(recent.sum(axis=0)).ravel(), self.item_popularity_)
        if self.by == "category":
            self.item_cat_ = item_category_codes(dataset)
            self.user_cat_share_ = user_category_share(dataset.user_item_matrix("count"), self.item_cat_)

    def _fallback_counts(self) -> np.ndarray:
        return self.pop_ if hasattr(self, "pop_") else self.item_popularity_

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        if self.by == "global":
            return np.broadcast_to(self.pop_, (len(user_idx), len(self.pop_)))
        share = self.user_cat_share_[user_idx][:, self.item_cat_]
        return share * self.pop_[None, :]

    def _get_state(self) -> dict[str, np.ndarray]:
        state = {"pop": self.pop_}
        if self.by == "category":
            state.update(item_cat=self.item_cat_, user_cat_share=self.user_cat_share_)
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.pop_ = state["pop"]
        if self.by == "category":
            self.item_cat_ = state["item_cat"]
            self.user_cat_share_ = state["user_cat_share"]
