"""ALS, BPR and item-kNN from `implicit`, behind the Recommender contract.

Fitting runs with BLAS pinned to one thread (implicit parallelises itself and warns otherwise).
State is plain arrays: factor matrices for ALS/BPR, the sparse similarity matrix for item-kNN.
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recsys.data.dataset import Dataset
from recsys.models.base import Recommender, csr_from, csr_state
from recsys.ranking.similarity import factor_cosine, unit_rows

Weighting = Literal["binary", "count", "log", "bm25"]


class _FactorModel(Recommender):
    """Shared scoring for matrix factorisation: score = user_factors @ item_factors.T."""

    name = "base"
    fits_out_of_core = True

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_factors_[user_idx] @ self.item_factors_.T

    def item_similarity(self, item_idx: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
        unit = getattr(self, "_unit_items", None)
        if unit is None or unit.shape != self.item_factors_.shape:
            unit = self._unit_items = unit_rows(self.item_factors_)  # once per model, not per request
        return factor_cosine(unit, item_idx, others)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_ = state["user_factors"]
        self.item_factors_ = state["item_factors"]


class ALS(_FactorModel):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) on a weighted user x item matrix."""

    name = "als"

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.05,
        alpha: float = 1.0,
        iterations: int = 15,
        weighting: Weighting = "bm25",
        random_state: int = 0,
    ):
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.weighting = weighting
        self.random_state = random_state

    def _model(self):
        from implicit.cpu.als import AlternatingLeastSquares

        return AlternatingLeastSquares(
            factors=self.factors,
            regularization=self.regularization,
            alpha=self.alpha,
            iterations=self.iterations,
            random_state=self.random_state,
        )

    def _fit(self, dataset: Dataset) -> None:
        self.user_factors_, self.item_factors_ = self.factorize(dataset.user_item_matrix(self.weighting))

    def factorize(
        self, matrix: sp.csr_matrix, start: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(user factors, item factors) of a weighted users x items matrix, float32; `start` =
        (user factors, item factors) to continue from instead of a random initialisation."""
        with threadpool_limits(1, "blas"):
            model = self._model()
            if start is not None:
                model.user_factors = np.array(start[0], dtype=np.float32)
                model.item_factors = np.array(start[1], dtype=np.float32)
            model.fit(matrix, show_progress=False)
        return (
            np.asarray(model.user_factors, dtype=np.float32),
            np.asarray(model.item_factors, dtype=np.float32),
        )

    def fold_in(self, item_factors: np.ndarray, matrix: sp.csr_matrix) -> np.ndarray:
        """Factors of the users of a weighted users x items matrix given fixed item factors: one
        exact least-squares solve per user, as the next user step of a fit would give (customers
        left out of a fit get factors on the same scale as those in it)."""
        with threadpool_limits(1, "blas"):
            model = self._model()
            model.item_factors = np.asarray(item_factors, dtype=np.float32)
            return np.asarray(
                model.recalculate_user(np.arange(matrix.shape[0]), matrix.astype(np.float32)),
                dtype=np.float32,
            )

    def score_basket(self, item_idx: np.ndarray | list[int]) -> np.ndarray:
        """Fold the basket in as a new user (one exact least-squares step, `recalculate_user`)."""
        item_idx = np.unique(np.asarray(item_idx, dtype=np.int64))
        row = sp.csr_matrix(
            (np.ones(len(item_idx), dtype=np.float32), (np.zeros(len(item_idx), dtype=int), item_idx)),
            shape=(1, self.item_factors_.shape[0]),
        )
        user = self._folder().recalculate_user(0, row)
        return np.asarray(user, dtype=np.float32) @ self.item_factors_.T

    def _folder(self):
        """An implicit model holding these item factors, kept for the model's life: its cached Gram
        matrix (items' factors, Y'Y) is a pass over every item, many times the cost of the fold-in
        step itself, so it is computed once, not per request. `recalculate_user` only reads it."""
        folder = getattr(self, "_folder_model", None)
        if folder is None or folder.item_factors is not self.item_factors_:
            folder = self._model()
            folder.num_threads = 1  # one row: a thread team per request costs more than the solve
            folder.item_factors = self.item_factors_
            folder.user_factors = np.zeros((1, self.item_factors_.shape[1]), dtype=np.float32)
            _ = folder.YtY  # filled now, before any concurrent request reads it
            self._folder_model = folder
        return folder


class BPR(_FactorModel):
    """Bayesian Personalised Ranking (pairwise SGD) from implicit; item factors carry a bias column."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 64,
        learning_rate: float = 0.01,
        regularization: float = 0.01,
        iterations: int = 100,
        random_state: int = 0,
    ):
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state

    def _fit(self, dataset: Dataset) -> None:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        with threadpool_limits(1, "blas"):
            model = BayesianPersonalizedRanking(
                factors=self.factors,
                learning_rate=self.learning_rate,
                regularization=self.regularization,
                iterations=self.iterations,
                random_state=self.random_state,
            )
            model.fit(dataset.user_item_matrix("binary"), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)


class ItemKNN(Recommender):
    """Item-item nearest neighbours (cosine or BM25 similarity, K neighbours per item).

    score(user) = weighted purchase row @ similarity; a basket is scored the same way, so it folds in
    fresh events without refitting.
    """

    name = "item_knn"
    fits_out_of_core = True

    def __init__(
        self, similarity: Literal["cosine", "bm25"] = "bm25", K: int = 100, weighting: Weighting = "log"
    ):
        self.similarity = similarity
        self.K = K
        self.weighting = weighting

    def _fit(self, dataset: Dataset) -> None:
        self.sim_ = self.similarity_matrix(dataset.user_item_matrix("count"))
        self.user_items_ = dataset.user_item_matrix(self.weighting)

    def similarity_matrix(self, counts: sp.csr_matrix) -> sp.csr_matrix:
        """items x items CSR (float32) of the K nearest neighbours of each item, from purchase counts."""
        from implicit.nearest_neighbours import BM25Recommender, CosineRecommender

        if self.similarity == "cosine":
            model = CosineRecommender(K=self.K)
        elif self.similarity == "bm25":
            model = BM25Recommender(K=self.K)
        else:
            raise ValueError(f"similarity must be 'cosine' or 'bm25', got {self.similarity!r}")
        with threadpool_limits(1, "blas"), warnings.catch_warnings():
            # implicit hands its own COO-normalised matrix to the kNN kernel and then warns about it
            warnings.simplefilter("ignore")
            model.fit(counts, show_progress=False)
        return model.similarity.tocsr().astype(np.float32)

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return (self.user_items_[user_idx] @ self.sim_).toarray()

    def score_basket(self, item_idx: np.ndarray | list[int]) -> np.ndarray:
        item_idx = np.unique(np.asarray(item_idx, dtype=np.int64))
        return np.asarray(self.sim_[item_idx].sum(axis=0)).ravel().astype(np.float32)

    def item_similarity(self, item_idx: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
        rows = self.sim_[np.asarray(item_idx, dtype=np.int64)]
        return (rows if others is None else rows[:, np.asarray(others, dtype=np.int64)]).toarray()

    def _get_state(self) -> dict[str, np.ndarray]:
        return {**csr_state("sim", self.sim_), **csr_state("ui", self.user_items_)}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.sim_ = csr_from("sim", state)
        self.user_items_ = csr_from("ui", state)
