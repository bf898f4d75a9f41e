"""Recipe recommendations: recipes as composite items scored through the product model.

A recipe is allowed for a profile only if its derived attribute is 'no' for every hard exclusion
(the catalog's fail-closed roll-up over required ingredients, so 'unknown' is excluded) and it fits
max_steps / max_minutes. The score is

    shrunk mean of affinity + highlight_weight * highlight + coverage_weight * coverage
        - step_penalty * n_steps (+ a per-customer jitter of at most `explore`)

- affinity, per non-pantry ingredient (a staple says nothing about wanting the dish): the customer's
  best percentile score (0..1, model-scale free) among the compliant products on its shelf
  (category/type; 0 when none is compliant), blended (`history_weight`) with whether the customer
  ever bought from that shelf, weighted by how few households do (`population`: households x items).
  The model's best product on a large shelf is near 1 for everybody and everybody buys potatoes:
  without the rarity weight every household gets the same recipes;
- the mean is shrunk towards 0.5 by `prior_ingredients` pseudo-ingredients, so a one-ingredient dish
  does not top every list on one well-liked shelf;
- highlight: the recipe's most characteristic ingredient for this customer (the rarest shelf they
  shop), so a household that buys tofu sees tofu dishes;
- coverage: the share of the ingredients to buy that are already at home;
- jitter: seeded per customer, so recipes whose scores differ by less take turns across customers.
Ranking goes through recsys.ranking.topk with the recipe mask, like products.

At home (one definition for every caller): the basket, and what the caller says was bought recently
(`owned`; `Personalizer.recent_items`: purchases with a time stamp in the last `recent_days`, plus
events since the model was trained). Pantry staples (salt, pepper, oils, common spices: `pantry: true`
in ingredients.yaml) count as at home only when the customer says they keep them (`pantry_at_home`).

Every ingredient still to buy is returned with its name and the best-scoring compliant product on its
shelf (in stock at the store when one is given), or no product when none is labelled compliant: the
ingredient itself is compliant (that is how the recipe passed the diet), but no product in the catalog
can be vouched for, so the customer is told what to buy, never a product that may break the diet.
`require_available` leaves such recipes out instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.idmap import IdMap
from recsys.diet.constraints import ConstraintEngine
from recsys.diet.profiles import DietProfile, as_profile
from recsys.ranking.topk import top_k

COLUMNS = [
    "recipe_id",
    "name",
    "rank",
    "score",
    "steps",
    "minutes",
    "coverage",
    "missing_ingredients",
    "missing_product_ids",
    "ingredients",
    "instructions",
]


def _key(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    return str(value).strip().upper()


def percentile_scores(scores: np.ndarray) -> np.ndarray:
    """Scores mapped to (0, 1] by rank, so recipes do not depend on a model's score scale."""
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s), dtype=np.float64)
    ranks[order] = np.arange(1, len(s) + 1)
    return ranks / max(len(s), 1)


def _as_mask(items: np.ndarray | Iterable[int] | None, n_items: int) -> np.ndarray:
    """A bool mask over items from a mask, indices or None."""
    mask = np.zeros(n_items, dtype=bool)
    if items is not None:
        a = np.asarray(items if isinstance(items, np.ndarray) else list(items))
        if a.dtype == bool:
            mask |= a
        elif a.size:
            mask[a.astype(np.int64)] = True
    return mask


def ingredient_lines(recipe: Any) -> list[dict[str, Any]]:
    """The recipe's ingredient list as plain records: name, quantity, unit, optional, pantry."""
    return [
        {"name": i.name, "quantity": i.quantity, "unit": i.unit, "optional": i.optional, "pantry": i.pantry}
        for i in recipe.ingredients
    ]


