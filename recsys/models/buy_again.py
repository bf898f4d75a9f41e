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
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.models.base import Recommender

DAY_NS = 86400e9


def _days(ts: pd.Series | np.ndarray) -> np.ndarray:
    return np.asarray(ts, dtype="datetime64[ns]").astype(np.int64) / DAY_NS


def purchase_stats(dataset: Dataset) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(stats, baskets): stats has one row per (user_idx, item_idx) sorted, with n (distinct baskets),
    first and last purchase (days since epoch); baskets has one row per (user, item, basket) with t."""
    inter = dataset.interactions
    baskets = inter.drop_duplicates(["user_idx", "item_idx", "basket_id"])[
        ["user_idx", "item_idx", "timestamp"]
    ]
    t = _days(baskets["timestamp"])
    frame = pd.DataFrame(
        {"user_idx": baskets["user_idx"].to_numpy(), "item_idx": baskets["item_idx"].to_numpy(), "t": t}
    )
    g = frame.groupby(["user_idx", "item_idx"], sort=True)["t"]
    stats = g.agg(n="size", first="min", last="max").reset_index()
    return stats, frame


class BuyAgain(Recommender):
    name = "buy_again"

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

    def _fit(self, dataset: Dataset) -> None:
        stats, frame = purchase_stats(dataset)
        self.now_ = np.array([frame["t"].max() if len(frame) else 0.0])
        age = self.now_[0] - frame["t"].to_numpy()
        frame = frame.assign(w=np.exp(-np.log(2.0) * np.clip(age, 0, None) / self.half_life_days))
        wcount = frame.groupby(["user_idx", "item_idx"], sort=True)["w"].sum().to_numpy()
        shape = (dataset.n_users, dataset.n_items)
        rows, cols = stats["user_idx"].to_numpy(), stats["item_idx"].to_numpy()

        def mat(values: np.ndarray) -> sp.csr_matrix:
            return sp.csr_matrix((np.asarray(values, dtype=np.float64), (rows, cols)), shape=shape)

        # All matrices share one sparsity pattern (rows, cols sorted), so .data arrays align.
        self.n_ = mat(stats["n"].to_numpy())
        self.first_ = mat(stats["first"].to_numpy() - self.now_[0] - 1.0)  # strictly negative, kept
        self.last_ = mat(stats["last"].to_numpy() - self.now_[0] - 1.0)
        self.wcount_ = mat(wcount)

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
        coo = self.n_.tocoo()
        return {
            "now": self.now_,
            "rows": coo.row,
            "cols": coo.col,
            "n": coo.data,
            "first": self.first_.tocoo().data,
            "last": self.last_.tocoo().data,
            "wcount": self.wcount_.tocoo().data,
        }

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        shape = (len(self.users_), len(self.items_))
        rows, cols = state["rows"], state["cols"]
        self.now_ = state["now"]
        for key in ("n", "first", "last", "wcount"):
            setattr(self, f"{key}_", sp.csr_matrix((state[key], (rows, cols)), shape=shape))
