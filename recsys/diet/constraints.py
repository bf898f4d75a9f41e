"""Diet profile -> boolean "allowed" mask over item indices, fail-closed and cached.

Rules (the promise to a coeliac or an allergic customer):
- under a hard exclusion an item is allowed only if its attribute is 'no'; 'unknown' is excluded;
- no exception for non-food: the labeler marks detergent & co. 'no' on every diet attribute, and a
  non-food item whose attribute is 'unknown' stays excluded (the rule has no holes to argue about);
- a missing attribute column means 'unknown' everywhere, so it excludes everything it is asked about.
Masks are combined with `&` and applied before top-k (recsys.ranking.topk), so nothing forbidden can
reach a list and k is honoured whenever enough compliant items exist. Soft preferences are not masks:
`preference_penalty` turns them into score penalties for the re-ranker.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.cache import LRUCache
from recsys.data.idmap import UnknownIdError
from recsys.data.schema import DIET_ATTRIBUTES
from recsys.diet.profiles import DietProfile, as_profile, tristate_column

#: Penalty weight of an 'unknown' attribute under a soft preference (a 'yes' weighs 1).
UNKNOWN_PENALTY = 0.5


@dataclass(frozen=True)
class ItemFilters:
    """Request filters on top of the diet profile. Item ids are external product ids."""

    include_categories: frozenset[str] | None = None
    exclude_categories: frozenset[str] = frozenset()
    include_items: frozenset[str] | None = None
    exclude_items: frozenset[str] = frozenset()
    store: str | None = None  # only items in stock at this store (when stock is known)

    @classmethod
    def make(
        cls,
        include_categories: Iterable[str] | None = None,
        exclude_categories: Iterable[str] = (),
        include_items: Iterable[object] | None = None,
        exclude_items: Iterable[object] = (),
        store: object | None = None,
    ) -> ItemFilters:
        return cls(
            None if include_categories is None else frozenset(map(str, include_categories)),
            frozenset(map(str, exclude_categories)),
            None if include_items is None else frozenset(map(str, include_items)),
            frozenset(map(str, exclude_items)),
            None if store is None else str(store),
        )


class ConstraintEngine:
    """Per-attribute "clear" arrays computed once per catalog; one mask per exclusion set, cached.

    `stock` maps a store id to the item indices in stock there. Without stock data every item counts
    as available (stock is about convenience, not safety); with it, an unknown store is an error.
    """

    def __init__(
        self,
        items_table: pd.DataFrame,
        stock: Mapping[object, Collection[int] | np.ndarray] | None = None,
        cache_size: int = 256,
    ):
        self.items_table = items_table.reset_index(drop=True)
        self.n_items = len(self.items_table)
        self._values = {a: tristate_column(self.items_table, a) for a in DIET_ATTRIBUTES}
        self._clear = {a: _readonly(v == "no") for a, v in self._values.items()}
        self._all = _readonly(np.ones(self.n_items, dtype=bool))
        self._masks: LRUCache[np.ndarray] = LRUCache(cache_size)
        ids = self.items_table["product_id"] if "product_id" in self.items_table else pd.Series(dtype=str)
        self._ids = ids.astype(str).to_numpy()
        self._categories = (
            self.items_table["category"].astype(object).where(self.items_table["category"].notna(), "")
            if "category" in self.items_table
            else pd.Series([""] * self.n_items)
        ).astype(str)
        self._stock: dict[str, np.ndarray] | None = None
        if stock is not None:
            self._stock = {}
            for store, idx in stock.items():
                m = np.zeros(self.n_items, dtype=bool)
                m[np.fromiter((int(i) for i in idx), dtype=np.int64)] = True
                self._stock[str(store)] = _readonly(m)

    # ---- diet --------------------------------------------------------------------------------
    def allowed(self, profile: DietProfile | str | Iterable[str] | None) -> np.ndarray:
        """Read-only bool mask of items compliant with every hard exclusion of the profile."""
        key = as_profile(profile).exclusions
        if not key:
            return self._all
        return self._masks.get(
            key,
            lambda: _readonly(
                np.asarray(np.logical_and.reduce([self._clear[a] for a in sorted(key)]), dtype=bool)
            ),
        )

    def clear(self, attribute: str) -> np.ndarray:
        """Items that are safe under a hard exclusion of `attribute` (read-only)."""
        return self._clear[attribute]

    def values(self, attribute: str) -> np.ndarray:
        """The 'yes'/'no'/'unknown' value of `attribute` per item."""
        return self._values[attribute]

    def violations(self, items: Iterable[int], profile: DietProfile | str | None) -> int:
        """How many of the item indices (-1 ignored) break a hard exclusion; 0 is the only good answer."""
        idx = np.asarray([i for i in items if i >= 0], dtype=np.int64)
        return int((~self.allowed(profile)[idx]).sum()) if idx.size else 0

    def preference_penalty(self, profile: DietProfile | str | None) -> np.ndarray | None:
        """Per-item soft penalty: sum of strength x (1 if 'yes', UNKNOWN_PENALTY if 'unknown').

        None when the profile has no preferences, so callers can skip re-ranking altogether.
        """
        prefs = as_profile(profile).preferences
        if not prefs:
            return None
        penalty = np.zeros(self.n_items, dtype=np.float64)
        for attr, strength in prefs.items():
            v = self._values[attr]
            penalty += strength * np.where(v == "yes", 1.0, np.where(v == "unknown", UNKNOWN_PENALTY, 0.0))
        return penalty

    # ---- filters -----------------------------------------------------------------------------
    def filter_mask(self, filters: ItemFilters | None) -> np.ndarray:
        """Mask of the request filters alone (categories, explicit items, stock)."""
        if filters is None:
            return self._all
        mask = np.ones(self.n_items, dtype=bool)
        if filters.include_categories is not None:
            mask &= self._categories.isin(filters.include_categories).to_numpy()
        if filters.exclude_categories:
            mask &= ~self._categories.isin(filters.exclude_categories).to_numpy()
        if filters.include_items is not None:
            mask &= np.isin(self._ids, list(filters.include_items))
        if filters.exclude_items:
            mask &= ~np.isin(self._ids, list(filters.exclude_items))
        if filters.store is not None:
            mask &= self.in_stock(filters.store)
        return mask

    def in_stock(self, store: object | None) -> np.ndarray:
        """Items in stock at `store`; everything when no stock data was given or store is None."""
        if store is None or self._stock is None:
            return self._all
        key = str(store)
        if key not in self._stock:
            raise UnknownIdError("store", [key])  # an id like any other: the caller's 404
        return self._stock[key]

    def mask(
        self, profile: DietProfile | str | Iterable[str] | None = None, filters: ItemFilters | None = None
    ) -> np.ndarray:
        """Diet mask & filter mask: the one mask a request hands to top-k."""
        diet = self.allowed(profile)
        return diet if filters is None else diet & self.filter_mask(filters)


def _readonly(mask: np.ndarray) -> np.ndarray:
    """Cached masks are shared between requests: nobody may flip a bit in place."""
    mask.setflags(write=False)
    return mask


def allowed_mask_for_diet(diet: str | None, items_table: pd.DataFrame) -> np.ndarray:
    """Mask for a 'vegan,nuts'-style diet string over `items_table` rows (row i = item i).

    For batch commands (`recsys recommend --diet ...`); ValueError on an unknown diet name.
    """
    return ConstraintEngine(items_table).allowed(as_profile(diet))
