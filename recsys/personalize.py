"""The library facade batch jobs and serving call: products, recipes and substitutes, diet-safe.

Products go through `recsys.ranking.selection.ProductSelector`, the one selection path (scores ->
one allowed mask -> top-k / re-rank -> reasons) that the service, `recsys recommend`, the MLflow
pyfunc and the promotion gate share, so a list is the same whichever door it is asked through.
Recipes and substitutes use the same constraint engine and the same model scores.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.data.dataset import Dataset
from recsys.data.idmap import IdMap
from recsys.data.schema import DIET_ATTRIBUTES
from recsys.diet.constraints import ItemFilters
from recsys.diet.profiles import DietProfile, as_profile
from recsys.ranking.rerank import DEFAULT_POOL, co2e_summary
from recsys.ranking.selection import Mode, ProductQuery, ProductSelector
from recsys.ranking.substitutes import substitute_idx

ProfileLike = DietProfile | str | Iterable[str] | None


def align_items(items_table: pd.DataFrame, items: IdMap) -> pd.DataFrame:
    """Items table re-ordered so row i is the model's item i.

    Products the table does not describe get every diet attribute 'unknown' (so any hard exclusion
    removes them: fail-closed) and no CO2e.
    """
    table = items_table.copy()
    table["product_id"] = table["product_id"].astype(str)
    table = table.drop_duplicates("product_id").set_index("product_id")
    aligned = table.reindex(pd.Index(items.to_list(), name="product_id")).reset_index()
    missing = ~aligned["product_id"].isin(table.index)
    if missing.any():
        for column in ("is_food", *DIET_ATTRIBUTES):
            if column in aligned:
                aligned[column] = aligned[column].astype(object)
            aligned.loc[missing, column] = "unknown"
    return aligned


def load_selector(model_dir: Path, data_dir: Path | None = None) -> ProductSelector:
    """A saved model and its catalog (the model dir's copy, or `data_dir`'s) as a `ProductSelector`:
    how every batch job, on either engine, gets to the one selection path."""
    import recsys.models  # noqa: F401  (registers the model classes for Recommender.load)
    from recsys.models.base import Recommender
    from recsys.models.model_dir import load_items_table

    model = Recommender.load(Path(model_dir))
    items_table, _ = load_items_table(Path(model_dir), Path(data_dir) if data_dir else None)
    return ProductSelector(model, align_items(items_table, model.items_))


def query_from_filters(
    k: int,
    mode: Mode = "mixed",
    filters: ItemFilters | Mapping[str, Any] | None = None,
    basket: Iterable[object] | None = None,
    co2_weight: float = 0.0,
    diversity: float = 0.0,
) -> ProductQuery:
    """A `ProductQuery` from the filter vocabulary of `ItemFilters`; basket items are excluded."""
    if filters is not None and not isinstance(filters, ItemFilters):
        filters = ItemFilters.make(**dict(filters))
    exclude = [str(i) for i in basket or ()]
    categories = include = store = None
    if filters is not None:
        if filters.exclude_categories:
            raise ValueError("exclude_categories is not a product-list filter; use categories to include")
        categories, store = filters.include_categories, filters.store
        include = None if filters.include_items is None else tuple(sorted(filters.include_items))
        exclude += sorted(filters.exclude_items)
    return ProductQuery(
        k=k,
        mode=mode,
        categories=categories,
        include=include,
        exclude=tuple(exclude),
        store=store,
        co2_weight=co2_weight,
        diversity=diversity,
    )


class Personalizer:
    """Products, recipes and substitutes for one fitted model and its catalog.

    `data` is the Dataset the model was trained on (its interactions then give "recent purchases" for
    recipe coverage) or just an items table. `recipes` is a recipe catalog for `RecipeRecommender`
    (None loads the shipped one on first use). `stock` maps store id -> item indices in stock.

    `same_catalog`: a personalizer built on the same `data` object (Dataset or items table) and
    stock (a model reload over an unchanged catalog). When its model has the same items, the aligned items table, constraint
    engine and recipe shelves depend on nothing that changed and are shared instead of rebuilt:
    most of a reload's work, done while requests are being answered.
    """

    def __init__(
        self,
        model: Any,
        data: Dataset | pd.DataFrame,
        recipes: Any = None,
        stock: Mapping[object, Iterable[int]] | None = None,
        pool: int = DEFAULT_POOL,
        recent_days: float = 28.0,
        same_catalog: Personalizer | None = None,
    ):
        model._check_fitted()
        self.model = model
        self.dataset = data if isinstance(data, Dataset) else None
        self._data = data
        shared = (
            same_catalog
            if same_catalog is not None
            and same_catalog._data is data
            and same_catalog.model.items_ == model.items_
            else None
        )
        if shared is not None:
            self.items_table = shared.items_table
            self.selector = ProductSelector(model, self.items_table, pool=pool, same_catalog=shared.selector)
        else:
            table = data.items_table if isinstance(data, Dataset) else data
            self.items_table = align_items(table, model.items_)
            stock = (
                None
                if stock is None
                else {str(k): np.asarray(list(v), dtype=np.int64) for k, v in stock.items()}
            )
            self.selector = ProductSelector(model, self.items_table, stock=stock, pool=pool)
        self.engine = self.selector.engine
        self.co2e = self.selector.co2e
        self.categories = self.selector.categories
        self.pool = pool
        self.recent_days = recent_days
        self._recipes = recipes
        self._recipe_recommender: Any = None
        built = None if shared is None else shared._recipe_recommender
        if built is not None and (recipes is None or recipes is shared._recipes):
            self._recipe_recommender = built.for_population(model.seen_)

    # ---- helpers -----------------------------------------------------------------------------
    def user_index(self, user_id: object) -> int:
        """Internal index, or -1 for a customer the model does not know."""
        return self.selector.user_index(str(user_id))

    def _item_mask(self, item_ids: Iterable[object] | None) -> np.ndarray:
        mask = np.zeros(len(self.items_table), dtype=bool)
        if item_ids:
            idx = self.selector.item_index(item_ids)
            mask[idx[idx >= 0]] = True
        return mask

    def recent_items(self, uidx: int) -> np.ndarray:
        """Bool mask of what the customer bought in the last `recent_days` days of the data.

        The one definition of "at home" for recipes (CLI, service, batch): only purchases with a
        time stamp that recent count; without purchase times (a model directory alone) nothing does,
        never the whole history. Callers add the basket and the events since the model was trained.
        """
        mask = np.zeros(len(self.items_table), dtype=bool)
        if uidx < 0 or self.dataset is None:
            return mask
        inter = self.dataset.interactions
        if inter.empty:
            return mask
        start = inter["timestamp"].max() - pd.Timedelta(days=self.recent_days)
        rows = inter[(inter["user_idx"] == uidx) & (inter["timestamp"] >= start)]
        mask[rows["item_idx"].to_numpy()] = True
        return mask

    # ---- products ----------------------------------------------------------------------------
    def recommend_products(
        self,
        user_id: object,
        k: int = 10,
        profile: ProfileLike = None,
        filters: ItemFilters | Mapping[str, Any] | None = None,
        co2_weight: float = 0.0,
        mode: Mode = "mixed",
        basket: Iterable[object] | None = None,
        diversity: float = 0.0,
    ) -> pd.DataFrame:
        """item_id, score, rank, reason; `attrs` holds the list's mean CO2e per kg and unknown count.

        mode: "buy_again" keeps products the customer bought before, "discover" only new ones,
        "mixed" both (see `recsys.ranking.selection` for customers without history). Items already in
        `basket` are not recommended. Soft preferences of the profile lower scores; hard exclusions
        and filters are masks.
        """
        query = query_from_filters(k, mode, filters, basket, co2_weight, diversity)
        shopper = self.selector.shopper(user_id, as_profile(profile))
        selection = self.selector.select([query], [shopper])[0]
        if isinstance(selection, Exception):
            raise selection
        idx = selection.items
        out = pd.DataFrame(
            {
                "item_id": self.selector.item_ids[idx].astype(str),
                "score": selection.scores.astype(np.float64),
                "rank": np.arange(1, len(idx) + 1),
                "reason": [text for text, _ in selection.reasons],
            }
        )
        summary = co2e_summary(idx, self.co2e)
        out.attrs.update(mean_co2e_per_kg=summary.mean, co2e_unknown=summary.n_unknown)
        return out

    # ---- substitutes -------------------------------------------------------------------------
    def substitutes(
        self, item_id: object, profile: ProfileLike = None, k: int = 5, store: object | None = None
    ) -> pd.DataFrame:
        """item_id, score, rank, reason: compliant alternatives to `item_id` (never the item itself)."""
        item_idx = int(self.model.items_.to_internal([str(item_id)])[0])
        allowed = self.engine.mask(as_profile(profile), ItemFilters.make(store=store))
        idx, scores, reasons = substitute_idx(item_idx, allowed, self.items_table, k, model=self.model)
        return pd.DataFrame(
            {
                "item_id": self.model.items_.to_external(idx),
                "score": scores,
                "rank": np.arange(1, len(idx) + 1),
                "reason": reasons,
            }
        )

    # ---- recipes -----------------------------------------------------------------------------
    @property
    def recipe_recommender(self) -> Any:
        if self._recipe_recommender is None:
            from recsys.recipes.recommend import RecipeRecommender

            self._recipe_recommender = RecipeRecommender(
                self.items_table, self._recipes, engine=self.engine, population=self.model.seen_
            )
        return self._recipe_recommender

    def recommend_recipes(
        self,
        user_id: object,
        k: int = 5,
        profile: ProfileLike = None,
        max_steps: int | None = None,
        max_minutes: float | None = None,
        basket: Iterable[object] | None = None,
        store: object | None = None,
        pantry_at_home: bool = False,
    ) -> pd.DataFrame:
        """One row per recipe: recsys.recipes.recommend.COLUMNS (ingredients with quantities, steps).

        Missing ingredients are named, each with the best-scoring compliant product for this customer
        (in stock at `store` when given) or None when no product can be vouched for; what the basket
        or recent purchases cover is at home, and so are the pantry staples when `pantry_at_home`.
        """
        uidx = self.user_index(user_id)
        scores = self.model.score(np.array([uidx]))[0]
        owned = self.recent_items(uidx) | self._item_mask(basket)
        return self.recipe_recommender.recommend(
            scores,
            k,
            profile=as_profile(profile),
            max_steps=max_steps,
            max_minutes=max_minutes,
            owned=owned,
            store=store,
            item_ids=self.model.items_,
            pantry_at_home=pantry_at_home,
            history=self.selector.history(uidx),
            seed=zlib.crc32(str(user_id).encode()),
        )
