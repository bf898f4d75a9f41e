"""Basket completion: what completes the products in hand, for this customer.

Two signals, blended per request:
- co-occurrence: how often a product lands in the same checkout as the basket's products (cosine of
  basket co-occurrence, `recsys.ranking.similarity.cooccurrence_sparse` with baskets as rows), kept as each product's `neighbours` strongest partners so a request sums a few sparse rows;
- the customer's own scores from the model (buy-again, taste), which `ProductSelector` computes as
  for any personalised list.

Where the co-occurrence comes from (decided once): it is fitted with the model, from the TRAINING
interactions' `basket_id` (`from_interactions`), and saved in the model directory as `basket.npz`
(numpy only) by `recsys train` and the tracked training job, so the service, `recsys recommend` and
the pyfunc all load the same matrix (`load`) and give the same lists. A model directory without it
(older models): the service and `recsys recommend --data` build it from the data directory at load;
with no interactions at all the selector falls back to the model's own item similarity
(`Recommender.item_similarity`: customer co-occurrence or factor cosine), through the same blend.

Each signal is scaled to [0, 1] over the catalog before blending, so `weight` means the same for
every model whatever its score scale.

Optionally (`model.basket_rerank` in a training config) a learned re-ranker is saved beside the
co-occurrence (`basket_rerank.npz`, loaded with it): it re-scores the masked blend's top candidates
(`recsys.ranking.basket_rerank`), because one weight for everybody cannot tell a substitute of a
basket product from its complement or a weekly staple from a one-off.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.ranking.basket_rerank import RERANK_FILE, BasketReranker
from recsys.ranking.similarity import cooccurrence_sparse

#: Blend weight of co-occurrence against the customer's scores, chosen with the grocery ranker on the
#: basket benchmark's validation split (`--week 46`: train before week 46, baskets of weeks 46-49), not
#: on its test weeks. Tried there and dropped, as they did not beat cosine at this weight: P(j | i) and
#: asymmetric cosine, lift with shrinkage, product-type complements, buy-again counts as a third
#: signal, penalising the basket's own types/categories (substitutes).
DEFAULT_WEIGHT = 0.2
#: Partners kept per product: enough for a 10-item list after masks, small enough to sum fast.
DEFAULT_NEIGHBOURS = 200
#: File of the co-occurrence inside a model directory.
BASKET_FILE = "basket.npz"


class BasketCompleter:
    """`neighbours`: items x items CSR, row i = item i's strongest co-occurrence partners (cosine).
    `reranker`: the learned re-ranking of the blend's top candidates (recsys.ranking.basket_rerank),
    None: the blend's order is served."""

    def __init__(
        self,
        neighbours: sp.csr_matrix,
        weight: float = DEFAULT_WEIGHT,
        reranker: BasketReranker | None = None,
    ):
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"basket weight must be in [0, 1], got {weight}")
        self.neighbours = sp.csr_matrix(neighbours, dtype=np.float32)
        self.neighbours.sort_indices()  # `partner` searches rows
        self.weight = weight
        self.reranker = reranker

    def save(self, directory: Path) -> Path:
        """Write `basket.npz` (and `basket_rerank.npz` with a re-ranker) into a model directory."""
        nb = self.neighbours
        path = Path(directory) / BASKET_FILE
        np.savez(
            path,
            data=nb.data,
            indices=nb.indices,
            indptr=nb.indptr,
            shape=np.array(nb.shape),
            weight=self.weight,
        )
        (Path(directory) / RERANK_FILE).unlink(missing_ok=True)
        if self.reranker is not None:
            self.reranker.save(directory)
        return path

    @classmethod
    def load(cls, directory: Path) -> BasketCompleter | None:
        """The co-occurrence (and re-ranker) saved in a model directory; None when it has none."""
        path = Path(directory) / BASKET_FILE
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as z:
            matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
            weight = float(z["weight"])
        return cls(matrix, weight, BasketReranker.load(directory, matrix.shape[0]))

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
        nb = self.neighbours
        basket = np.asarray(basket, dtype=np.int64)
        starts, ends = nb.indptr[basket], nb.indptr[basket + 1]
        if not len(basket) or not (ends > starts).any():
            return np.zeros(self.n_items, dtype=np.float32)
        pos = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        out = np.bincount(nb.indices[pos], weights=nb.data[pos], minlength=self.n_items)
        return out.astype(np.float32)

    def candidate_cooccurrence(
        self, basket: np.ndarray, items: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each of `items`: summed and strongest co-occurrence with the basket, and how many
        basket items count it among their partners."""
        nb = self.neighbours
        basket, items = np.asarray(basket, dtype=np.int64), np.asarray(items, dtype=np.int64)
        total, best, hits = (np.zeros(len(items)) for _ in range(3))
        starts, ends = nb.indptr[basket], nb.indptr[basket + 1]
        if not len(basket) or not len(items) or not (ends > starts).any():
            return total, best, hits
        pos = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
        order = np.argsort(items)
        ranked = items[order]
        at = np.minimum(np.searchsorted(ranked, nb.indices[pos]), len(items) - 1)
        found = ranked[at] == nb.indices[pos]
        which, vals = order[at[found]], nb.data[pos][found].astype(np.float64)
        total += np.bincount(which, weights=vals, minlength=len(items))
        hits += np.bincount(which, minlength=len(items))
        np.maximum.at(best, which, vals)
        return total, best, hits

    def partner(self, basket: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each item, the basket item it goes with most and that co-occurrence (0: none)."""
        basket, items = np.asarray(basket, dtype=np.int64), np.asarray(items, dtype=np.int64)
        if not len(basket) or not len(items):
            return np.full(len(items), -1, dtype=np.int64), np.zeros(len(items), dtype=np.float32)
        nb = self.neighbours
        sims = np.zeros((len(basket), len(items)), dtype=np.float32)
        for r, b in enumerate(basket.tolist()):
            cols, vals = nb.indices[nb.indptr[b] : nb.indptr[b + 1]], nb.data[nb.indptr[b] : nb.indptr[b + 1]]
            if len(cols):
                pos = np.minimum(np.searchsorted(cols, items), len(cols) - 1)
                sims[r] = np.where(cols[pos] == items, vals[pos], 0.0)
        best = sims.argmax(axis=0)
        return basket[best], sims[best, np.arange(len(items))]


def unit_scale(scores: np.ndarray) -> np.ndarray:
    """Finite scores mapped to [0, 1] (min -> 0, max -> 1; a constant row -> 0); -inf stays -inf."""
    scores = np.asarray(scores, dtype=np.float32)
    lo, hi = scores.min(), scores.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):  # the slow path only for rows that hold -inf
        finite = np.isfinite(scores)
        if not finite.any():
            return scores.copy()
        lo, hi = scores[finite].min(), scores[finite].max()
    if hi <= lo:
        out = np.zeros_like(scores)
    else:
        out = scores - lo
        out *= np.float32(1.0 / (hi - lo))
    out[scores == -np.inf] = -np.inf
    return out


def blend(cooccurrence: np.ndarray, personal: np.ndarray, weight: float) -> np.ndarray:
    """weight * co-occurrence + (1 - weight) * the customer's scores, each scaled to [0, 1]; a basket
    without any known partner leaves the customer's order unchanged."""
    out = unit_scale(personal)
    if weight and np.any(cooccurrence > 0):
        out *= np.float32(1.0 - weight)
        top = cooccurrence.max()  # co-occurrence is >= 0 and 0 for most items: scale by the max
        out += cooccurrence * np.float32(weight / top)
    return out