class RecipeRecommender:
    """Recipes for one catalog of products; shelves and recipe masks are precomputed once.

    `items_table` row i is item i (the model's item space); `catalog` is a `RecipeCatalog` (None:
    the shipped recipes); `engine` may be shared with product recommendations (one mask cache).
    """

    def __init__(
        self,
        items_table: pd.DataFrame,
        catalog: Any = None,
        engine: ConstraintEngine | None = None,
        coverage_weight: float = 0.5,
        step_penalty: float = 0.02,
        history_weight: float = 0.5,
        prior_ingredients: float = 3.0,
        highlight_weight: float = 1.0,
        explore: float = 0.15,
        population: sp.spmatrix | None = None,
    ):
        if catalog is None:
            from recsys.recipes.catalog import load_recipes

            catalog = load_recipes()
        self.catalog = catalog
        self.recipes = list(catalog)
        self.engine = engine if engine is not None else ConstraintEngine(items_table)
        if self.engine.n_items != len(items_table):
            raise ValueError("the constraint engine and the items table describe different catalogs")
        self.coverage_weight = coverage_weight
        self.step_penalty = step_penalty
        self.history_weight = history_weight
        self.prior_ingredients = prior_ingredients
        self.highlight_weight = highlight_weight
        self.explore = explore
        self._build_shelves(items_table)
        self.shelf_rarity = self._shelf_rarity(population)
        self.n_steps = np.array([r.n_steps for r in self.recipes], dtype=np.int64)
        self.minutes = np.array([r.minutes for r in self.recipes], dtype=np.float64)
        self._diet_cache: dict[frozenset[str], np.ndarray] = {}

    def for_population(self, population: sp.spmatrix | None) -> RecipeRecommender:
        """The same catalog, shelves and diet masks, with shelf rarity from another purchase matrix
        over the same items (another model's): all that differs between two models of one catalog."""
        other = copy.copy(self)
        other.shelf_rarity = self._shelf_rarity(population)
        return other

    def _build_shelves(self, items_table: pd.DataFrame) -> None:
        """Shelf = an ingredient's (category, type): the products that can stand in for it.

        A type the catalog does not stock falls back to the whole category.
        """
        cats = items_table["category"].map(_key).to_numpy() if "category" in items_table else None
        types = items_table["type"].map(_key).to_numpy() if "type" in items_table else None
        n_items = len(items_table)
        shelf_ids: dict[tuple[str, str], int] = {}
        shelf_items: list[np.ndarray] = []
        rows, cols, pantry = [], [], []
        self.shopping: list[list[tuple[str, int, bool]]] = []  # per recipe: (ingredient, shelf, pantry)
        for r, recipe in enumerate(self.recipes):
            lines = []
            for ing in recipe.ingredients:
                if not ing.required:
                    continue
                key = (_key(ing.category), _key(ing.type))
                if key not in shelf_ids:
                    if cats is None or not key[0]:
                        idx = np.empty(0, dtype=np.int64)
                    else:
                        in_cat = cats == key[0]
                        same_type = in_cat & (types == key[1]) if key[1] and types is not None else in_cat
                        idx = np.flatnonzero(same_type if same_type.any() else in_cat)
                    shelf_ids[key] = len(shelf_items)
                    shelf_items.append(idx)
                lines.append((ing.name, shelf_ids[key], ing.pantry))
                rows.append(r)
                cols.append(shelf_ids[key])
                pantry.append(ing.pantry)
            self.shopping.append(lines)
        self.shelf_items = shelf_items
        n_shelves = len(shelf_items)
        shape = (len(self.recipes), n_shelves)
        keep = ~np.asarray(pantry, dtype=bool)
        rows_a, cols_a = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        # recipe x shelf: every required ingredient, and without the pantry staples
        self._recipe_shelf = {
            False: sp.csr_matrix((np.ones(len(rows_a)), (rows_a, cols_a)), shape=shape),
            True: sp.csr_matrix((np.ones(int(keep.sum())), (rows_a[keep], cols_a[keep])), shape=shape),
        }
        self._n_shopping = {
            k: np.maximum(np.asarray(m.sum(axis=1)).ravel(), 1.0) for k, m in self._recipe_shelf.items()
        }
        s_rows = np.repeat(np.arange(n_shelves), [len(i) for i in shelf_items])
        s_cols = np.concatenate(shelf_items) if shelf_items else np.empty(0, dtype=np.int64)
        self._shelf_item = sp.csr_matrix(
            (np.ones(len(s_cols), dtype=np.float64), (s_rows, s_cols)), shape=(n_shelves, n_items)
        )

    def _shelf_rarity(self, population: sp.spmatrix | None) -> np.ndarray:
        """Per shelf: 1 - the share of households that ever bought from it (1 without a population)."""
        n_shelves = self._shelf_item.shape[0]
        if population is None or population.shape[0] == 0:
            return np.ones(n_shelves)
        bought = (sp.csr_matrix(population) > 0).astype(np.float64)
        per_shelf = (bought @ self._shelf_item.T.tocsc()).tocsc()  # households x shelves
        share = np.diff(per_shelf.indptr) / population.shape[0]
        return 1.0 - share

    # ---- masks -------------------------------------------------------------------------------
    def diet_allowed(self, profile: DietProfile | str | None) -> np.ndarray:
        """Recipes whose derived attribute is 'no' for every hard exclusion (cached per profile)."""
        key = as_profile(profile).exclusions
        if key not in self._diet_cache:
            ok = np.ones(len(self.recipes), dtype=bool)
            for attr in key:
                ok &= np.array([r.attributes.get(attr, "unknown") == "no" for r in self.recipes])
            ok.setflags(write=False)
            self._diet_cache[key] = ok
        return self._diet_cache[key]

    def _best_on_shelves(self, values: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per shelf: best of the POSITIVE `values` and its item among `usable` items (-inf / -1 if none)."""
        masked = self._shelf_item.multiply((values * usable)[None, :]).tocsr()
        masked.eliminate_zeros()
        has = np.diff(masked.indptr) > 0
        best = np.where(has, masked.max(axis=1).toarray().ravel(), -np.inf)
        arg = np.where(has, np.asarray(masked.argmax(axis=1)).ravel(), -1).astype(np.int64)
        return best, arg

    # ---- recommending ------------------------------------------------------------------------
    def recommend(
        self,
        scores: np.ndarray,
        k: int = 5,
        profile: DietProfile | str | None = None,
        max_steps: int | None = None,
        max_minutes: float | None = None,
        owned: np.ndarray | Iterable[int] | None = None,
        store: object | None = None,
        item_ids: IdMap | None = None,
        require_available: bool = False,
        pantry_at_home: bool = False,
        history: np.ndarray | Iterable[int] | None = None,
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Top-k recipes for one customer's product `scores` (n_items,).

        `owned` is a bool mask (or indices) of what is at home (see the module docstring), `history`
        one of everything the customer ever bought (the shelves they shop); `seed` (a stable number
        per customer) draws the customer's `explore` jitter: recipes whose scores differ by less than
        it take turns across customers instead of the same one topping every list;
        `pantry_at_home` says the customer keeps the pantry staples. With `require_available`, a
        recipe with an ingredient to buy that has no compliant product (in stock) is left out.
        Columns: see COLUMNS; `missing_ingredients` and `missing_product_ids` are aligned lists (None
        where no product can be vouched for); product ids are external when `item_ids` is given.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        if max_minutes is not None and max_minutes < 1:
            raise ValueError(f"max_minutes must be >= 1, got {max_minutes}")
        profile = as_profile(profile)
        n_items = self.engine.n_items
        scores = np.asarray(scores, dtype=np.float64).ravel()
        if len(scores) != n_items:
            raise ValueError(f"scores cover {len(scores)} items, the catalog has {n_items}")
        owned_mask, history_mask = _as_mask(owned, n_items), _as_mask(history, n_items)
        compliant = self.engine.allowed(profile)
        buyable = compliant & self.engine.in_stock(store)

        pct = percentile_scores(scores)  # in (0, 1]: positive, as _best_on_shelves needs
        affinity, _ = self._best_on_shelves(pct, compliant)
        _, best_item = self._best_on_shelves(pct, buyable)
        has_owned = np.asarray(self._shelf_item.multiply(owned_mask & compliant).sum(axis=1)).ravel() > 0
        affinity = np.where(np.isfinite(affinity), affinity, 0.0)
        shops_shelf = np.asarray(self._shelf_item @ history_mask.astype(np.float64)).ravel() > 0
        taste = shops_shelf * self.shelf_rarity  # the customer shops a shelf few households shop
        affinity = (1.0 - self.history_weight) * affinity + self.history_weight * taste
        affinity = np.where(has_owned, 1.0, affinity)
        unvouched = (~has_owned & (best_item < 0)).astype(np.float64)

        rs, n_shopping = self._recipe_shelf[pantry_at_home], self._n_shopping[pantry_at_home]
        coverage = (rs @ has_owned.astype(np.float64)) / n_shopping
        n_unvouched = rs @ unvouched
        # staples never characterise a dish: taste looks at the other ingredients, whoever keeps them
        dish, n_dish = self._recipe_shelf[True], self._n_shopping[True]
        highlight = (
            dish.multiply(taste[None, :]).max(axis=1).toarray().ravel()
            if dish.shape[1]
            else np.zeros(dish.shape[0])
        )
        recipe_scores = (
            (dish @ affinity + 0.5 * self.prior_ingredients) / (n_dish + self.prior_ingredients)
            + self.highlight_weight * highlight
            + self.coverage_weight * coverage
            - self.step_penalty * self.n_steps
        )
        if seed is not None and self.explore:
            recipe_scores = recipe_scores + self.explore * np.random.default_rng(seed).random(
                len(recipe_scores)
            )
        allowed = self.diet_allowed(profile).copy()
        if max_steps is not None:
            allowed &= self.n_steps <= max_steps
        if max_minutes is not None:
            allowed &= self.minutes <= max_minutes
        if require_available:
            allowed &= n_unvouched == 0
        top, top_scores = top_k(recipe_scores[None, :], k, allowed)
        rows = []
        for rank, (r, score) in enumerate(zip(top[0], top_scores[0], strict=True), start=1):
            if r < 0:
                break
            recipe = self.recipes[r]
            names, products = [], []
            for name, shelf, pantry in self.shopping[r]:
                if has_owned[shelf] or (pantry and pantry_at_home):
                    continue
                names.append(name)
                products.append(int(best_item[shelf]) if best_item[shelf] >= 0 else None)
            if item_ids is not None:
                known = [p for p in products if p is not None]
                external = iter(item_ids.to_external(known) if known else [])
                products = [None if p is None else str(next(external)) for p in products]
            rows.append(
                {
                    "recipe_id": recipe.id,
                    "name": recipe.name,
                    "rank": rank,
                    "score": float(score),
                    "steps": recipe.n_steps,
                    "minutes": recipe.minutes,
                    "coverage": float(coverage[r]),
                    "missing_ingredients": names,
                    "missing_product_ids": products,
                    "ingredients": ingredient_lines(recipe),
                    "instructions": list(recipe.steps),
                }
            )
        return pd.DataFrame(rows, columns=COLUMNS)
