"""LightFM hybrid: item representations are sums of an id embedding and feature embeddings
(department, category, diet attributes), so products nobody bought yet still get a score from their
features. Saved as the final user/item representations (numpy), not as a LightFM object.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.data.schema import DIET_ATTRIBUTES
from recsys.models.base import Recommender
from recsys.ranking.similarity import factor_cosine, unit_rows


def item_feature_matrix(dataset: Dataset, identity: bool = True) -> sp.csr_matrix:
    """items x features, rows normalised to sum 1: [identity] + department + category + diet 'yes'."""
    items = dataset.items_table
    blocks = []
    if identity:
        blocks.append(sp.identity(dataset.n_items, dtype=np.float32, format="csr"))
    columns = [("department", items["department"]), ("category", items["category"])]
    columns += [(a, items[a].where(items[a] == "yes")) for a in DIET_ATTRIBUTES if a in items]
    for _, values in columns:
        codes, uniques = pd.factorize(values.astype(object))
        ok = codes >= 0
        blocks.append(
            sp.csr_matrix(
                (np.ones(ok.sum(), dtype=np.float32), (np.flatnonzero(ok), codes[ok])),
                shape=(dataset.n_items, max(len(uniques), 1)),
            )
        )
    features = sp.hstack(blocks, format="csr")
    sums = np.asarray(features.sum(axis=1)).ravel()
    sums[sums == 0] = 1.0
    return sp.diags(1.0 / sums).dot(features).astype(np.float32).tocsr()


class LightFMHybrid(Recommender):
    name = "lightfm"

    def __init__(
        self,
        no_components: int = 48,
        loss: str = "warp",
        epochs: int = 15,
        learning_rate: float = 0.05,
        item_alpha: float = 0.0,
        item_identity: bool = True,
        num_threads: int = 2,
        random_state: int = 0,
    ):
        self.no_components = no_components
        self.loss = loss
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.item_alpha = item_alpha
        self.item_identity = item_identity
        self.num_threads = num_threads
        self.random_state = random_state

    def _fit(self, dataset: Dataset) -> None:
        from lightfm import LightFM

        features = item_feature_matrix(dataset, self.item_identity)
        model = LightFM(
            no_components=self.no_components,
            loss=self.loss,
            learning_rate=self.learning_rate,
            item_alpha=self.item_alpha,
            random_state=self.random_state,
        )
        interactions = dataset.user_item_matrix("binary").tocoo()
        model.fit(interactions, item_features=features, epochs=self.epochs, num_threads=self.num_threads)
        self.user_repr_ = model.user_embeddings.astype(np.float32)
        self.item_repr_ = np.asarray(features @ model.item_embeddings, dtype=np.float32)
        self.item_bias_ = np.asarray(features @ model.item_biases, dtype=np.float32).ravel()

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_repr_[user_idx] @ self.item_repr_.T + self.item_bias_[None, :]

    def score_basket(self, item_idx: np.ndarray | list[int]) -> np.ndarray:
        """A basket as a pseudo-user: the mean representation of its items."""
        item_idx = np.unique(np.asarray(item_idx, dtype=np.int64))
        user = self.item_repr_[item_idx].mean(axis=0)
        return self.item_repr_ @ user + self.item_bias_

    def item_similarity(self, item_idx: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
        unit = getattr(self, "_unit_items", None)
        if unit is None or unit.shape != self.item_repr_.shape:
            unit = self._unit_items = unit_rows(self.item_repr_)  # once per model, not per request
        return factor_cosine(unit, item_idx, others)

    def _get_state(self) -> dict[str, np.ndarray]:
        return {"user_repr": self.user_repr_, "item_repr": self.item_repr_, "item_bias": self.item_bias_}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_repr_ = state["user_repr"]
        self.item_repr_ = state["item_repr"]
        self.item_bias_ = state["item_bias"]
