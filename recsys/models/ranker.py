"""Grocery ranker: candidates from buy-again, ALS, item-kNN and popularity, re-ranked by two learned
second-stage models (gradient-boosted trees) that estimate P(bought in the next `label_days`).

Why two: repeat candidates (products the customer bought before) and discovery candidates (never
bought) behave differently - a re-buy is driven by frequency, recency and the purchase cycle, a
discovery by collaborative scores, popularity and the customer's categories. Each stage-two model is
trained on its own candidates; both output a probability of the same event, so the merged list is
ranked on one scale. The "new products" track only sees the discovery model.

Training (inside `fit`): the last `label_days` of the training data become labels, the sub-models
are fitted on everything before, features are computed for every candidate, the two classifiers are
trained, and then the sub-models are refitted on all the training data for scoring.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from recsys.data.dataset import Dataset
from recsys.models.base import Recommender
from recsys.models.buy_again import BuyAgain
from recsys.models.gbdt import export_trees, predict_proba
from recsys.models.implicit_models import ALS, ItemKNN, _csr_from, _csr_state
from recsys.models.popularity import Popularity, item_category_codes
from recsys.ranking.topk import top_k

FEATURES = (
    "n",
    "wcount",
    "since",
    "interval",
    "ratio",
    "due",
    "basket_share",
    "n_recent",
    "n_last_week",
    "als",
    "als_rel",
    "knn",
    "knn_rel",
    "log_pop",
    "recent_pop",
    "item_repeat_rate",
    "cat_share",
    "user_baskets",
    "user_items",
    "user_since_visit",
    "user_repeat_share",
)
SUBMODELS = ("buy_again", "als", "knn", "pop")


class GroceryRanker(Recommender):
    name = "grocery_ranker"

    def __init__(
        self,
        label_days: float = 28.0,
        n_discovery: int = 100,
        n_popular: int = 30,
        als_factors: int = 64,
        knn_neighbours: int = 100,
        max_iter: int = 200,
        learning_rate: float = 0.08,
        max_leaf_nodes: int = 31,
        max_train_users: int = 5000,
        random_state: int = 0,
    ):
        self.label_days = label_days
        self.n_discovery = n_discovery
        self.n_popular = n_popular
        self.als_factors = als_factors
        self.knn_neighbours = knn_neighbours
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.max_train_users = max_train_users
        self.random_state = random_state

    # ---- sub-models and side features --------------------------------------------------------
    def _submodels(self) -> dict[str, Recommender]:
        return {
            "buy_again": BuyAgain(),
            "als": ALS(factors=self.als_factors, random_state=self.random_state),
            "knn": ItemKNN(similarity="bm25", K=self.knn_neighbours),
            "pop": Popularity(window_days=self.label_days),
        }

    def _fit_side(self, dataset: Dataset) -> None:
        """Sub-models plus per-user / per-item feature arrays, all from `dataset` only."""
        self.subs_ = {k: m.fit(dataset) for k, m in self._submodels().items()}
        inter = dataset.interactions
        n_users = dataset.n_users
        ba = self.subs_["buy_again"]
        user_baskets = (
            inter.drop_duplicates(["user_idx", "basket_id"])["user_idx"]
            .value_counts()
            .reindex(range(n_users))
        )
        self.user_baskets_ = user_baskets.fillna(0).to_numpy(np.float64)
        self.user_items_ = np.diff(ba.n_.indptr).astype(np.float64)
        last = np.full(n_users, np.nan)
        if len(inter):
            t = inter.groupby("user_idx")["timestamp"].max()
            now = inter["timestamp"].max()
            last[t.index.to_numpy()] = (now - t).dt.total_seconds().to_numpy() / 86400.0
        self.user_since_visit_ = last
        repeated = ba.n_.copy()
        repeated.data = (repeated.data >= 2).astype(np.float64)
        self.user_repeat_share_ = np.divide(
            np.asarray(repeated.sum(axis=1)).ravel(),
            self.user_items_,
            out=np.zeros(n_users),
            where=self.user_items_ > 0,
        )
        buyers = np.diff(ba.n_.tocsc().indptr).astype(np.float64)
        self.item_repeat_rate_ = np.divide(
            np.asarray(repeated.sum(axis=0)).ravel(),
            buyers,
            out=np.full(len(buyers), np.nan),
            where=buyers > 0,
        )
        self.log_pop_ = np.log1p(buyers)
        recent = self.subs_["pop"].fallback_scores()
        self.popular_pool_ = np.argsort(-recent, kind="stable")[: self.n_popular * 20].astype(np.int64)
        now = inter["timestamp"].max() if len(inter) else pd.Timestamp(0)
        recent = inter["timestamp"] >= now - pd.Timedelta(days=float(self.label_days))
        self.recent_ = dataset.with_interactions(inter[recent]).user_item_matrix("count")
        week = inter["timestamp"] >= now - pd.Timedelta(days=7)
        self.last_week_ = dataset.with_interactions(inter[week]).user_item_matrix("count")
        codes = item_category_codes(dataset)
        self.item_cat_ = codes
        cat_pop = Popularity(by="category").fit(dataset)
        self.user_cat_share_ = cat_pop.user_cat_share_

    # ---- candidates and features ------------------------------------------------------------
    def _candidates(self, user_idx: np.ndarray):
        """rows (into user_idx), items, seen flag, and the dense ALS / kNN scores of the batch."""
        subs = self.subs_
        seen_rows = self.seen_[user_idx]
        seen = seen_rows.toarray() > 0
        als = subs["als"].score(user_idx)
        knn = subs["knn"].score(user_idx)
        # repeat candidates: every product the customer bought (the trees decide the order)
        counts = np.diff(seen_rows.indptr)
        width = int(counts.max()) if len(counts) else 0
        repeat = np.full((len(user_idx), max(width, 1)), -1, dtype=np.int64)
        repeat[np.repeat(np.arange(len(user_idx)), counts), _ranks_in_rows(counts)] = seen_rows.indices
        parts = [repeat]
        if self.n_discovery > 0:
            parts += [top_k(als, self.n_discovery, ~seen)[0], top_k(knn, self.n_discovery, ~seen)[0]]
        if self.n_popular > 0:  # the globally popular products the customer has not bought yet
            pool = self.popular_pool_
            unseen = ~seen[:, pool]
            take = unseen & (np.cumsum(unseen, axis=1) <= self.n_popular)
            parts.append(np.where(take, pool[None, :], -1))
        cand = np.sort(np.concatenate(parts, axis=1), axis=1)
        keep = cand >= 0
        keep[:, 1:] &= cand[:, 1:] != cand[:, :-1]
        rows, pos = np.nonzero(keep)
        items = cand[rows, pos]
        return rows, items, seen[rows, items], als, knn

    def _features(self, user_idx: np.ndarray, rows: np.ndarray, items: np.ndarray, als, knn) -> np.ndarray:
        users = user_idx[rows]
        f = self.subs_["buy_again"].pair_features(users, items)

        def relative(scores: np.ndarray) -> np.ndarray:
            # the candidate's score relative to the user's best score (scale-free across users)
            top = np.max(scores, axis=1)
            top = np.where(top > 0, top, 1.0)
            return scores[rows, items] / top[rows]

        cols = {
            **f,
            "basket_share": f["n"] / np.maximum(self.user_baskets_[users], 1.0),
            "n_recent": np.asarray(self.recent_[users, items]).ravel(),
            "n_last_week": np.asarray(self.last_week_[users, items]).ravel(),
            "als": als[rows, items],
            "als_rel": relative(als),
            "knn": knn[rows, items],
            "knn_rel": relative(knn),
            "log_pop": self.log_pop_[items],
            "recent_pop": self.subs_["pop"].pop_[items],
            "item_repeat_rate": self.item_repeat_rate_[items],
            "cat_share": self.user_cat_share_[users, self.item_cat_[items]],
            "user_baskets": self.user_baskets_[users],
            "user_items": self.user_items_[users],
            "user_since_visit": self.user_since_visit_[users],
            "user_repeat_share": self.user_repeat_share_[users],
        }
        X = np.column_stack([np.asarray(cols[name], dtype=np.float64) for name in FEATURES])
        return np.nan_to_num(X, nan=-1.0)  # 'never' (no interval, no buyer) as -1: trees split on it

    # ---- fit ------------------------------------------------------------------------------
    def _fit(self, dataset: Dataset) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        inter = dataset.interactions
        cutoff = inter["timestamp"].max() - pd.Timedelta(days=float(self.label_days))
        past = dataset.with_interactions(inter[inter["timestamp"] < cutoff])
        future = dataset.with_interactions(inter[inter["timestamp"] >= cutoff])
        truth = future.user_item_matrix("binary")
        self._fit_side(past)
        self.seen_, full_seen = past.user_item_matrix("binary"), self.seen_
        users = np.flatnonzero((np.diff(truth.indptr) > 0) & (np.diff(self.seen_.indptr) > 0))
        rng = np.random.default_rng(self.random_state)
        if len(users) > self.max_train_users:
            users = np.sort(rng.choice(users, self.max_train_users, replace=False))
        X_parts, y_parts, s_parts = [], [], []
        for lo in range(0, len(users), 128):
            batch = users[lo : lo + 128]
            rows, items, seen, als, knn = self._candidates(batch)
            X_parts.append(self._features(batch, rows, items, als, knn))
            y_parts.append(np.asarray(truth[batch[rows], items]).ravel() > 0)
            s_parts.append(seen)
        self.seen_ = full_seen
        X = np.concatenate(X_parts) if X_parts else np.zeros((0, len(FEATURES)))
        y = np.concatenate(y_parts) if y_parts else np.zeros(0, dtype=bool)
        s = np.concatenate(s_parts) if s_parts else np.zeros(0, dtype=bool)
        self.trees_ = {}
        for part, mask in (("repeat", s), ("discovery", ~s)):
            n_pos = int(y[mask].sum())
            if n_pos < 5 or mask.sum() - n_pos < 5:
                self.trees_[part] = None  # too little signal: fall back to the sub-model order
                continue
            clf = HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                early_stopping=bool(n_pos >= 100 and mask.sum() >= 10_000),
                random_state=self.random_state,
            )
            with threadpool_limits(1, "openmp"):  # OpenMP spin-waits badly on a shared 2-core box
                clf.fit(X[mask], y[mask])
            self.trees_[part] = export_trees(clf)
        self.train_rows_ = np.array([len(y), int(y.sum()), int(s.sum())])
        self._fit_side(dataset)

    # ---- scoring ----------------------------------------------------------------------------
    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(user_idx), len(self.items_)), dtype=np.float32)
        base = self.subs_["pop"].fallback_scores()
        base = (base / (base.max() + 1.0) - 2.0).astype(np.float32)  # below every candidate
        for lo in range(0, len(user_idx), 128):
            batch = user_idx[lo : lo + 128]
            rows, items, seen, als, knn = self._candidates(batch)
            X = self._features(batch, rows, items, als, knn)
            p = np.empty(len(rows))
            for part, mask in (("repeat", seen), ("discovery", ~seen)):
                trees = self.trees_.get(part)
                if trees is None:  # no stage-two model: keep the first-stage order, on [-1, 0)
                    first = (
                        X[mask, FEATURES.index("wcount")]
                        if part == "repeat"
                        else X[mask, FEATURES.index("als")]
                    )
                    p[mask] = -1.0 + 1.0 / (1.0 + np.exp(-first))
                else:
                    p[mask] = predict_proba(trees, X[mask])
            block = np.broadcast_to(base, (len(batch), len(base))).copy()
            block[rows, items] = p
            out[lo : lo + 128] = block
        return out

    def fallback_scores(self) -> np.ndarray:
        return self.subs_["pop"].fallback_scores()

    # ---- persistence --------------------------------------------------------------------------
    def _get_state(self) -> dict[str, np.ndarray]:
        state: dict[str, np.ndarray] = {}
        for key, sub in self.subs_.items():
            state.update({f"{key}__{k}": v for k, v in sub._get_state().items()})
        for name in (
            "user_baskets_",
            "user_items_",
            "user_since_visit_",
            "user_repeat_share_",
            "item_repeat_rate_",
            "log_pop_",
            "popular_pool_",
            "item_cat_",
            "user_cat_share_",
            "train_rows_",
        ):
            state[f"self__{name}"] = getattr(self, name)
        state.update(_csr_state("self__recent", self.recent_))
        state.update(_csr_state("self__last_week", self.last_week_))
        for part, trees in self.trees_.items():
            if trees is not None:
                state.update({f"trees_{part}__{k}": v for k, v in trees.items() if not k.startswith("_")})
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        groups: dict[str, dict[str, np.ndarray]] = {}
        for key, value in state.items():
            group, _, name = key.partition("__")
            groups.setdefault(group, {})[name] = value
        self.subs_ = {}
        for key, sub in self._submodels().items():
            sub.users_, sub.items_ = self.users_, self.items_
            sub.seen_, sub.item_popularity_ = self.seen_, self.item_popularity_
            sub._set_state(groups.get(key, {}))
            self.subs_[key] = sub
        own = groups["self"]
        self.recent_ = _csr_from("recent", own)
        self.last_week_ = _csr_from("last_week", own)
        for name, value in own.items():
            if name.endswith("_"):
                setattr(self, name, value)
        self.trees_ = {part: groups.get(f"trees_{part}") for part in ("repeat", "discovery")}


def _ranks_in_rows(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each row of length c, concatenated (position of each CSR entry within its row)."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts
