"""The model as an MLflow pyfunc: a thin wrapper around the native numpy/JSON model directory.

The wrapper holds no learned state of its own: `load_context` reads the directory `model.save()`
wrote (logged as an artifact) plus the product attribute table, so the registry serves exactly the
bytes the evaluation used. Lists come from the library's one selection path
(`recsys.ranking.selection`), the same the HTTP service and `recsys recommend` use: the diet is a
fail-closed mask applied BEFORE top-k, so k is honoured and nothing forbidden can slip in.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd
from pydantic import BaseModel


class RecommendRequest(BaseModel):
    """One request: a pseudonymous user id, list length and an optional diet profile ('vegan,nuts')."""

    user_id: str
    k: int = 10
    diet: str | None = None
    mode: str = "mixed"  # mixed | buy_again | discover | complete_basket (checked by the selection layer)
    co2_weight: float = 0.0
    basket: list[str] | None = None  # product ids in hand (complete_basket); never recommended
    store: str | None = None


class RecommendResponse(BaseModel):
    user_id: str
    items: list[str]
    scores: list[float]


def load_native(model_dir: str | Path):
    import recsys.models  # noqa: F401  (registers every model)
    from recsys.models.base import Recommender

    return Recommender.load(Path(model_dir))


class RecommenderPyfunc(mlflow.pyfunc.PythonModel):
    """pyfunc flavour of any `Recommender`; artifacts: model_dir (native) and items (parquet)."""

    def load_context(self, context: Any) -> None:
        from recsys.personalize import align_items
        from recsys.ranking.selection import ProductSelector

        self._model = load_native(context.artifacts["model_dir"])
        items = align_items(pd.read_parquet(context.artifacts["items"]), self._model.items_)
        from recsys.ranking.basket import BasketCompleter

        baskets = BasketCompleter.load(Path(context.artifacts["model_dir"]))  # saved with the model
        self._selector = ProductSelector(self._model, items, baskets=baskets)

    def predict(
        self, model_input: list[RecommendRequest], params: dict[str, Any] | None = None
    ) -> list[RecommendResponse]:
        from recsys.diet.profiles import as_profile
        from recsys.ranking.selection import ProductQuery

        requests = [r if isinstance(r, RecommendRequest) else RecommendRequest(**r) for r in model_input]
        selector = self._selector
        queries = [
            ProductQuery(
                k=r.k, mode=r.mode, co2_weight=r.co2_weight, basket=tuple(r.basket or ()), store=r.store
            )
            for r in requests
        ]
        shoppers = [selector.shopper(r.user_id, as_profile(r.diet)) for r in requests]
        out = []
        for req, sel in zip(requests, selector.select(queries, shoppers), strict=True):
            if isinstance(sel, Exception):
                raise sel
            out.append(
                RecommendResponse(
                    user_id=req.user_id,
                    items=[str(x) for x in selector.item_ids[sel.items]],
                    scores=[float(x) for x in sel.scores],
                )
            )
        return out
