"""Grocery ranker: candidates from buy-again, ALS, item-kNN and popularity, re-ranked by two learned
second-stage models (gradient-boosted trees) that estimate P(bought in the next `label_days`).

Why two: repeat candidates (products the customer bought before) and discovery candidates (never
bought) behave differently - a re-buy is driven by frequency, recency and the purchase cycle, a
discovery by collaborative scores, popularity and the customer's categories. Each stage-two model is
trained on its own candidates; both output a probability of the same event, so the merged list is
ranked on one scale. The "new products" track only sees the discovery model.

Training (inside `fit`): `label_windows` stacked label windows of `label_days` each, the newest
ending at the end of the training data and each older one `window_stride_days` earlier. For every
window the sub-models and side features are fitted on everything before the window starts, features
are computed for every candidate and labelled with the window's purchases; the rows of all windows
train the two classifiers (more, and more varied, training data than one window: on Complete Journey
three windows lift NDCG@10 on both tracks). Then the sub-models are refitted on all the training data
for scoring.

With a promotion calendar in the data (`Dataset.promotions`) and `use_promotions` on, the re-buy
model also sees how many weeks of the horizon the product is in the mailer / on display at the
customer's main store, and the same for the span before. The calendar is planned ahead, so using the
weeks being recommended for is no leak. On Complete Journey it lifts NDCG@10 (all purchases) from
0.4146 to about 0.421; the discovery model skips these features (given them, NDCG@10 new fell
0.0525 -> 0.0515).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
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
#: promotion calendar (when the data has one): weeks on mailer / display at the customer's main store
PROMO_FEATURES = (
    "promo_mailer_weeks",
    "promo_display_weeks",
    "promo_mailer_weeks_before",
    "promo_display_weeks_before",
)
#: extras the discovery model does not use (comma-separated feature names)
DISCOVERY_SKIP = ",".join(PROMO_FEATURES)
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
        label_windows: int = 3,
        window_stride_days: float = 28.0,
        discovery_skip: str = DISCOVERY_SKIP,
        use_promotions: bool = True,
        l2_regularization: float = 1.0,
        min_samples_leaf: int = 200,
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
        self.label_windows = label_windows
        self.window_stride_days = window_stride_days
        self.discovery_skip = discovery_skip
        self.use_promotions = use_promotions
        self.l2_regularization = l2_regularization
        self.min_samples_leaf = min_samples_leaf

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURES + PROMO_FEATURES if self._promo_on() else FEATURES

    def _promo_on(self) -> bool:
        return bool(np.any(getattr(self, "promo_", False)))

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
        if self._promo_on():
            self._fit_promotions(dataset)

    def _fit_promotions(self, dataset: Dataset) -> None:
        """Each customer's main store (most visits) and, per store, the weeks each product is in the
        mailer / on display in the `label_days` after the data ends (the horizon recommended for) and
        in the same span before. Weeks are packed as mailer + 8 x display (at most 5 weeks each)."""
        inter, promo = dataset.interactions, dataset.promotions
        stores = promo["store_id"].cat.categories
        visits = inter.drop_duplicates(["user_idx", "basket_id"]).dropna(subset=["store_id"])
        counts = visits.groupby(["user_idx", "store_id"], observed=True).size().reset_index(name="n")
        main = counts.sort_values("n", ascending=False, kind="stable").drop_duplicates("user_idx")
        self.user_store_ = np.full(dataset.n_users, -1, dtype=np.int64)
        self.user_store_[main["user_idx"].to_numpy()] = stores.get_indexer(main["store_id"].astype(str))
        now = inter["timestamp"].max() if len(inter) else pd.Timestamp(0)
        span = pd.Timedelta(days=float(self.label_days))

        def weeks(lo: pd.Timestamp, hi: pd.Timestamp) -> sp.csr_matrix:
            w = promo[(promo["week_start"] >= lo) & (promo["week_start"] < hi)]
            packed = w["mailer"].to_numpy(np.float64) + 8.0 * w["display"].to_numpy(np.float64)
            rows, cols = w["store_id"].cat.codes.to_numpy(), w["item_idx"].to_numpy()
            m = sp.csr_matrix((packed, (rows, cols)), shape=(len(stores), dataset.n_items))
            m.sum_duplicates()
            return m

        self.promo_next_ = weeks(now, now + span)
        self.promo_before_ = weeks(now - span, now)

    def _promo_columns(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        store = self.user_store_[users]
        known = store >= 0
        cols = {}
        for suffix, table in (("", self.promo_next_), ("_before", self.promo_before_)):
            packed = np.zeros(len(users))
            packed[known] = np.asarray(table[store[known], items[known]]).ravel()
            cols[f"promo_mailer_weeks{suffix}"] = packed % 8
            cols[f"promo_display_weeks{suffix}"] = packed // 8
        return cols

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
        if self._promo_on():
            cols.update(self._promo_columns(users, items))
        X = np.column_stack([np.asarray(cols[name], dtype=np.float64) for name in self.feature_names])
        return np.nan_to_num(X, nan=-1.0)  # 'never' (no interval, no buyer) as -1: trees split on it

    def candidate_rows(self, user_idx: np.ndarray, batch_size: int = 128):
        """Yields (batch, rows into batch, items, seen flag, feature matrix) per batch of users: the one
        path from users to stage-two rows, for training, scoring and the ablation benchmark."""
        for lo in range(0, len(user_idx), batch_size):
            batch = user_idx[lo : lo + batch_size]
            rows, items, seen, als, knn = self._candidates(batch)
            yield batch, rows, items, seen, self._features(batch, rows, items, als, knn)

    # ---- fit ------------------------------------------------------------------------------
    def stage_two_rows(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(X, y, seen, group) over the stacked label windows: the rows the two stage-two models learn
        from."""
        inter = dataset.interactions
        latest = inter["timestamp"].max()
        self.promo_ = np.array([self.use_promotions and dataset.promotions is not None])
        full_seen = getattr(self, "seen_", None)
        X_parts, y_parts, s_parts, g_parts = [], [], [], []
        for w in range(max(int(self.label_windows), 1)):
            # label window w ends `w * stride` before the end of the training data; features and
            # sub-models only see what happened before it starts
            end = latest - pd.Timedelta(days=float(self.window_stride_days) * w)
            cutoff = end - pd.Timedelta(days=float(self.label_days))
            ts = inter["timestamp"]
            past = dataset.with_interactions(inter[ts < cutoff])
            in_window = (ts >= cutoff) & ((ts < end) if w > 0 else True)
            truth = dataset.with_interactions(inter[in_window]).user_item_matrix("binary")
            if len(past.interactions) == 0:
                continue
            self._fit_side(past)
            self.seen_ = past.user_item_matrix("binary")
            users = np.flatnonzero((np.diff(truth.indptr) > 0) & (np.diff(self.seen_.indptr) > 0))
            rng = np.random.default_rng(self.random_state + w)
            if len(users) > self.max_train_users:
                users = np.sort(rng.choice(users, self.max_train_users, replace=False))
            for batch, rows, items, seen, X in self.candidate_rows(users):
                X_parts.append(X)
                y_parts.append(np.asarray(truth[batch[rows], items]).ravel() > 0)
                s_parts.append(seen)
                g_parts.append(batch[rows] + w * dataset.n_users)  # (window, user) group of the row
        self.seen_ = full_seen
        X = np.concatenate(X_parts) if X_parts else np.zeros((0, len(self.feature_names)))
        y = np.concatenate(y_parts) if y_parts else np.zeros(0, dtype=bool)
        s = np.concatenate(s_parts) if s_parts else np.zeros(0, dtype=bool)
        g = np.concatenate(g_parts) if g_parts else np.zeros(0, dtype=np.int64)
        return X, y, s, g

    def _fit(self, dataset: Dataset) -> None:
        X, y, s, g = self.stage_two_rows(dataset)
        self.fit_stage_two(X, y, s, g)
        self._fit_side(dataset)

    def fit_stage_two(self, X: np.ndarray, y: np.ndarray, seen: np.ndarray, group: np.ndarray) -> None:
        """The re-buy and discovery classifiers from stage-two rows (`stage_two_rows`)."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.trees_ = {}
        for part, mask in (("repeat", seen), ("discovery", ~seen)):
            cols = self._part_columns(part)
            n_pos = int(y[mask].sum())
            if n_pos < 5 or mask.sum() - n_pos < 5:
                self.trees_[part] = None  # too little signal: fall back to the sub-model order
                continue
            clf = HistGradientBoostingClassifier(
                max_iter=self.max_iter,
                learning_rate=self.learning_rate,
                max_leaf_nodes=self.max_leaf_nodes,
                l2_regularization=self.l2_regularization,
                min_samples_leaf=self.min_samples_leaf,
                early_stopping=bool(n_pos >= 100 and mask.sum() >= 10_000),
                random_state=self.random_state,
            )
            with threadpool_limits(1, "openmp"):  # OpenMP spin-waits badly on a shared 2-core box
                clf.fit(X[mask][:, cols], y[mask])
            self.trees_[part] = {**export_trees(clf), "columns": cols}
        self.train_rows_ = np.array([len(y), int(y.sum()), int(seen.sum())])

    def _part_columns(self, part: str) -> np.ndarray:
        """Feature columns of a stage-two model (the discovery model skips `discovery_skip`)."""
        names = self.feature_names
        skip = set(self.discovery_skip.split(",")) if part == "discovery" and self.discovery_skip else set()
        return np.array([j for j, name in enumerate(names) if name not in skip], dtype=np.int64)

    # ---- scoring ----------------------------------------------------------------------------
    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(user_idx), len(self.items_)), dtype=np.float32)
        base = self.subs_["pop"].fallback_scores()
        base = (base / (base.max() + 1.0) - 2.0).astype(np.float32)  # below every candidate
        lo = 0
        for batch, rows, items, seen, X in self.candidate_rows(user_idx):
            p = self.stage_two_proba(X, seen)
            block = np.broadcast_to(base, (len(batch), len(base))).copy()
            block[rows, items] = p
            out[lo : lo + len(batch)] = block
            lo += len(batch)
        return out

    def stage_two_proba(self, X: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """P(bought in the horizon) of candidate rows: re-buy rows by the re-buy model, the others by
        the discovery model (without a model, the first-stage order mapped below every probability)."""
        p = np.empty(len(X))
        for part, mask in (("repeat", seen), ("discovery", ~seen)):
            trees = self.trees_.get(part)
            if trees is None:
                first = (
                    X[mask, FEATURES.index("wcount")] if part == "repeat" else X[mask, FEATURES.index("als")]
                )
                p[mask] = -1.0 + 1.0 / (1.0 + np.exp(-first))
            else:
                cols = trees.get("columns")
                p[mask] = predict_proba(trees, X[mask] if cols is None else X[mask][:, cols])
        return p

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
            "promo_",
        ):
            state[f"self__{name}"] = getattr(self, name)
        if self._promo_on():
            state["self__user_store_"] = self.user_store_
            state.update(_csr_state("self__promo_next", self.promo_next_))
            state.update(_csr_state("self__promo_before", self.promo_before_))
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
        if bool(np.any(own.get("promo_", False))):
            self.promo_next_ = _csr_from("promo_next", own)
            self.promo_before_ = _csr_from("promo_before", own)
        for name, value in own.items():
            if name.endswith("_"):
                setattr(self, name, value)
        self.trees_ = {part: groups.get(f"trees_{part}") for part in ("repeat", "discovery")}


def _ranks_in_rows(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each row of length c, concatenated (position of each CSR entry within its row)."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts
