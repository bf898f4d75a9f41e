"""The one selection path from model scores to an explained, diet-safe product list.

Every caller that answers "which products for this customer" goes through `ProductSelector.select`:
the HTTP service (per micro-batch), `recsys recommend`, the MLflow pyfunc and the promotion gate's
probes. A request is one `ProductQuery` for one `Shopper` (who is asking: consent, diet, model row,
history); the answer is a `Selection` (item indices, scores, reasons).

Order of operations, the same on every path: scores -> one allowed mask (diet & stock & categories &
include/exclude & mode & basket) applied BEFORE top-k -> top-k or re-rank (CO2e, soft preferences,
diversity) -> reasons. The shortcuts below are exact versions of that order, not second engines:
- non-personalised customers with a plain request get one cached top list per (diet, k);
- dot-product models (ALS, BPR) score only the diet's allowed items, largest factor norms first, and
  stop when no unscored item can enter the top-k (`FactorIndex`);
- candidate models (the grocery ranker) select from their precomputed sparse candidate scores
  (`Recommender.recommend_idx` -> `candidate_top_k`).
`complete_basket` takes no shortcut: the customer's catalog-wide scores are blended with the basket's
co-occurrence (`recsys.ranking.basket`) before the same mask; with a learned re-ranker saved beside
the co-occurrence, the masked blend's top candidates are re-scored (`recsys.ranking.basket_rerank`)
before the same top-k.

Decided once for every path: a customer with no purchase history asking `buy_again` gets an empty
list (there is nothing to buy again; the answer says `cold_start`), `discover` and `mixed` get the
non-personalised list. A customer who may not be personalised gets the non-personalised list whatever
the model knows about them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd

from recsys.cache import LRUCache
from recsys.data.idmap import UnknownIdError
from recsys.diet.constraints import ConstraintEngine, ItemFilters
from recsys.diet.profiles import EMPTY_PROFILE, DietProfile
from recsys.ranking.basket import DEFAULT_WEIGHT, BasketCompleter, blend
from recsys.ranking.factor_index import FactorIndex
from recsys.ranking.food_first import FoodFirst, select_food_first
from recsys.ranking.rerank import DEFAULT_POOL, rerank
from recsys.ranking.topk import top_k

Mode = Literal["mixed", "buy_again", "discover", "complete_basket"]
MODES: tuple[str, ...] = ("mixed", "buy_again", "discover", "complete_basket")
#: History items looked at for "because you bought X" (a cap keeps the lookup cheap for heavy buyers).
MAX_REASON_HISTORY = 400
_EMPTY = np.empty(0, dtype=np.int64)
_EMPTY.setflags(write=False)


@dataclass(frozen=True)
class Shopper:
    """Who is asking. `history` is SORTED item indices (model history + fresh events), empty without
    consent to personalise; `fresh` are items bought since the model was trained."""

    customer_id: str
    personalised: bool
    user_idx: int  # model row; -1 when unknown, erased or not personalisable
    history: np.ndarray = field(default_factory=lambda: _EMPTY)
    fresh: np.ndarray = field(default_factory=lambda: _EMPTY)
    profile: DietProfile = EMPTY_PROFILE
    consent_channels: frozenset[str] = frozenset()  # channels offers may use (recsys.offers.channels)
    known: bool = True  # a consent record exists for this id (store or data set)

    @property
    def consent_marketing(self) -> bool:
        """Offers may reach the customer on at least one channel."""
        return bool(self.consent_channels)

    @property
    def fallback(self) -> str | None:
        """Why the list is not personalised: an unknown id is cold start, a known refusal no_consent."""
        if not self.personalised:
            return "no_consent" if self.known else "cold_start"
        return None if len(self.history) else "cold_start"

    @property
    def diet(self) -> list[str]:
        return sorted(self.profile.exclusions)


@dataclass(frozen=True)
class ProductQuery:
    """What is asked. Item ids are external product ids; unknown ids in include/exclude/basket are
    ignored. `basket`: products in hand, never recommended; `complete_basket` ranks what goes with
    them for this customer (`recsys.ranking.basket`)."""

    k: int = 10
    mode: Mode = "mixed"
    categories: frozenset[str] | None = None
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    store: str | None = None
    co2_weight: float = 0.0
    diversity: float = 0.0
    basket: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.co2_weight < 0 or self.diversity < 0:
            raise ValueError(
                f"co2_weight and diversity must be >= 0, got {self.co2_weight}, {self.diversity}"
            )

    @property
    def diet_only(self) -> bool:
        """No filter beyond the diet: the mask is one cached per-diet array."""
        return (
            self.mode == "mixed"
            and self.store is None
            and self.categories is None
            and self.include is None
            and not self.exclude
            and not self.basket
        )


@dataclass(frozen=True)
class Selection:
    """Model item indices best first, their scores, and (reason, history item or None) per item."""

    items: np.ndarray
    scores: np.ndarray
    reasons: list[tuple[str, int | None]]


class ProductSelector:
    """Model + catalog -> lists. `items_table` row i describes model item i; `stock` maps a store id
    to the item indices sold there (None: every item counts as available). `food_first` keeps diet
    lists as food-rich as the same list without the diet (recsys.ranking.food_first).

    `same_catalog`: a selector over the same items table and stock (another model of the same
    items, e.g. a reload): its catalog arrays and constraint engine are shared, not rebuilt."""

    def __init__(
        self,
        model,
        items_table: pd.DataFrame,
        stock: dict[str, np.ndarray] | None = None,
        pool: int = DEFAULT_POOL,
        cache_size: int = 256,
        baskets: BasketCompleter | None = None,
        food_first: bool = True,
        same_catalog: ProductSelector | None = None,
    ):
        model._check_fitted()
        self.model = model
        self.items_table = items_table.reset_index(drop=True)
        if len(self.items_table) != len(model.items_):
            raise ValueError(
                f"items table has {len(self.items_table)} rows, the model {len(model.items_)} items"
            )
        self.n_items = len(self.items_table)
        self.pool = pool
        #: basket co-occurrence; None: the model's own item similarity (recsys.ranking.basket)
        self.baskets = baskets
        if same_catalog is not None:
            # the caller's word: the same items table and stock; the items must be the model's too
            if same_catalog.model.items_ != model.items_:
                raise ValueError("same_catalog: that selector's model has other items than this model")
            self.engine, self.item_ids = same_catalog.engine, same_catalog.item_ids
            self.names, self.categories = same_catalog.names, same_catalog.categories
            self.co2e, self.item_pos = same_catalog.co2e, same_catalog.item_pos
        else:
            self.engine = ConstraintEngine(self.items_table, stock=stock)
            self.item_ids = np.asarray(model.items_.to_list(), dtype=object)
            self.names = _text(self.items_table, "name")
            self.categories = _text(self.items_table, "category")
            co2e = self.items_table.get("co2e_per_kg", pd.Series(np.nan, index=self.items_table.index))
            self.co2e = pd.to_numeric(co2e, errors="coerce").to_numpy(dtype=np.float64)
            self.item_pos: dict[str, int] = {str(u): i for i, u in enumerate(self.item_ids)}
        self.user_pos: dict[str, int] = {u: i for i, u in enumerate(model.users_.to_list())}
        if not model.seen_.has_sorted_indices:  # history rows are searched with searchsorted
            model.seen_.sort_indices()
        if same_catalog is not None:  # both depend on the catalog only: shared, never rebuilt
            self._forbidden, self._category_masks = same_catalog._forbidden, same_catalog._category_masks
        else:
            self._forbidden: LRUCache[np.ndarray] = LRUCache(cache_size)
            self._category_masks: LRUCache[np.ndarray] = LRUCache(cache_size)
        self._fallback_tops: LRUCache[tuple[np.ndarray, np.ndarray]] = LRUCache(cache_size)
        self._factor_indexes: LRUCache[FactorIndex] = LRUCache(32)
        if not food_first or "is_food" not in self.items_table:
            self.food_first = None
        elif same_catalog is not None and same_catalog.food_first is not None:
            self.food_first = same_catalog.food_first.for_popularity(model.fallback_scores())
        else:
            self.food_first = FoodFirst(self.items_table, model.fallback_scores(), self.names)

    # ---- who is asking -----------------------------------------------------------------------
    def user_index(self, customer_id: str) -> int:
        return self.user_pos.get(str(customer_id), -1)

    def item_index(self, item_ids: Iterable[object]) -> np.ndarray:
        """Model indices of product ids, -1 for unknown ids."""
        ids = [str(i) for i in item_ids]
        get = self.item_pos.get
        return np.fromiter((get(i, -1) for i in ids), dtype=np.int64, count=len(ids))

    def history(self, user_idx: int) -> np.ndarray:
        if user_idx < 0:
            return _EMPTY
        seen = self.model.seen_
        return seen.indices[seen.indptr[user_idx] : seen.indptr[user_idx + 1]].astype(np.int64)

    def shopper(
        self,
        customer_id: object,
        profile: DietProfile = EMPTY_PROFILE,
        personalised: bool = True,
        fresh: Iterable[object] = (),
    ) -> Shopper:
        """A customer as the model knows them (batch jobs); `fresh` are product ids bought since."""
        cid = str(customer_id)
        if not personalised:
            return Shopper(cid, False, -1, profile=profile)
        user_idx = self.user_index(cid)
        history = self.history(user_idx)
        new = self.item_index(fresh)
        new = np.setdiff1d(new[new >= 0], history)
        if len(new):
            history = np.union1d(history, new)
        return Shopper(cid, True, user_idx, history, new if len(new) else _EMPTY, profile)

    # ---- cached masks ------------------------------------------------------------------------
    def forbidden(self, profile: DietProfile) -> np.ndarray:
        """Indices a profile's hard exclusions forbid (setting these to -inf by index is cheaper than
        a masked pass over the catalog for every request)."""

        def build() -> np.ndarray:
            idx = np.flatnonzero(~self.engine.allowed(profile))
            idx.setflags(write=False)
            return idx

        return self._forbidden.get(profile.exclusions, build)

    def category_mask(self, categories: frozenset[str]) -> np.ndarray:
        def build() -> np.ndarray:
            mask = self.engine.filter_mask(ItemFilters.make(include_categories=categories))
            mask.setflags(write=False)
            return mask

        return self._category_masks.get(categories, build)

    def mask(self, query: ProductQuery, shopper: Shopper) -> np.ndarray:
        """diet & store & categories & include & exclude & mode, as one boolean row (a new array)."""
        mask = self.engine.allowed(shopper.profile) & self.engine.in_stock(query.store)
        if query.categories is not None:
            mask &= self.category_mask(query.categories)
        if query.include is not None:
            inc = np.zeros(self.n_items, dtype=bool)
            idx = self.item_index(query.include)
            inc[idx[idx >= 0]] = True
            mask &= inc
        if query.exclude:
            idx = self.item_index(query.exclude)
            mask[idx[idx >= 0]] = False
        if query.basket:
            idx = self.item_index(query.basket)
            mask[idx[idx >= 0]] = False
        if query.mode in ("buy_again", "discover"):
            bought = np.zeros(self.n_items, dtype=bool)
            bought[shopper.history] = True
            mask &= bought if query.mode == "buy_again" else ~bought
        return mask

    def fallback_top(self, profile: DietProfile, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The non-personalised list under a profile's exclusions, the same for every such customer."""

        def build() -> tuple[np.ndarray, np.ndarray]:
            scores = np.array(self.model.fallback_scores(), dtype=np.float32)
            scores[self.forbidden(profile)] = -np.inf
            items, top = top_k(scores[None, :], k)
            for a in (items, top):
                a.setflags(write=False)
            return items[0], top[0]

        return self._fallback_tops.get((profile.exclusions, k), build)

    @cached_property
    def dot_product_model(self) -> bool:
        """True when scores are exactly user_factors_ @ item_factors_.T (ALS, BPR)."""
        from recsys.models.implicit_models import _FactorModel

        model = self.model
        return (
            isinstance(model, _FactorModel)
            and type(model)._score is _FactorModel._score
            and getattr(model, "user_factors_", None) is not None
            and getattr(model, "item_factors_", None) is not None
        )

    def factor_index(self, profile: DietProfile) -> FactorIndex:
        """The allowed items of a profile, sorted for bounded scoring (a few MB per diet)."""
        return self._factor_indexes.get(
            profile.exclusions,
            lambda: FactorIndex.build(self.model.item_factors_, self.engine.allowed(profile)),
        )

    def warm_like(self, previous: ProductSelector | None = None) -> None:
        """Build now what `previous` (the selector this one replaces) had built on demand: the factor
        indexes and non-personalised lists of the diets it served. Without it, the first requests
        after a reload would each wait for a build (a factor index is a pass over every item's
        factors); with it they run in the reload's thread, before the swap. Without `previous`, the
        no-diet index."""
        diets = [frozenset()] if previous is None else previous._factor_indexes.keys()
        if self.dot_product_model:
            for exclusions in diets:
                self.factor_index(DietProfile(exclusions))
        for exclusions, k in [] if previous is None else previous._fallback_tops.keys():
            self.fallback_top(DietProfile(exclusions), k)

    # ---- selection ---------------------------------------------------------------------------
    def select(
        self, queries: Sequence[ProductQuery], shoppers: Sequence[Shopper], food_first: bool = True
    ) -> list[Selection | Exception]:
        """One Selection per (query, shopper), or the Exception that concerns that request alone
        (e.g. an unknown store), so one bad request never fails a batch."""
        if food_first and self.food_first is not None and any(s.profile.exclusions for s in shoppers):
            return select_food_first(self, queries, shoppers)
        n = len(queries)
        if len(shoppers) != n:
            raise ValueError(f"{n} queries for {len(shoppers)} shoppers")
        kmax = max((q.k for q in queries), default=1)
        items = np.full((n, kmax), -1, dtype=np.int64)
        top = np.full((n, kmax), -np.inf, dtype=np.float32)
        out: list[Selection | Exception | None] = [None] * n
        factor_rows: dict[frozenset[str], list[int]] = {}
        model_rows: list[int] = []
        for i, (q, s) in enumerate(zip(queries, shoppers, strict=True)):
            path = self._path(q, s)
            if path == "empty":
                out[i] = Selection(_EMPTY, np.empty(0, dtype=np.float32), [])
            elif path == "fallback":
                items[i, : q.k], top[i, : q.k] = self.fallback_top(s.profile, q.k)
            elif path == "factor":
                factor_rows.setdefault(s.profile.exclusions, []).append(i)
            else:
                model_rows.append(i)
        for rows in factor_rows.values():
            kk = max(queries[i].k for i in rows)
            users = self.model.user_factors_[[shoppers[i].user_idx for i in rows]]
            items[rows, :kk], top[rows, :kk] = self.factor_index(shoppers[rows[0]].profile).top_k(users, kk)
        if model_rows:
            self._select_scored(queries, shoppers, model_rows, items, top, out)
        for i, (q, s) in enumerate(zip(queries, shoppers, strict=True)):
            if out[i] is None:
                row = items[i, : q.k]
                keep = row >= 0
                chosen = row[keep]
                why = self.basket_reasons(q, s, chosen) if q.mode == "complete_basket" else None
                out[i] = Selection(chosen, top[i, : q.k][keep], why or self.reasons(s, chosen))
        return out  # type: ignore[return-value]

    def _reranked(self, q: ProductQuery, s: Shopper) -> bool:
        return bool(q.co2_weight or q.diversity or s.profile.preferences)

    def _scored_by_model(self, s: Shopper) -> str | None:
        """'fold_in', 'model' or None (the non-personalised fallback scores)."""
        if not s.personalised:
            return None
        if len(s.fresh) and self.model.supports_basket:
            return "fold_in"
        if s.user_idx < 0 or (
            self.model.needs_history and not self.model.personal(np.array([s.user_idx]))[0]
        ):
            return None
        return "model"

    def _path(self, q: ProductQuery, s: Shopper) -> str:
        if q.mode == "buy_again" and not len(s.history):
            return "empty"
        scored = self._scored_by_model(s)
        plain = q.diet_only and not self._reranked(q, s)
        if scored is None and plain:
            return "fallback"
        if scored == "model" and plain and self.dot_product_model:
            return "factor"
        return "general"

    def _select_scored(
        self,
        queries: Sequence[ProductQuery],
        shoppers: Sequence[Shopper],
        rows: list[int],
        items: np.ndarray,
        top: np.ndarray,
        out: list,
    ) -> None:
        """Masked top-k (or re-rank) for the rows that need scores; fills items/top/out at `rows`."""
        masks: dict[int, np.ndarray] = {}
        for i in rows:
            try:
                masks[i] = self.mask(queries[i], shoppers[i])
            except (
                ValueError,
                UnknownIdError,
            ) as exc:  # e.g. an unknown store: this caller's, not the batch's
                out[i] = exc
        rows = [i for i in rows if i in masks]
        model = self.model
        # candidate models select from sparse candidate scores; nothing catalog-wide per request
        sparse = [
            i
            for i in rows
            if model.has_candidates
            and not self._reranked(queries[i], shoppers[i])
            and self._scored_by_model(shoppers[i]) == "model"
            and queries[i].mode != "complete_basket"
        ]
        if sparse:
            kk = max(queries[i].k for i in sparse)
            users = np.array([shoppers[i].user_idx for i in sparse])
            items[sparse, :kk], top[sparse, :kk] = model.recommend_idx(
                users, kk, allowed=np.stack([masks[i] for i in sparse])
            )
        sparse_set = set(sparse)
        dense = [i for i in rows if i not in sparse_set]
        if not dense:
            return
        scores = self._score_rows([shoppers[i] for i in dense])
        reranker = self.baskets.reranker if self.baskets is not None else None
        learned: list[int] = []  # complete_basket rows the learned re-ranker re-scores
        personal: list[np.ndarray] = []
        plain: list[int] = []
        for r, i in enumerate(dense):
            if queries[i].mode == "complete_basket":
                if reranker is not None:
                    learned.append(r)
                    personal.append(scores[r].copy())
                scores[r] = self.complete_basket(scores[r], queries[i].basket)
            np.putmask(scores[r], ~masks[i], -np.inf)  # from here on the row IS masked
            if not self._reranked(queries[i], shoppers[i]):
                plain.append(r)
        if learned:  # after the mask: candidates are allowed items only
            sub = scores[learned]
            reranker.rescore(
                self.baskets,
                sub,
                personal,
                [shoppers[dense[r]].user_idx for r in learned],
                [self.basket_index(queries[dense[r]].basket) for r in learned],
            )
            scores[learned] = sub
        plain_set = set(plain)
        if plain:
            kk = max(queries[dense[r]].k for r in plain)
            dst = [dense[r] for r in plain]
            items[dst, :kk], top[dst, :kk] = top_k(scores[plain], kk)
        for r, i in enumerate(dense):
            if r in plain_set:
                continue
            q, s = queries[i], shoppers[i]
            it, sc = rerank(
                scores[r : r + 1],
                q.k,
                None,  # already masked: -inf items can never be selected
                co2e=self.co2e,
                co2_weight=q.co2_weight,
                penalty=self.engine.preference_penalty(s.profile),
                categories=self.categories,
                diversity=q.diversity,
                pool=self.pool,
            )
            items[i, : q.k], top[i, : q.k] = it[0], sc[0]

    def basket_index(self, basket: Sequence[str]) -> np.ndarray:
        """Sorted unique model indices of the basket's known products."""
        idx = self.item_index(basket)
        return np.unique(idx[idx >= 0])

    def complete_basket(self, personal: np.ndarray, basket: Sequence[str]) -> np.ndarray:
        """The customer's scores blended with what goes with the basket (before the mask, which
        removes the basket's own items like every other forbidden item)."""
        idx = self.basket_index(basket)
        if self.baskets is not None:
            return blend(self.baskets.cooccurrence(idx), personal, self.baskets.weight)
        if not len(idx):
            return blend(np.zeros(0, dtype=np.float32), personal, 0.0)
        co = np.maximum(self.model.item_similarity(idx).sum(axis=0), 0.0)
        return blend(co, personal, DEFAULT_WEIGHT)

    def _score_rows(self, shoppers: Sequence[Shopper]) -> np.ndarray:
        """(len(shoppers), n_items) scores (a new array); model users in ONE `model.score` call."""
        model = self.model
        scores = np.empty((len(shoppers), self.n_items), dtype=np.float32)
        model_rows: list[int] = []
        for r, s in enumerate(shoppers):
            how = self._scored_by_model(s)
            if how == "fold_in":
                scores[r] = model.score_basket(s.history)  # history + what just happened
            elif how == "model":
                model_rows.append(r)
            else:
                scores[r] = model.fallback_scores()
        if model_rows:
            scores[model_rows] = model.score(np.array([shoppers[r].user_idx for r in model_rows]))
        return scores

    # ---- reasons -----------------------------------------------------------------------------
    def reasons(self, shopper: Shopper, items: np.ndarray) -> list[tuple[str, int | None]]:
        """(reason, history item) per item: bought before, or the bought item that goes with it most."""
        if not shopper.personalised or not len(shopper.history):
            text = (
                "popular with shoppers"
                if shopper.personalised
                else "popular with shoppers (not personalised)"
            )
            return [(text, None)] * len(items)
        fresh_set = set(shopper.fresh.tolist())
        if len(shopper.fresh):
            rest = np.setdiff1d(shopper.history, shopper.fresh)
            hist = np.concatenate([shopper.fresh, rest])[:MAX_REASON_HISTORY]
        else:
            hist = shopper.history[:MAX_REASON_HISTORY]
        out: list[tuple[str, int | None]] = [("recommended for you", None)] * len(items)
        bought = _contains_sorted(shopper.history, items)
        others = [j for j in range(len(items)) if not bought[j]]
        for j in np.flatnonzero(bought):
            it = int(items[j])
            out[j] = ("you just bought this" if it in fresh_set else "you bought this before", it)
        if others:
            sim = self.model.item_similarity(items[others], hist)
            if len(shopper.fresh):
                sim[:, : len(shopper.fresh)] *= 1.5  # prefer explaining by what just happened
            best = sim.argmax(axis=1)
            for row, j in enumerate(others):
                if sim[row, best[row]] > 0:
                    h = int(hist[best[row]])
                    out[j] = (f"because you bought {self.names[h] or self.item_ids[h]}", h)
        return out

    def basket_reasons(
        self, query: ProductQuery, shopper: Shopper, items: np.ndarray
    ) -> list[tuple[str, int | None]] | None:
        """complete_basket: "goes with X in your basket" (the basket item it co-occurs with most),
        "you bought this before" for bought items; None without basket co-occurrence."""
        if self.baskets is None or not len(items):
            return None
        basket = self.item_index(query.basket)
        mate, strength = self.baskets.partner(basket[basket >= 0], items)
        bought = (
            _contains_sorted(shopper.history, items) if shopper.personalised else np.zeros(len(items), bool)
        )
        out: list[tuple[str, int | None]] = []
        for it, b, m, w in zip(
            items.tolist(), bought.tolist(), mate.tolist(), strength.tolist(), strict=True
        ):
            if b:
                out.append(("you bought this before", it))
            elif w > 0:
                out.append((f"goes with {self.names[m] or self.item_ids[m]} in your basket", m))
            else:
                out.append(("recommended for you" if shopper.personalised else "popular with shoppers", None))
        return out

    # ---- batch convenience -------------------------------------------------------------------
    def recommend_frame(
        self, queries: Sequence[ProductQuery], shoppers: Sequence[Shopper], batch_size: int = 256
    ) -> pd.DataFrame:
        """user_id, item_id, rank, score, reason for many customers (the batch-job form of `select`);
        a request-level error (e.g. unknown store) is raised."""
        users, items, ranks, scores, reasons = [], [], [], [], []
        for lo in range(0, len(queries), batch_size):
            qs, ss = queries[lo : lo + batch_size], shoppers[lo : lo + batch_size]
            for s, sel in zip(ss, self.select(qs, ss), strict=True):
                if isinstance(sel, Exception):
                    raise sel
                n = len(sel.items)
                users.append(np.full(n, s.customer_id, dtype=object))
                items.append(sel.items)
                ranks.append(np.arange(1, n + 1))
                scores.append(sel.scores.astype(np.float64))
                reasons.extend(text for text, _ in sel.reasons)
        if not users:
            return pd.DataFrame(columns=["user_id", "item_id", "rank", "score", "reason"])
        # one frame for the whole batch: a frame per customer costs more than the selection itself
        return pd.DataFrame(
            {
                "user_id": np.concatenate(users),
                "item_id": self.item_ids[np.concatenate(items)].astype(str),
                "rank": np.concatenate(ranks),
                "score": np.concatenate(scores),
                "reason": reasons,
            }
        )


def _contains_sorted(sorted_values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """`np.isin(queries, sorted_values)` for a sorted array, without np.isin's sort of both sides."""
    if not len(sorted_values):
        return np.zeros(len(queries), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_values, queries), len(sorted_values) - 1)
    return sorted_values[pos] == queries


def _text(table: pd.DataFrame, column: str) -> np.ndarray:
    if column not in table:
        return np.full(len(table), None, dtype=object)
    col = table[column].astype(object)
    return col.where(col.notna(), None).to_numpy()
