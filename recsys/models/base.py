"""Recommender contract: one base class does ids, seen items, masks, fallback, top-k and persistence.

Subclasses write only `_fit`, `_score` and (for persistence) `_get_state`/`_set_state`. Parameters
live in `__init__`'s signature only (scikit-learn style), so `get_params()` feeds MLflow and Optuna.
"""

from __future__ import annotations

import inspect
import json
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.dataset import Dataset
from recsys.data.idmap import IdMap
from recsys.models.validate import ModelCorrupt, validate_arrays
from recsys.ranking.similarity import cooccurrence_cosine
from recsys.ranking.topk import candidate_top_k, top_k

FORMAT_VERSION = 1
#: Customers whose purchases the default item similarity (reasons, similar items) is counted over.
SIMILARITY_CUSTOMERS = 20_000

#: The selection step of recommend: (scores, k, allowed) -> (items, scores), both (n_users, k).
Selector = Callable[[np.ndarray, int, "np.ndarray | None"], tuple[np.ndarray, np.ndarray]]


class NotFittedError(RuntimeError):
    pass


def csr_state(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    """A CSR matrix as `<prefix>_indptr/_indices/_data/_shape` arrays (what validate.py checks)."""
    m = m.tocsr()
    return {
        f"{prefix}_indptr": m.indptr,
        f"{prefix}_indices": m.indices,
        f"{prefix}_data": m.data,
        f"{prefix}_shape": np.asarray(m.shape),
    }


def csr_from(prefix: str, state: dict[str, np.ndarray]) -> sp.csr_matrix:
    return sp.csr_matrix(
        (state[f"{prefix}_data"], state[f"{prefix}_indices"], state[f"{prefix}_indptr"]),
        shape=tuple(state[f"{prefix}_shape"]),
    )


class Recommender:
    """Base class. Learned state ends in `_`; `__init__` only stores keyword parameters."""

    name: ClassVar[str] = "base"
    registry: ClassVar[dict[str, type[Recommender]]] = {}
    #: Users in the id map with no training history get the fallback instead of `_score`
    #: (a zero factor vector would otherwise rank arbitrary items). Hybrid models may turn this off.
    needs_history: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name != "base" and not inspect.isabstract(cls):
            Recommender.registry[cls.name] = cls

    # ---- parameters -------------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.param_names()}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    # ---- fitting ----------------------------------------------------------------------------
    #: Fits from per-pair aggregates only (`Dataset.user_item_matrix`, `basket_stats`), so an
    #: out-of-core Dataset (lines left on disk) will do.
    fits_out_of_core: ClassVar[bool] = False
    #: Below this many purchase lines a loader should hand the model its lines in memory even though
    #: it fits out of core: a model that reads many windows of them (the grocery ranker) is faster
    #: on a frame than on one DuckDB scan of the files per window.
    memory_lines: ClassVar[int] = 0
    #: Reads the promotion calendar (`Dataset.promotions`), so a loader must not skip it.
    reads_promotions: ClassVar[bool] = False

    def fit(self, dataset: Dataset) -> Recommender:
        self.users_ = dataset.users
        self.items_ = dataset.items
        seen = self._seen(dataset)
        self.seen_ = seen
        self.__dict__.pop("_seen_csc", None)  # the similarity's matrix of a previous fit
        self.item_popularity_ = np.asarray(seen.sum(axis=0)).ravel().astype(np.float32)
        self._fit(dataset)
        return self

    def _seen(self, dataset: Dataset) -> sp.csr_matrix:
        """users x items, 1 where the customer bought the product (a model that aggregates the
        pairs anyway may answer from its own aggregate instead of another pass over the lines)."""
        return dataset.user_item_matrix("binary")

    def _fit(self, dataset: Dataset) -> None:
        raise NotImplementedError

    def _score(self, user_idx: np.ndarray) -> np.ndarray:
        """(len(user_idx), n_items) scores for known users; higher is better."""
        raise NotImplementedError

    def _check_fitted(self) -> None:
        if not hasattr(self, "items_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load() first")

    # ---- scoring and recommending -----------------------------------------------------------
    def personal(self, user_idx: np.ndarray) -> np.ndarray:
        """Which of the internal user indices the model scores itself (the rest get the fallback)."""
        user_idx = np.asarray(user_idx, dtype=np.int64)
        known = user_idx >= 0
        if self.needs_history and known.any():
            rows, indptr = user_idx[known], self.seen_.indptr  # O(batch), not O(customers)
            known[known] = indptr[rows + 1] > indptr[rows]
        return known

    def score(self, user_idx: np.ndarray | list[int]) -> np.ndarray:
        """Scores for internal user indices; -1 (unknown user) gets the non-personalised fallback."""
        self._check_fitted()
        user_idx = np.asarray(user_idx, dtype=np.int64)
        out = np.empty((len(user_idx), len(self.items_)), dtype=np.float32)
        known = self.personal(user_idx)
        if known.any():
            out[known] = self._score(user_idx[known])
        if (~known).any():
            out[~known] = self.fallback_scores()
        return out

    def fallback_scores(self) -> np.ndarray:
        """Non-personalised scores for customers the model does not know (or may not personalise):
        the share of the model's customers who bought each product, a 0-1 score an app can show
        beside personalised ones (never a raw count); the order is `_fallback_counts`'."""
        return np.asarray(self._fallback_counts(), dtype=np.float32) / np.float32(max(len(self.users_), 1))

    def _fallback_counts(self) -> np.ndarray:
        """Buyers per product (models override with their own non-personalised order)."""
        return self.item_popularity_

    def recommend_idx(
        self,
        user_idx: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        exclude_seen: bool = False,
        scores: np.ndarray | None = None,
        select: Selector = top_k,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores for internal user indices (batch); masks apply before top-k.

        `select(scores, k, allowed)` is the selection step: `top_k`, or a re-ranker built on it
        (CO2e, diversity) that keeps the same guarantee.
        """
        user_idx = np.asarray(user_idx, dtype=np.int64)
        if exclude_seen:
            known = user_idx >= 0
            seen = np.zeros((len(user_idx), len(self.items_)), dtype=bool)
            if known.any():
                seen[known] = self.seen_[user_idx[known]].toarray() > 0
            allowed = ~seen if allowed is None else (np.asarray(allowed, dtype=bool) & ~seen)
        if scores is None and select is top_k and self.has_candidates:
            return self._candidate_top_k(user_idx, k, allowed)
        if scores is None:
            scores = self.score(user_idx)
        return select(scores, k, allowed)

    # ---- sparse candidate models --------------------------------------------------------------
    @property
    def has_candidates(self) -> bool:
        """True for models whose score row is `base_scores()` with sparse candidates overlaid."""
        return type(self).candidate_scores is not Recommender.candidate_scores

    def candidate_scores(self, user_idx: np.ndarray) -> sp.csr_matrix:
        """(len(user_idx), n_items) CSR of candidate scores for users the model scores itself.

        Contract: `score(u)` equals `base_scores()` with row u's entries overlaid, and every
        candidate scores above every base score, so selection needs the candidates only (plus the
        base order when too few candidates are allowed).
        """
        raise NotImplementedError(f"{type(self).__name__} scores densely")

    def base_scores(self) -> np.ndarray:
        """(n_items,) scores of every non-candidate item (see `candidate_scores`)."""
        raise NotImplementedError(f"{type(self).__name__} scores densely")

    def base_order(self) -> np.ndarray:
        """Items by descending base score (cached: it is the same for every request)."""
        cached = getattr(self, "_base_order", None)
        if cached is None:
            cached = np.argsort(-np.asarray(self.base_scores()), kind="stable")
            cached.setflags(write=False)
            self._base_order = cached
        return cached

    def _candidate_top_k(
        self, user_idx: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """top_k(score(user_idx), k, allowed) without building catalog-wide rows for model users."""
        personal = self.personal(user_idx)
        items = np.full((len(user_idx), k), -1, dtype=np.int64)
        top = np.full((len(user_idx), k), -np.inf, dtype=np.float32)
        row_mask = allowed is not None and np.ndim(allowed) == 2
        if personal.any():
            rows = np.flatnonzero(personal)
            mask = allowed[rows] if row_mask else allowed
            items[rows], top[rows] = candidate_top_k(
                self.candidate_scores(user_idx[rows]),
                np.asarray(self.base_scores(), dtype=np.float32),
                k,
                mask,
                self.base_order(),
            )
        if (~personal).any():
            rows = np.flatnonzero(~personal)
            mask = allowed[rows] if row_mask else allowed
            fallback = np.asarray(self.fallback_scores(), dtype=np.float32)[None, :]
            items[rows], top[rows] = top_k(np.broadcast_to(fallback, (len(rows), fallback.shape[1])), k, mask)
        return items, top

    def recommend(
        self,
        users: list[str] | np.ndarray | pd.Series,
        k: int = 10,
        allowed: np.ndarray | None = None,
        exclude_seen: bool = False,
        batch_size: int = 256,
        select: Selector = top_k,
    ) -> pd.DataFrame:
        """user_id, item_id, rank, score with external ids; unknown users get the fallback list."""
        self._check_fitted()
        users = [str(u) for u in users]
        user_idx = self.users_.to_internal(users, strict=False)
        frames = []
        for start in range(0, len(users), batch_size):
            batch = user_idx[start : start + batch_size]
            items, scores = self.recommend_idx(
                batch, k, allowed=allowed, exclude_seen=exclude_seen, select=select
            )
            rows, ranks = np.nonzero(items >= 0)
            frames.append(
                pd.DataFrame(
                    {
                        "user_id": np.asarray(users[start : start + batch_size], dtype=object)[rows],
                        "item_id": self.items_.to_external(items[rows, ranks]),
                        "rank": ranks + 1,
                        "score": scores[rows, ranks],
                    }
                )
            )
        if not frames:
            return pd.DataFrame(columns=["user_id", "item_id", "rank", "score"])
        return pd.concat(frames, ignore_index=True)

    # ---- baskets and similar items ----------------------------------------------------------
    @property
    def supports_basket(self) -> bool:
        return type(self).score_basket is not Recommender.score_basket

    def score_basket(self, item_idx: np.ndarray | list[int]) -> np.ndarray:
        """(n_items,) scores for "what goes with this basket" given internal item indices.

        Models that can fold in fresh events (item-kNN, ALS, buy-again on a history row) override
        this; serving uses it to score a live basket or a history that is newer than the model.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot score a basket")

    def complete_basket(
        self, item_ids: list[str], k: int = 10, allowed: np.ndarray | None = None
    ) -> pd.DataFrame:
        """item_id, rank, score: items to add to a basket (basket items themselves excluded).

        Unknown item ids are ignored; an empty or fully unknown basket gets the fallback list.
        """
        self._check_fitted()
        idx = self.items_.to_internal([str(i) for i in item_ids], strict=False)
        idx = np.unique(idx[idx >= 0])
        scores = self.score_basket(idx) if len(idx) else self.fallback_scores()
        keep = np.ones(len(self.items_), dtype=bool)
        keep[idx] = False
        if allowed is not None:
            keep &= np.asarray(allowed, dtype=bool)
        items, top = top_k(np.asarray(scores, dtype=np.float32)[None, :], k, keep)
        ok = items[0] >= 0
        return pd.DataFrame(
            {
                "item_id": self.items_.to_external(items[0][ok]),
                "rank": np.arange(1, ok.sum() + 1),
                "score": top[0][ok],
            }
        )

    def item_similarity(self, item_idx: np.ndarray, others: np.ndarray | None = None) -> np.ndarray:
        """(len(item_idx), len(others)) similarities (`others` None: every item); default: cosine of
        purchase co-occurrence. Factor models override it with the cosine of their item factors.

        The co-occurrence is counted over at most SIMILARITY_CUSTOMERS customers (evenly spaced
        rows): a call costs the buyers of the items it compares, so over a national program's
        customers it would grow with the program and a batch of all of them with its square."""
        csc = getattr(self, "_seen_csc", None)
        if csc is None:
            rows = self.seen_.shape[0]
            seen = self.seen_
            if rows > SIMILARITY_CUSTOMERS:
                seen = seen[np.linspace(0, rows - 1, SIMILARITY_CUSTOMERS).astype(np.int64)]
            csc = self._seen_csc = seen.tocsc()
        return cooccurrence_cosine(csc, item_idx, others)

    def similar_items(
        self, item_ids: list[str], k: int = 10, allowed: np.ndarray | None = None
    ) -> pd.DataFrame:
        """item_id, similar_item_id, rank, score: nearest neighbours of each item (itself excluded)."""
        self._check_fitted()
        item_ids = [str(i) for i in item_ids]
        idx = self.items_.to_internal(item_ids)  # an unknown item id is a caller error
        sims = self.item_similarity(idx)
        keep = np.ones(sims.shape, dtype=bool)
        keep[np.arange(len(idx)), idx] = False
        if allowed is not None:
            keep &= np.asarray(allowed, dtype=bool)
        items, top = top_k(sims, k, keep)
        rows, ranks = np.nonzero(items >= 0)
        return pd.DataFrame(
            {
                "item_id": np.asarray(item_ids, dtype=object)[rows],
                "similar_item_id": self.items_.to_external(items[rows, ranks]),
                "rank": ranks + 1,
                "score": top[rows, ranks],
            }
        )

    # ---- persistence (numpy + JSON, no pickle) ----------------------------------------------
    def _get_state(self) -> dict[str, np.ndarray]:
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    def save(self, directory: Path) -> Path:
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format_version": FORMAT_VERSION,
            "model": self.name,
            "params": self.get_params(),
            "users": self.users_.to_list(),
            "items": self.items_.to_list(),
        }
        (directory / "model.json").write_text(json.dumps(meta))
        seen = self.seen_.tocsr()
        arrays = {
            "seen_indptr": seen.indptr,
            "seen_indices": seen.indices,
            "item_popularity": self.item_popularity_,
        }
        arrays.update({f"state_{k}": v for k, v in self._get_state().items()})
        # uncompressed: zlib on one core took minutes for a national program's scores and barely
        # shrinks float arrays; loading reads either
        np.savez(directory / "arrays.npz", **arrays)
        from recsys.models.model_dir import write_checksums  # (model_dir builds on this module)

        write_checksums(directory)
        return directory

    @classmethod
    def load(cls, directory: Path) -> Recommender:
        from recsys.models.model_dir import verify_checksums

        directory = Path(directory)
        verify_checksums(directory)
        try:
            meta = json.loads((directory / "model.json").read_text())
        except (UnicodeDecodeError, ValueError) as exc:
            raise ModelCorrupt(f"{directory / 'model.json'}: not valid JSON ({exc})") from exc
        if (
            not isinstance(meta, dict)
            or not isinstance(meta.get("users"), list)
            or not isinstance(meta.get("items"), list)
        ):
            raise ModelCorrupt(f"{directory / 'model.json'}: users and items lists expected")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{directory}: unsupported model format {meta.get('format_version')}")
        model_cls = Recommender.registry.get(meta["model"])
        if model_cls is None:
            raise ValueError(f"{directory}: unknown model type {meta['model']!r}")
        if cls is not Recommender and not issubclass(model_cls, cls):
            raise ValueError(f"{directory} holds a {meta['model']} model, not {cls.name}")
        try:
            model = model_cls(**meta["params"])
        except TypeError as exc:
            raise ModelCorrupt(
                f"{directory / 'model.json'}: parameters do not fit {meta['model']} ({exc})"
            ) from exc
        model.users_ = IdMap(meta["users"], "customer")
        model.items_ = IdMap(meta["items"], "product")
        try:
            with np.load(directory / "arrays.npz", allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise ModelCorrupt(
                f"{directory / 'arrays.npz'}: unreadable ({type(exc).__name__}: {exc})"
            ) from exc
        n_users, n_items = len(model.users_), len(model.items_)
        validate_arrays(arrays, n_users, n_items, str(directory / "arrays.npz"))
        indices = arrays["seen_indices"]
        model.seen_ = sp.csr_matrix(
            (np.ones(len(indices), dtype=np.float32), indices, arrays["seen_indptr"]),
            shape=(n_users, n_items),
        )
        model.item_popularity_ = arrays["item_popularity"]
        try:
            model._set_state({k[len("state_") :]: v for k, v in arrays.items() if k.startswith("state_")})
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelCorrupt(
                f"{directory / 'arrays.npz'}: state does not fit a {meta['model']} model ({exc})"
            ) from exc
        return model
