"""Grocery ranker: candidates from buy-again, ALS, item-kNN and popularity, re-ranked by two learned
second-stage models (gradient-boosted trees) that estimate P(bought in the next `label_days`).

Contract. `fit` ends by scoring every customer with history: the stage-two probability of each of
their candidates is kept in `candidate_scores_` (users x items float32 CSR, explicit entries = the
candidates) and every other product gets `base_scores()` (recent popularity mapped into [-2, -1),
strictly below every candidate). `score`, `recommend` and serving read these precomputed scores, so
what is served is exactly what the evaluation measured, and a request costs a sparse row lookup
instead of a model pass. The saved model holds these scores, the trees and the fallback list, not
the sub-models: a customer whose history changed gets new scores from the next fit.

Why two stage-two models: repeat candidates (products the customer bought before) and discovery
candidates (never bought) behave differently - a re-buy is driven by frequency, recency and the
purchase cycle, a discovery by collaborative scores, popularity and the customer's categories. Each
model is trained on its own candidates; both output a probability of the same event, so the merged
list is ranked on one scale. The "new products" track only sees the discovery model. Only the
re-buy model reads the promotion calendar (weeks in the mailer / on display at the customer's main
store, in the horizon and the span before; planned ahead, so no leak): for never-bought products it
is noise.

Candidates come only from products someone bought in the last `recent_days`: most of a grocery
catalog is delisted or seasonal, and a product nobody bought lately is almost never bought next
month, so scoring it costs time without changing a list.

Training (inside `fit`): `label_windows` stacked windows of `label_days`, the newest ending with
the training data and each older one `window_stride_days` earlier. For each window every sub-model
and feature is fitted on the purchases before the window starts (no leak), and the candidates are
labelled with the window's purchases; stacking windows gives the trees more and more varied rows
than one window. Each window's ALS continues the factors of the older window before it (older data
only, so still no leak), which converges in a few iterations instead of a cold start; item-kNN
similarities come from the last `knn_days` of purchases, which tracks the current assortment and
keeps the pairwise count small. Negative rows are subsampled (`negative_rate`; every positive is
kept) and each model's log-odds are shifted back by log(negative_rate), so both stay calibrated
probabilities on one scale. Last, the sub-models are refitted on all the training data and every
customer is scored.

A national program (more than `max_fit_customers`): sub-models, item statistics and trees learn
from an evenly spaced sample of that many customers (what they estimate is about products and
needs a large sample, not every customer), and every customer is then scored from all of their own
history, `score_block_customers` at a time in `score_workers` processes, against the sample's item
side (ALS factors folded in, the sample's BM25 statistics and time reference). Every aggregate is a
`Dataset` one (DuckDB over the lines in memory or in Parquet), so memory follows the sample and a
block, not the number of purchase lines; below the limit the fit is the one described above.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.data.dataset import Dataset, bm25_parameters, bm25_weight
from recsys.models.base import NotFittedError, Recommender, csr_from, csr_state
from recsys.models.buy_again import BuyAgain
from recsys.models.gbdt import export_trees, predict_proba
from recsys.models.implicit_models import ALS, ItemKNN
from recsys.models.popularity import item_category_codes, popularity_scores, user_category_share

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
#: promotion calendar (when the data has one): weeks on mailer / display at the customer's main store;
#: only the re-buy model reads them
PROMO_FEATURES = (
    "promo_mailer_weeks",
    "promo_display_weeks",
    "promo_mailer_weeks_before",
    "promo_display_weeks_before",
)
#: per (customer, product) history columns kept aligned with the purchase pattern
PAIR_COLUMNS = ("n", "first", "last", "wcount", "n_recent", "n_last_week")
PARTS = ("repeat", "discovery")
#: ALS iterations of a history that continues the factors of an older one (a cold start runs
#: `als_iterations`)
ALS_WARM_ITERATIONS = 3


class GroceryRanker(Recommender):
    name = "grocery_ranker"
    fits_out_of_core = True
    memory_lines = 30_000_000
    reads_promotions = True

    def __init__(
        self,
        label_days: float = 28.0,
        label_windows: int = 3,
        window_stride_days: float = 28.0,
        recent_days: float = 84.0,
        n_discovery: int = 100,
        n_popular: int = 30,
        als_factors: int = 64,
        als_iterations: int = 15,
        knn_neighbours: int = 100,
        knn_days: float = 182.0,
        max_train_users: int = 5000,
        max_fit_customers: int = 100_000,
        score_block_customers: int = 25_000,
        score_workers: int = 0,
        negative_rate: float = 0.1,
        max_iter: int = 200,
        learning_rate: float = 0.08,
        max_leaf_nodes: int = 31,
        l2_regularization: float = 1.0,
        min_samples_leaf: int = 50,
        use_promotions: bool = True,
        random_state: int = 0,
    ):
        self.label_days = label_days
        self.label_windows = label_windows
        self.window_stride_days = window_stride_days
        self.recent_days = recent_days
        self.n_discovery = n_discovery
        self.n_popular = n_popular
        self.als_factors = als_factors
        self.als_iterations = als_iterations
        self.knn_neighbours = knn_neighbours
        self.knn_days = knn_days
        self.max_train_users = max_train_users
        self.max_fit_customers = max_fit_customers
        self.score_block_customers = score_block_customers
        self.score_workers = score_workers
        self.negative_rate = negative_rate
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.l2_regularization = l2_regularization
        self.min_samples_leaf = min_samples_leaf
        self.use_promotions = use_promotions
        self.random_state = random_state

    @property
    def feature_names(self) -> tuple[str, ...]:
        return FEATURES + PROMO_FEATURES if self._promo_on() else FEATURES

    def _promo_on(self) -> bool:
        return bool(np.any(getattr(self, "promo_", False)))

    def _part_columns(self, part: str) -> np.ndarray:
        """Feature columns of a stage-two model: the discovery model skips the promotion features."""
        n = len(FEATURES) if part == "discovery" else len(self.feature_names)
        return np.arange(n, dtype=np.int64)

    # ---- fit ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        if not 0.0 < float(self.negative_rate) <= 1.0:
            raise ValueError(f"negative_rate must be in (0, 1], got {self.negative_rate!r}")
        for name in ("label_days", "recent_days", "knn_days"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if int(self.label_windows) < 1:
            raise ValueError(f"label_windows must be >= 1, got {self.label_windows!r}")
        if int(self.score_workers) < 0:
            raise ValueError(f"score_workers must be >= 0 (0: every usable core), got {self.score_workers!r}")
        for name in ("max_fit_customers", "score_block_customers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")

    def _fit(self, dataset: Dataset) -> None:
        self._check_params()
        self.promo_ = np.array([bool(self.use_promotions) and dataset.promotions is not None])
        promotions = self._promotion_span(dataset) if self._promo_on() else None
        with tempfile.TemporaryDirectory(prefix="recsys-ranker-") as tmp:
            sample = self._fit_sample(dataset, Path(tmp) / "sample")
            X, y, seen, newest = self._training_rows(sample, promotions)
            self._fit_trees(X, y, seen)
            del X, y, seen
            self.history_ = _History(self, sample, promotions, previous=newest)
            del newest
            self.base_scores_ = _below_candidates(self.history_.recent_pop)
            self.fallback_ = self.history_.recent_pop.astype(np.float32)
            # precompute what is served: one CSR row per user of the model (empty without history)
            if sample is dataset:
                self.candidate_scores_ = self._scores_of_history(self.history_)
            else:
                items = _ItemSide.of(self.history_)
                self.history_ = None  # the sample's customers: neither needed nor a history of `dataset`
                self.candidate_scores_ = self._scores_in_blocks(dataset, items, promotions, Path(tmp))

    def _fit_sample(self, dataset: Dataset, workdir: Path) -> Dataset:
        """What the sub-models and trees learn from: every customer, or at most `max_fit_customers`
        evenly spaced over the customer index when the program is larger. Collaborative factors,
        item statistics and the trees need a large sample, not every customer of a national
        program; each customer's own features still come from all of their history (`_scores_in_blocks`)."""
        n = dataset.n_users
        if n <= int(self.max_fit_customers):
            return dataset
        idx = np.unique(np.linspace(0, n - 1, int(self.max_fit_customers)).round().astype(np.int64))
        return dataset.subset(idx, workdir)

    def _scores_of_history(self, history: _History) -> sp.csr_matrix:
        """(customers, items) CSR of the stage-two scores of every customer of `history` with a
        purchase (empty rows for the others)."""
        users = np.flatnonzero(np.diff(history.seen.indptr) > 0)
        block = self._candidate_scores(history, users)
        counts = np.zeros(history.seen.shape[0], dtype=np.int64)
        counts[users] = np.diff(block.indptr)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return sp.csr_matrix((block.data, block.indices, indptr), shape=history.seen.shape)

    def _scores_in_blocks(
        self, dataset: Dataset, items: _ItemSide, promotions: pd.DataFrame | None, tmp: Path
    ) -> sp.csr_matrix:
        """Stage-two scores of every customer, `score_block_customers` at a time: each block's own
        purchase history against the item side fitted on the sample (`_ItemSide`), so memory holds
        one block's pairs per worker, not the program's. Blocks run in `score_workers` processes
        (spawned: a worker starts empty and receives the catalog-sized item side and the trees,
        never the parent's customer matrices)."""
        n_users, step = dataset.n_users, int(self.score_block_customers)
        scorer = self._scorer()
        tasks = (
            (
                scorer,
                items,
                dataset.subset(np.arange(lo, min(lo + step, n_users))),
                promotions,
                tmp / f"block-{lo}",
            )
            for lo in range(0, n_users, step)
        )
        workers = min(_usable_cores(int(self.score_workers)), -(-n_users // step))
        data, indices, counts = [], [], []
        if workers <= 1:
            results = map(_score_block, tasks)
            pool = None
        else:
            pool = multiprocessing.get_context("spawn").Pool(workers)
            results = pool.imap(_score_block, tasks)
        try:
            for block_counts, block_data, block_indices in results:
                counts.append(block_counts)
                data.append(block_data)
                indices.append(block_indices)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        indptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))])
        return sp.csr_matrix(
            (np.concatenate(data), np.concatenate(indices), indptr), shape=(n_users, dataset.n_items)
        )

    def _scorer(self) -> GroceryRanker:
        """A copy holding what scoring reads (parameters, trees), not the fitted customer matrices."""
        scorer = GroceryRanker(**self.get_params())
        scorer.trees_, scorer.promo_ = self.trees_, self.promo_
        return scorer

    def _windows(self, latest: pd.Timestamp) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
        """(start, end) of each label window: window w ends `w * window_stride_days` before the end
        of the training data (the newest one includes the last event)."""
        out = []
        for w in range(int(self.label_windows)):
            end = latest - pd.Timedelta(days=float(self.window_stride_days) * w)
            out.append((end - pd.Timedelta(days=float(self.label_days)), end))
        return out

    def _promotion_span(self, dataset: Dataset) -> pd.DataFrame:
        """The calendar weeks any history can read (one filter of a large table, not one per window)."""
        latest = dataset.latest()
        span = pd.Timedelta(days=float(self.label_days))
        promo = dataset.promotions
        if latest is None:
            return promo.iloc[:0]
        nows = [dataset.window(before=start).latest() for start, _ in self._windows(latest)]
        lo, hi = min([t for t in nows if t is not None] + [latest]) - span, latest + span
        return promo[(promo["week_start"] >= lo) & (promo["week_start"] < hi)]

    def _training_rows(
        self, dataset: Dataset, promotions: pd.DataFrame | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, _History | None]:
        """(X, y, seen) over the stacked label windows, negatives subsampled at `negative_rate`, and
        the newest window's history. Windows go oldest first: each history continues the ALS
        factors of the one before (older data only, so no leak)."""
        X_parts, y_parts, s_parts = [], [], []
        rng = np.random.default_rng(self.random_state)
        history = None
        latest = dataset.latest()
        windows = self._windows(latest) if latest is not None else []
        for w, (start, end) in reversed(list(enumerate(windows))):
            # features and sub-models only see what happened before the window starts
            past = dataset.window(before=start)
            if past.latest() is None:
                continue
            truth = dataset.window(after=start, before=end if w > 0 else None).user_item_matrix("binary")
            history = _History(self, past, promotions, previous=history)
            users = np.flatnonzero((np.diff(truth.indptr) > 0) & (np.diff(history.seen.indptr) > 0))
            if len(users) > self.max_train_users:
                users = np.sort(rng.choice(users, self.max_train_users, replace=False))
            sample = _label_sampler(truth, float(self.negative_rate), rng)
            for _, _, _, seen, X, y in history.candidate_rows(users, sample):
                X_parts.append(X)
                y_parts.append(y)
                s_parts.append(seen)
        n_cols = len(self.feature_names)
        X = np.concatenate(X_parts) if X_parts else np.zeros((0, n_cols))
        y = np.concatenate(y_parts) if y_parts else np.zeros(0, dtype=bool)
        s = np.concatenate(s_parts) if s_parts else np.zeros(0, dtype=bool)
        return X, y, s, history

    def _fit_trees(self, X: np.ndarray, y: np.ndarray, seen: np.ndarray) -> None:
        """The re-buy and discovery classifiers, each on its own candidate rows."""
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.trees_ = {}
        for part, mask in zip(PARTS, (seen, ~seen), strict=True):
            n_pos = int(y[mask].sum())
            if n_pos < 5 or mask.sum() - n_pos < 5:
                self.trees_[part] = None  # too little signal: fall back to the sub-model order
                continue
            cols = self._part_columns(part)
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
            trees = export_trees(clf)
            # trained on all positives but a `negative_rate` share of the negatives: the odds are
            # 1 / negative_rate too high, so shift the log-odds back
            trees["baseline"] = trees["baseline"] + np.log(float(self.negative_rate))
            self.trees_[part] = {**trees, "columns": cols}
        self.train_rows_ = np.array([len(y), int(y.sum()), int(seen.sum())])

    # ---- stage-two scores -----------------------------------------------------------------------
    def stage_two_proba(self, X: np.ndarray, seen: np.ndarray) -> np.ndarray:
        """Stage-two score of candidate rows: P(bought in the horizon) from the re-buy model for
        bought products, the discovery model for the others; without a model (too little data) the
        first-stage order (wcount, ALS score) mapped into [-1, -0.5], below every probability."""
        p = np.empty(len(X))
        for part, mask in zip(PARTS, (seen, ~seen), strict=True):
            trees = self.trees_.get(part)
            if trees is None:
                first = X[mask, FEATURES.index("wcount" if part == "repeat" else "als")]
                p[mask] = -1.0 + 0.5 / (1.0 + np.exp(-first))
            else:
                p[mask] = predict_proba(trees, X[mask][:, trees["columns"]])
        return p

    def compute_candidate_scores(self, user_idx: np.ndarray) -> sp.csr_matrix:
        """Stage-two scores of the candidates of `user_idx` (known users with history), freshly
        computed from the fitted sub-models and trees: (len(user_idx), n_items) float32 CSR. Only a
        model fitted in this process on every customer can (sub-models are not saved, and a fit on
        a sample keeps none); `candidate_scores` reads the scores precomputed at the end of `fit`."""
        history = getattr(self, "history_", None)
        if history is None:
            raise NotFittedError("stage-two scores need the sub-models of a fit in this process")
        return self._candidate_scores(history, np.asarray(user_idx, dtype=np.int64))

    def _candidate_scores(self, history: _History, user_idx: np.ndarray) -> sp.csr_matrix:
        counts = np.zeros(len(user_idx), dtype=np.int64)
        items_parts, score_parts = [np.zeros(0, dtype=np.int32)], [np.zeros(0, dtype=np.float32)]
        lo = 0
        for batch, rows, items, seen, X in history.candidate_rows(user_idx):
            counts[lo : lo + len(batch)] = np.bincount(rows, minlength=len(batch))
            items_parts.append(items.astype(np.int32))
            score_parts.append(_nonzero32(self.stage_two_proba(X, seen)))
            lo += len(batch)
        return sp.csr_matrix(
            (
                np.concatenate(score_parts),
                np.concatenate(items_parts),
                np.concatenate([[0], np.cumsum(counts)]),
            ),
            shape=(len(user_idx), history.n_items),
        )

    # ---- serving interface ------------------------------------------------------------------------
    def candidate_scores(self, user_idx: np.ndarray) -> sp.csr_matrix:
        """(len(user_idx), n_items) float32 CSR of precomputed stage-two scores: explicit entries are
        the user's candidates; an unknown (-1) or history-less user gets an empty row."""
        self._check_fitted()
        user_idx = np.asarray(user_idx, dtype=np.int64).ravel()
        scores = self.candidate_scores_
        known = (user_idx >= 0) & (user_idx < scores.shape[0])
        safe = np.where(known, user_idx, 0)
        counts = np.where(known, np.diff(scores.indptr)[safe], 0)
        take = np.repeat(scores.indptr[safe], counts) + _ranks_in_rows(counts)
        return sp.csr_matrix(
            (scores.data[take], scores.indices[take], np.concatenate([[0], np.cumsum(counts)])),
            shape=(len(user_idx), scores.shape[1]),
        )

    def base_scores(self) -> np.ndarray:
        """(n_items,) float32: the score of every non-candidate product (recent popularity mapped
        into [-2, -1)), strictly below every candidate score."""
        self._check_fitted()
        return self.base_scores_

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        block = self.candidate_scores(user_idx)
        out = np.tile(self.base_scores_, (len(user_idx), 1))
        rows = np.repeat(np.arange(len(user_idx)), np.diff(block.indptr))
        out[rows, block.indices] = block.data
        return out

    def _fallback_counts(self) -> np.ndarray:
        return self.fallback_

    # ---- persistence --------------------------------------------------------------------------
    def _get_state(self) -> dict[str, np.ndarray]:
        state = {
            **csr_state("candidates", self.candidate_scores_),
            "base_scores": self.base_scores_,
            "fallback": self.fallback_,
            "promo": self.promo_,
            "train_rows": self.train_rows_,
        }
        for part, trees in self.trees_.items():
            if trees is not None:
                state.update({f"trees_{part}__{k}": v for k, v in trees.items() if not k.startswith("_")})
        return state

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.candidate_scores_ = csr_from("candidates", state)
        self.base_scores_ = state["base_scores"]
        self.fallback_ = state["fallback"]
        self.promo_ = state["promo"]
        self.train_rows_ = state["train_rows"]
        self.trees_ = {}
        for part in PARTS:
            prefix = f"trees_{part}__"
            trees = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            self.trees_[part] = trees or None


