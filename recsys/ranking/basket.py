"""Basket completion: what completes the products in hand, for this customer.

Two signals, blended per request:
- co-occurrence: how often a product lands in the same checkout as the basket's products (cosine of
  basket co-occurrence, `recsys.ranking.similarity.cooccurrence_sparse` with baskets as rows), kept as each product's `neighbours` strongest partners so a request sums a few sparse rows;
- the customer's own scores from the model (buy-again, taste), which `ProductSelector` computes as
  for any personalised list.

Where the co-occurrence comes from (decided once): `BasketCompleter.from_interactions` builds it from
the training interactions' `basket_id` when a data directory is loaded (the service with
RECSYS_DATA_DIR, `recsys recommend --data`, the benchmark); it is derived data, rebuilt in seconds at
load, so nothing new is saved with the model. Without interactions (the pyfunc, a bare model
directory) the selector falls back to the model's own item similarity (`Recommender.item_similarity`:
customer co-occurrence or factor cosine), through the same blend.

Each signal is scaled to [0, 1] over the catalog before blending, so `weight` means the same for
every model whatever its score scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.ranking.similarity import cooccurrence_sparse

#: Blend weight of co-occurrence against the customer's scores (chosen on the basket benchmark's
#: training weeks, see benchmarks/basket.py).
DEFAULT_WEIGHT = 0.3
#: Partners kept per product: enough for a 10-item list after masks, small enough to sum fast.
DEFAULT_NEIGHBOURS = 200


class BasketCompleter:
    """`neighbours`: items x items CSR, row i = item i's strongest co-occurrence partners (cosine)."""

    def __init__(self, neighbours: sp.csr_matrix, weight: float = DEFAULT_WEIGHT):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"basket weight must be in [0, 1], got {weight}")
        self.neighbours = sp.csr_matrix(neighbours, dtype=np.float32)
        self.weight = weight

    @property
    def n_items(self) -> int:
        return self.neighbours.shape[0]

    @classmethod
    def from_interactions(
        cls,
        interactions: pd.DataFrame,
        n_items: int,
        neighbours: int = DEFAULT_NEIGHBOURS,
        weight: float = DEFAULT_WEIGHT,
        to_model: np.ndarray | None = None,
    ) -> BasketCompleter:
        """From purchase lines with item_idx and basket_id (a product counts once per basket).
        `to_model[i]`: the model's row of the data's item i (-1: unknown to the model, dropped), for
        data whose item map is not the model's."""
        for column in ("item_idx", "basket_id"):
            if column not in interactions:
                raise ValueError(f"interactions need a {column!r} column to learn basket co-occurrence")
        lines = interactions[["basket_id", "item_idx"]].dropna()
        if to_model is not None:
            lines = lines.assign(item_idx=np.asarray(to_model)[lines["item_idx"].to_numpy(np.int64)])
            lines = lines[lines["item_idx"] >= 0]
        lines = lines.drop_duplicates()
        baskets = pd.factorize(lines["basket_id"])[0]
        items = lines["item_idx"].to_numpy(np.int64)
        shape = (int(baskets.max()) + 1 if len(baskets) else 0, n_items)
        by_basket = sp.csr_matrix((np.ones(len(items), np.float32), (baskets, items)), shape=shape)
        # the whole item x item cosine at once (sparse: only pairs that share a basket), then the
        # strongest `neighbours` per row
        co = sp.coo_matrix(cooccurrence_sparse(by_basket.tocsc()))
        off = co.row != co.col  # an item is not its own partner
        row, col, val = co.row[off], co.col[off], co.data[off]
        order = np.lexsort((-val, row))
        row, col, val = row[order], col[order], val[order]
        starts = np.searchsorted(row, np.arange(n_items))
        keep = np.arange(len(row)) - starts[row] < neighbours
        matrix = sp.csr_matrix((val[keep], (row[keep], col[keep])), shape=(n_items, n_items))
        return cls(matrix, weight)

    def cooccurrence(self, basket: np.ndarray) -> np.ndarray:
        """(n_items,) summed co-occurrence with the basket's items (internal indices)."""
        basket = np.asarray(basket, dtype=np.int64)
        if not len(basket):
            return np.zeros(self.n_items, dtype=np.float32)
        return np.asarray(self.neighbours[basket].sum(axis=0), dtype=np.float32).ravel()


def unit_scale(scores: np.ndarray) -> np.ndarray:
    """Finite scores mapped to [0, 1] (min -> 0, max -> 1; a constant row -> 0); -inf stays -inf."""
    scores = np.asarray(scores, dtype=np.float32)
    finite = np.isfinite(scores)
    if not finite.any():
        return scores.copy()
    lo, hi = scores[finite].min(), scores[finite].max()
    out = (scores - lo) / (hi - lo) if hi > lo else np.zeros_like(scores)
    out[~finite] = -np.inf
    return out


def blend(cooccurrence: np.ndarray, personal: np.ndarray, weight: float) -> np.ndarray:
    """weight * co-occurrence + (1 - weight) * the customer's scores, each scaled to [0, 1]; a basket
    without any known partner leaves the customer's order unchanged."""
    out = (1.0 - weight) * unit_scale(personal)
    if weight and np.any(cooccurrence > 0):
        out += weight * unit_scale(cooccurrence)
    return out
