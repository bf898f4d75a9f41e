"""Buy again: personal purchase frequency with recency decay and purchase-cycle awareness.

For each (customer, product) the model keeps the number of distinct baskets with the product, the
first and last purchase and a recency-weighted count. The score of a bought product is

    1 + wcount * (1 + cycle_weight * due)

where wcount = sum over baskets of 0.5 ** (age / half_life_days) and, for products bought at least
`min_cycle` times, due = exp(-0.5 * (ln(r) / cycle_width) ** 2) with r = (days since last purchase +
horizon_days / 2) / typical inter-purchase interval: due rises to 1 as the time since the last
purchase reaches the customer's own cycle for that product (milk weekly, coffee monthly) and falls
again after it. Products never bought score below every bought product, ordered by popularity, so a
list is always full.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.models.base import Recommender, csr_from, csr_state


class BuyAgain(Recommender):
    name = "buy_again"
    fits_out_of_core = True

    def __init__(
        self,
        half_life_days: float = 90.0,
        cycle_weight: float = 0.5,
        cycle_width: float = 1.0,
        horizon_days: float = 14.0,
        min_cycle: int = 4,
    ):
        self.half_life_days = half_life_days
        self.cycle_weight = cycle_weight
        self.cycle_width = cycle_width
        self.horizon_days = horizon_days
        self.min_cycle = min_cycle

    def _seen(self, dataset: Dataset) -> sp.csr_matrix:
        # the bought pairs are the pattern of the basket statistics: one aggregate, not two
        stats = dataset.basket_stats(self.half_life_days)  # aggregated where the lines are (DuckDB)
        self.now_ = np.array([stats.now])
        stats.first[:] -= 1.0  # in place: a national program's pairs are not copied
        stats.last[:] -= 1.0
        self._share_pattern(stats.matrix_pattern, stats.first, stats.last, stats.wcount)
        n = self.n_
        return sp.csr_matrix((np.ones(n.nnz, dtype=np.float32), n.indices, n.indptr), shape=n.shape)

    def _fit(self, dataset: Dataset) -> None:
        pass  # everything is in `_seen`

    def _share_pattern(self, n: sp.csr_matrix, first, last, wcount) -> None:
        """n_ holds the baskets; first_/last_ (days relative to now, minus 1: strictly negative, so
        kept as entries) and wcount_ are matrices over the SAME index arrays, so `.data` arrays align
        and a national program's pairs are indexed once (float32 halves them again)."""
        indptr = n.indptr.astype(np.int32) if n.nnz < 2**31 else n.indptr
        self.n_ = sp.csr_matrix((n.data.astype(np.float32, copy=False), n.indices, indptr), shape=n.shape)

        def like(values: np.ndarray) -> sp.csr_matrix:
            return sp.csr_matrix(
                (np.asarray(values, dtype=np.float32), self.n_.indices, self.n_.indptr), shape=n.shape
            )

        self.first_, self.last_, self.wcount_ = like(first), like(last), like(wcount)

    # ---- features shared with the grocery ranker -------------------------------------------
    def pair_features(self, rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
        """Purchase-history features for (user, item) pairs; zeros/NaN where never bought."""
        n = np.asarray(self.n_[rows, cols]).ravel()
        first = np.asarray(self.first_[rows, cols]).ravel() + 1.0
        last = np.asarray(self.last_[rows, cols]).ravel() + 1.0
        wcount = np.asarray(self.wcount_[rows, cols]).ravel()
        return self._features(n, first, last, wcount)

    def _features(self, n, first, last, wcount) -> dict[str, np.ndarray]:
        """first/last are days relative to the model's `now` (<= 0)."""
        bought = n > 0
        since = np.where(bought, -last, np.nan)
        interval = np.where(n >= 2, (last - first) / np.maximum(n - 1, 1), np.nan)
        ratio = (since + self.horizon_days / 2.0) / np.maximum(interval, 0.5)
        due = np.where(
            n >= self.min_cycle,
            np.exp(-0.5 * (np.log(np.maximum(ratio, 1e-6)) / self.cycle_width) ** 2),
            0.0,
        )
        due = np.nan_to_num(due)
        return {"n": n, "wcount": wcount, "since": since, "interval": interval, "ratio": ratio, "due": due}

    def _history_scores(self, n, wcount, due) -> np.ndarray:
        return np.where(n > 0, 1.0 + wcount * (1.0 + self.cycle_weight * due), 0.0)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        pop = self.item_popularity_ / (self.item_popularity_.max() + 1.0)
        out = np.tile(pop.astype(np.float32), (len(user_idx), 1))
        sub = self.n_[user_idx]
        rows = np.repeat(np.arange(len(user_idx)), np.diff(sub.indptr))
        f = self._features(
            sub.data,
            self.first_[user_idx].data + 1.0,
            self.last_[user_idx].data + 1.0,
            self.wcount_[user_idx].data,
        )
        out[rows, sub.indices] = self._history_scores(f["n"], f["wcount"], f["due"])
        return out

    def _get_state(self) -> dict[str, np.ndarray]:
        return {
            "now": self.now_,
            **csr_state("baskets", self.n_),
            "first": self.first_.data,
            "last": self.last_.data,
            "wcount": self.wcount_.data,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.now_ = state["now"]
        n = csr_from("baskets", state)
        for key in ("first", "last", "wcount"):
            if len(state[key]) != n.nnz:
                raise ValueError(f"{key} has {len(state[key])} values for {n.nnz} pairs")
        self._share_pattern(n, state["first"], state["last"], state["wcount"])