class _History:
    """Everything the stage-two features read, fitted on one span of purchases: the data before a
    label window (training) or all training data (scoring). Candidates and features come only from
    here, so training rows and served scores are computed by the same code.

    With `items` (a history fitted on the fit sample), only the customer side is computed, from
    `dataset`'s own customers (a block of a program larger than the sample): the candidate universe,
    item statistics, collaborative item side, BM25 statistics, the time reference and the promotion
    calendar are `items`'; ALS factors are folded in against its item factors."""

    def __init__(
        self,
        ranker: GroceryRanker,
        dataset: Dataset,
        promotions: pd.DataFrame | None,
        previous: _History | None = None,
        items: _ItemSide | None = None,
    ):
        self.ranker = ranker
        n_users, n_items = dataset.n_users, dataset.n_items
        self.n_items = n_items
        self.now = items.now if items is not None else dataset.latest()
        now, days = self.now, pd.Timedelta(days=1)
        self.promo = None
        if items is not None:
            self._take_items(items)
        else:
            self.item_cat = previous.item_cat if previous is not None else item_category_codes(dataset)

        # purchase history per (customer, product): buy-again's matrices share one sorted pattern
        ba = BuyAgain().fit(dataset)
        if items is not None:
            _same_now(ba, items.basket_now)
        self.buy_again = ba
        self.seen = ba.n_
        self.pair_keys = _keys(ba.n_)
        recent_counts = dataset.window(after=now - float(ranker.label_days) * days).user_item_matrix("count")
        last_week = dataset.window(after=now - 7 * days).user_item_matrix("count")
        # float32 throughout: every column already is (counts, buy-again's days), so nothing is lost
        self.pairs = np.column_stack(
            [
                ba.n_.data,
                ba.first_.data + np.float32(1.0),
                ba.last_.data + np.float32(1.0),
                ba.wcount_.data,
                self._aligned(recent_counts),
                self._aligned(last_week),
            ]
        ).astype(np.float32)
        del last_week
        counts = dataset.user_item_matrix("count")

        # per customer
        stats = dataset.customer_stats(with_store=promotions is not None)
        self.user_baskets = stats.baskets
        self.user_items = np.diff(ba.n_.indptr).astype(np.float64)
        self.user_since_visit = (now - pd.Series(stats.last)).dt.total_seconds().to_numpy() / 86400.0
        repeated = sp.csr_matrix(
            ((ba.n_.data >= 2).astype(np.float64), ba.n_.indices, ba.n_.indptr), shape=ba.n_.shape
        )
        self.user_repeat_share = np.divide(
            np.asarray(repeated.sum(axis=1)).ravel(),
            self.user_items,
            out=np.zeros(n_users),
            where=self.user_items > 0,
        )
        self.user_cat_share = user_category_share(counts, self.item_cat)

        if items is None:
            self._fit_items(dataset, counts, recent_counts, repeated, previous)
        else:
            self.user_factors = ALS(factors=ranker.als_factors).fold_in(
                self.all_item_factors, _bm25(counts, self.bm25)
            )
            self.knn_users = dataset.user_item_matrix(ItemKNN(similarity="bm25").weighting)
        del counts, recent_counts, repeated

        if promotions is not None:
            self._fit_store(dataset, stats.store, promotions)
            if items is None:
                self.promo = self._promo_weeks(dataset, promotions, now)

    def _take_items(self, items: _ItemSide) -> None:
        for name in ITEM_SIDE:
            setattr(self, name, items.values[name])

    def _fit_items(
        self,
        dataset: Dataset,
        counts: sp.csr_matrix,
        recent_counts: sp.csr_matrix,
        repeated: sp.csr_matrix,
        previous: _History | None,
    ) -> None:
        """The item side: candidate universe, item statistics and the collaborative sub-models."""
        ranker, n_items, days = self.ranker, self.n_items, pd.Timedelta(days=1)
        # the candidate universe: products anyone bought in the last `recent_days`
        recent = dataset.window(after=self.now - float(ranker.recent_days) * days).user_item_matrix("count")
        self.universe = np.unique(recent.indices).astype(np.int64)
        del recent
        self.position = np.full(n_items, -1, dtype=np.int64)
        self.position[self.universe] = np.arange(len(self.universe))
        seen = self.buy_again.n_
        buyers = np.bincount(seen.indices, minlength=n_items).astype(np.float64)
        self.item_repeat_rate = np.divide(
            np.bincount(seen.indices, weights=repeated.data, minlength=n_items),
            buyers,
            out=np.full(n_items, np.nan),
            where=buyers > 0,
        )
        self.log_pop = np.log1p(buyers)
        self.recent_pop = popularity_scores(np.bincount(recent_counts.indices, minlength=n_items), buyers)
        pool = np.argsort(-self.recent_pop[self.universe], kind="stable")
        self.popular_pool = pool[: int(ranker.n_popular) * 20].astype(np.int64)  # universe positions
        self.bm25 = bm25_parameters(counts.astype(np.float64))
        self._fit_collaborative(dataset, counts, previous)

    def _fit_collaborative(self, dataset: Dataset, counts: sp.csr_matrix, previous: _History | None) -> None:
        """ALS factors and item-kNN similarities, keeping only their universe columns for scoring.
        ALS starts from `previous` (a history of older data) when given: a few iterations then
        converge instead of a cold start."""
        ranker = self.ranker
        warm = previous is not None
        als = ALS(
            factors=ranker.als_factors,
            iterations=ALS_WARM_ITERATIONS if warm else ranker.als_iterations,
            random_state=ranker.random_state,
        )
        start = (previous.user_factors, previous.all_item_factors) if warm else None
        self.user_factors, self.all_item_factors = als.factorize(_bm25(counts, self.bm25), start)
        self.item_factors = np.ascontiguousarray(self.all_item_factors[self.universe])
        knn = ItemKNN(similarity="bm25", K=ranker.knn_neighbours)
        lately = dataset.window(after=self.now - pd.Timedelta(days=float(ranker.knn_days)))
        sim = knn.similarity_matrix(lately.user_item_matrix("count"))
        self.knn_sim = sim.tocsc()[:, self.universe].tocsr()
        self.knn_users = dataset.user_item_matrix(knn.weighting)

    def _aligned(self, m: sp.csr_matrix) -> np.ndarray:
        """Values of `m` (whose pattern is a subset of the purchase pattern) aligned with `pair_keys`."""
        out = np.zeros(len(self.pair_keys))
        m = m.tocsr()
        m.sum_duplicates()
        out[np.searchsorted(self.pair_keys, _keys(m))] = m.data
        return out

    def _fit_store(self, dataset: Dataset, store: pd.DataFrame, promo: pd.DataFrame) -> None:
        """Each customer's main store (most visits), as a code of the calendar's stores."""
        stores = promo["store_id"].cat.categories
        self.user_store = np.full(dataset.n_users, -1, dtype=np.int64)
        self.user_store[store["user_idx"].to_numpy(np.int64)] = stores.get_indexer(
            store["store_id"].astype(str)
        )

    def _promo_weeks(self, dataset: Dataset, promo: pd.DataFrame, now: pd.Timestamp):
        """Per store, the weeks each product is in the mailer / on display in the `label_days` after
        the data ends (the horizon recommended for) and in the same span before. Weeks are packed as
        mailer + 8 x display (at most 5 weeks each)."""
        stores = promo["store_id"].cat.categories
        span = pd.Timedelta(days=float(self.ranker.label_days))

        def weeks(lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
            w = promo[(promo["week_start"] >= lo) & (promo["week_start"] < hi)]
            packed = w["mailer"].to_numpy(np.float64) + 8.0 * w["display"].to_numpy(np.float64)
            rows, cols = w["store_id"].cat.codes.to_numpy(), w["item_idx"].to_numpy()
            m = sp.csr_matrix((packed, (rows, cols)), shape=(len(stores), dataset.n_items))
            m.sum_duplicates()
            return _keys(m), m.data

        return (weeks(now, now + span), weeks(now - span, now))

    # ---- candidates and features --------------------------------------------------------------
    def candidate_rows(self, user_idx: np.ndarray, sample=None, batch_size: int = 256):
        """Yields (batch, rows into batch, items, seen flag, feature matrix) per batch of users, rows
        sorted by (user, item): the one path from users to stage-two rows, for training and scoring.
        With `sample(batch, rows, items) -> (keep, labels)` only the kept rows get features, and
        their labels are yielded too (training)."""
        for lo in range(0, len(user_idx), batch_size):
            batch = user_idx[lo : lo + batch_size]
            rows, pos, seen, als, knn = self._candidates(batch)
            if sample is None:
                yield batch, rows, self.universe[pos], seen, self._features(batch, rows, pos, als, knn)
                continue
            keep, labels = sample(batch, rows, self.universe[pos])
            rows, pos, seen = rows[keep], pos[keep], seen[keep]
            als, knn = (als[0][keep], als[1]), (knn[0][keep], knn[1])
            X = self._features(batch, rows, pos, als, knn)
            yield batch, rows, self.universe[pos], seen, X, labels[keep]

    def _candidates(self, batch: np.ndarray):
        """Candidate rows of a batch: rows (into batch), universe positions, seen flag, and each
        row's ALS and kNN score and the customer's best ALS / kNN score over the universe.
        Repeat candidates: every product the customer bought that is in the universe (the trees
        decide the order); discovery: the ALS and kNN top `n_discovery` (kNN: products with a
        positive score only) and the first `n_popular` of the popular pool the customer has not
        bought. ALS scores the whole universe once (one matrix product serves the discovery top,
        the best score and the candidates' scores)."""
        ranker = self.ranker
        n_u = len(self.universe)
        seen_rows = self.seen[batch]
        row_of = np.repeat(np.arange(len(batch)), np.diff(seen_rows.indptr))
        pos = self.position[seen_rows.indices]
        inside = pos >= 0
        seen = np.zeros((len(batch), n_u), dtype=bool)
        seen[row_of[inside], pos[inside]] = True
        als = self.user_factors[batch] @ self.item_factors.T  # (batch, universe)
        knn_rows = self.knn_users[batch] @ self.knn_sim  # sparse: only scored products are stored
        knn = knn_rows.toarray()
        keys = [row_of[inside] * n_u + pos[inside]]  # (row, universe position) of each candidate
        if ranker.n_discovery > 0 and n_u:
            n = min(int(ranker.n_discovery), n_u)
            from recsys.models.topn_kernel import top_outside  # numba: loaded on first use

            keys.append(top_outside(als, seen, n))
            keys.append(_top_per_row(knn_rows, n, seen))
        if ranker.n_popular > 0 and n_u:
            pool = self.popular_pool
            unseen = ~seen[:, pool]
            take = unseen & (np.cumsum(unseen, axis=1) <= ranker.n_popular)
            r, c = np.nonzero(take)
            keys.append(r * n_u + pool[c])
        keys = np.unique(np.concatenate(keys))  # sorted by (row, item): one row per candidate
        rows, pos = keys // max(n_u, 1), keys % max(n_u, 1)
        als_top = als.max(axis=1) if n_u else np.zeros(len(batch))
        knn_top = knn.max(axis=1) if n_u else np.zeros(len(batch))
        return rows, pos, seen[rows, pos], (als[rows, pos], als_top), (knn[rows, pos], knn_top)

    def _features(self, batch: np.ndarray, rows: np.ndarray, pos: np.ndarray, als, knn) -> np.ndarray:
        users = batch[rows]
        items = self.universe[pos]
        pair = _lookup(self.pair_keys, self.pairs, users * self.n_items + items)
        n, first, last, wcount, n_recent, n_last_week = pair.T
        f = self.buy_again._features(n, first, last, wcount)

        def relative(scores: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
            # the candidate's score relative to the user's best score (scale-free across users)
            values, top = scores
            top = np.where(top > 0, top, 1.0)
            return values / top[rows]

        cols = {
            **f,
            "basket_share": n / np.maximum(self.user_baskets[users], 1.0),
            "n_recent": n_recent,
            "n_last_week": n_last_week,
            "als": als[0],
            "als_rel": relative(als),
            "knn": knn[0],
            "knn_rel": relative(knn),
            "log_pop": self.log_pop[items],
            "recent_pop": self.recent_pop[items],
            "item_repeat_rate": self.item_repeat_rate[items],
            "cat_share": self.user_cat_share[users, self.item_cat[items]],
            "user_baskets": self.user_baskets[users],
            "user_items": self.user_items[users],
            "user_since_visit": self.user_since_visit[users],
            "user_repeat_share": self.user_repeat_share[users],
        }
        if self.promo is not None:
            cols.update(self._promo_columns(users, items))
        names = self.ranker.feature_names
        X = np.column_stack([np.asarray(cols[name], dtype=np.float64) for name in names])
        return np.nan_to_num(X, nan=-1.0)  # 'never' (no interval, no buyer) as -1: trees split on it

    def _promo_columns(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        store = self.user_store[users]
        known = store >= 0
        cols = {}
        for suffix, table in zip(("", "_before"), self.promo, strict=True):
            packed = np.zeros(len(users))
            packed[known] = _lookup(*table, store[known] * self.n_items + items[known])
            cols[f"promo_mailer_weeks{suffix}"] = packed % 8
            cols[f"promo_display_weeks{suffix}"] = packed // 8
        return cols


#: what a block's history takes from the sample's (besides the time references and the calendar)
ITEM_SIDE = (
    "universe",
    "position",
    "item_repeat_rate",
    "log_pop",
    "recent_pop",
    "popular_pool",
    "all_item_factors",
    "item_factors",
    "knn_sim",
    "bm25",
    "item_cat",
    "promo",
)


@dataclass(frozen=True)
class _ItemSide:
    """The part of a sample's history every customer's features share: catalog-sized, so it is
    cheap to send to a worker process. `values` holds the ITEM_SIDE attributes."""

    now: pd.Timestamp  # the latest line
    basket_now: float  # buy-again's reference: the latest basket, days since the epoch
    values: dict

    @classmethod
    def of(cls, history: _History) -> _ItemSide:
        values = {name: getattr(history, name) for name in ITEM_SIDE}
        return cls(history.now, float(history.buy_again.now_[0]), values)


def _score_block(task) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(candidates per customer, scores, item indices) of one block of customers (a worker's job)."""
    scorer, items, block, promotions, workdir = task
    try:
        history = _History(scorer, block.written(workdir), promotions, items=items)
        scores = scorer._scores_of_history(history)
        return np.diff(scores.indptr), scores.data, scores.indices
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _usable_cores(requested: int) -> int:
    """`requested` workers, or with 0 the cores this process may run on."""
    return requested if requested > 0 else len(os.sched_getaffinity(0))


def _bm25(counts: sp.csr_matrix, parameters: tuple[np.ndarray, float]) -> sp.csr_matrix:
    """float32 BM25 weights of line counts with the population's statistics (as `Dataset`'s)."""
    m = bm25_weight(counts.astype(np.float64), parameters=parameters)
    return sp.csr_matrix((m.data.astype(np.float32), m.indices, m.indptr), shape=m.shape)


def _same_now(model: BuyAgain, now: float) -> None:
    """Re-express a buy-again fit of a block of customers against the sample's time reference
    `now` (days since the epoch), in place: its first/last days shift by the gap and its
    recency-weighted counts decay by it, as if fitted on the whole program."""
    gap = float(model.now_[0]) - now  # <= 0: a block's latest basket is not after the program's
    model.first_.data += np.float32(gap)
    model.last_.data += np.float32(gap)
    model.wcount_.data *= np.float32(0.5 ** (-gap / float(model.half_life_days)))
    model.now_ = np.array([now])


def _label_sampler(truth: sp.csr_matrix, rate: float, rng: np.random.Generator):
    """sample(batch, rows, items) -> (keep, labels): labels from `truth` (users x items), every
    positive kept and each negative with probability `rate`."""
    keys = _keys(truth)

    def sample(batch: np.ndarray, rows: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = _lookup(keys, truth.data, batch[rows] * truth.shape[1] + items) > 0
        return y | (rng.random(len(y)) < rate), y

    return sample


def _keys(m: sp.csr_matrix) -> np.ndarray:
    """row * n_cols + col of every stored entry, in storage order (sorted for a canonical CSR)."""
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows * m.shape[1] + m.indices.astype(np.int64)


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[i] where keys[i] == query (sorted unique keys, e.g. `_keys` of a canonical CSR), 0 where
    absent; one binary search per query (scipy's m[rows, cols] is far slower). `values` may be 2-d."""
    out = np.zeros((len(query),) + values.shape[1:], dtype=np.float64)
    if len(keys) == 0 or len(query) == 0:
        return out
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hit = keys[at] == query
    out[hit] = values[at[hit]]
    return out


def _top_per_row(scores: sp.csr_matrix, n: int, exclude: np.ndarray) -> np.ndarray:
    """row * n_cols + col of each row's n largest positive stored entries not in the dense boolean
    `exclude` (a candidate set, unordered; rows need not have sorted indices)."""
    row_of = np.repeat(np.arange(scores.shape[0]), np.diff(scores.indptr))
    keep = (scores.data > 0) & ~exclude[row_of, scores.indices]
    counts = np.bincount(row_of[keep], minlength=scores.shape[0])
    keys = row_of[keep].astype(np.int64) * scores.shape[1] + scores.indices[keep]
    values = scores.data[keep]
    out = []
    start = 0
    for c in counts:
        if c <= n:
            out.append(keys[start : start + c])
        else:
            out.append(keys[start : start + c][np.argpartition(values[start : start + c], c - n)[c - n :]])
        start += c
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def _below_candidates(popularity: np.ndarray) -> np.ndarray:
    """Popularity mapped into [-2, -1) as float32: below every stage-two score, in popularity order."""
    base = (popularity / (popularity.max() + 1.0) - 2.0).astype(np.float32)
    return np.minimum(base, np.nextafter(np.float32(-1.0), np.float32(-2.0)))


def _nonzero32(p: np.ndarray) -> np.ndarray:
    """Scores as float32 with no exact zero, so every candidate stays an explicit CSR entry."""
    out = p.astype(np.float32)
    out[out == 0] = np.finfo(np.float32).tiny
    return out


def _ranks_in_rows(counts: np.ndarray) -> np.ndarray:
    """0..c-1 for each row of length c, concatenated (position of each CSR entry within its row)."""
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(int(counts.sum())) - starts
